import { randomUUID } from "node:crypto";
import {
  type Db,
  decodePageToken,
  encodePageToken,
  getService,
  getSnapshot,
  getVolume,
  insertOperation,
  insertSnapshot,
  insertVolume,
  listSnapshots,
  listVolumes,
  type SnapshotRow,
  type VolumeRow,
} from "@cinderblock/db";
import type { RequestContext as CastContext } from "@cinderblock/proto";
import type { RequestContext } from "./context.js";
import { CinderblockError } from "./errors.js";
import type { ChangeFeed, SchedulerDispatcher } from "./ports.js";
import { type QuotaDefaults, reserveOrThrow, snapshotQuotaDeltas, volumeQuotaDeltas } from "./quota.js";
import { assertVolumeSnapshottable, TERMINAL_SNAPSHOT_STATUSES } from "./states.js";
import {
  type CreateSnapshotInput,
  type CreateVolumeInput,
  validateCreateSnapshot,
  validateCreateVolume,
  validateId,
  validatePageSize,
} from "./validation.js";

/** What the api's use cases need, injected by the api's main.ts. */
export interface ApiDependencies {
  db: Db;
  scheduler: SchedulerDispatcher;
  changes: ChangeFeed;
  quota: QuotaDefaults;
  /** Availability zone of a volume created without one. */
  defaultAvailabilityZone: string;
  /** Seconds an operation may stay in flight before the reconciler dispatches it again. */
  operationTimeoutSeconds: number;
  /** Seconds after the last heartbeat at which a backend counts as down. */
  serviceDownTimeSeconds: number;
  /** Called after a transaction that wrote casts commits (the api kicks its outbox relay). */
  onCommitted?(): void;
}

/** A page of rows and the token of the next page ("" when this is the last). */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

function castContext(ctx: RequestContext): CastContext {
  return { requestId: ctx.requestId, projectId: ctx.projectId, userId: ctx.userId, roles: ctx.roles };
}

function pageCursor(field: string, token: string) {
  if (token === "") return undefined;
  const cursor = decodePageToken(token);
  if (!cursor) throw new CinderblockError("INVALID_ARGUMENT", `${field}: is not a token this service issued`);
  return cursor;
}

function toPage<T extends { createdAt: Date; id: string }>(rows: T[], size: number): Page<T> {
  const items = rows.slice(0, size);
  const last = items[items.length - 1];
  return { items, nextPageToken: rows.length > size && last ? encodePageToken(last) : "" };
}

/** The api's use cases: each validates, checks state and quota, writes, and dispatches. */
export interface ApiUseCases {
  createVolume(ctx: RequestContext, input: CreateVolumeInput): Promise<VolumeRow>;
  getVolume(ctx: RequestContext, id: string): Promise<VolumeRow>;
  listVolumes(ctx: RequestContext, pageSize: number, pageToken: string): Promise<Page<VolumeRow>>;
  createSnapshot(ctx: RequestContext, input: CreateSnapshotInput): Promise<SnapshotRow>;
  getSnapshot(ctx: RequestContext, id: string): Promise<SnapshotRow>;
  listSnapshots(ctx: RequestContext, pageSize: number, pageToken: string, volumeId: string): Promise<Page<SnapshotRow>>;
  /** Yields the snapshot now and after each change, and returns after a terminal status. */
  watchSnapshot(ctx: RequestContext, id: string, signal: AbortSignal): AsyncGenerator<SnapshotRow>;
}

/** Builds the api's use cases over their dependencies. */
export function createApiUseCases(deps: ApiDependencies): ApiUseCases {
  const { db } = deps;

  async function loadSnapshot(ctx: RequestContext, id: string): Promise<SnapshotRow> {
    const row = await getSnapshot(db, ctx.projectId, validateId("id", id));
    if (!row) throw new CinderblockError("NOT_FOUND", `snapshot ${id} not found`);
    return row;
  }

  return {
    async createVolume(ctx, raw) {
      const input = validateCreateVolume(raw);
      const id = randomUUID();
      const operationId = randomUUID();
      const created = await db.transaction(async (tx) => {
        await reserveOrThrow(tx, ctx.projectId, volumeQuotaDeltas(deps.quota, input.sizeGb));
        const volume = await insertVolume(tx, {
          id,
          projectId: ctx.projectId,
          userId: ctx.userId,
          name: input.name,
          description: input.description,
          status: "creating",
          sizeGb: input.sizeGb,
          volumeType: input.volumeType,
          availabilityZone: input.availabilityZone || deps.defaultAvailabilityZone,
          bootable: input.bootable,
          imageMetadata: input.imageMetadata,
          encryptionKeyId: input.encryptionKeyId.toLowerCase(),
          metadata: input.metadata,
        });
        await insertOperation(tx, {
          id: operationId,
          kind: "create_volume",
          resourceId: id,
          projectId: ctx.projectId,
          timeoutSeconds: deps.operationTimeoutSeconds,
        });
        await deps.scheduler.createVolume(
          tx,
          {
            operationId,
            context: castContext(ctx),
            volumeId: id,
            sizeGb: volume.sizeGb,
            volumeType: volume.volumeType,
            availabilityZone: volume.availabilityZone,
          },
          1,
        );
        return volume;
      });
      deps.onCommitted?.();
      return created;
    },

    async getVolume(ctx, id) {
      const row = await getVolume(db, ctx.projectId, validateId("id", id));
      if (!row) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
      return row;
    },

    async listVolumes(ctx, pageSize, pageToken) {
      const size = validatePageSize(pageSize);
      const rows = await listVolumes(db, ctx.projectId, size + 1, pageCursor("page_token", pageToken));
      return toPage(rows, size);
    },

    async createSnapshot(ctx, raw) {
      const input = validateCreateSnapshot(raw);
      const volumeId = input.volumeId.toLowerCase();
      const id = randomUUID();
      const operationId = randomUUID();
      const created = await db.transaction(async (tx) => {
        // NOTE: the share lock keeps the volume's status from changing until this snapshot is recorded.
        const volume = await getVolume(tx, ctx.projectId, volumeId, { lock: true });
        if (!volume) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
        assertVolumeSnapshottable(volume, input.force);
        if (!volume.host) {
          throw new CinderblockError("FAILED_PRECONDITION", `volume ${volumeId} has no backend yet`);
        }
        const backend = await getService(tx, volume.host, deps.serviceDownTimeSeconds);
        if (backend?.frozen) {
          throw new CinderblockError("FAILED_PRECONDITION", `backend ${volume.host} of volume ${volumeId} is frozen`);
        }
        await reserveOrThrow(tx, ctx.projectId, snapshotQuotaDeltas(deps.quota, volume.sizeGb));
        const snapshot = await insertSnapshot(tx, {
          id,
          projectId: ctx.projectId,
          userId: ctx.userId,
          volumeId,
          name: input.name,
          description: input.description,
          status: "creating",
          progress: "0%",
          volumeSizeGb: volume.sizeGb,
          volumeType: volume.volumeType,
          encryptionKeyId: volume.encryptionKeyId,
          groupSnapshotId: input.groupSnapshotId.toLowerCase(),
          metadata: input.metadata,
        });
        await insertOperation(tx, {
          id: operationId,
          kind: "create_snapshot",
          resourceId: id,
          projectId: ctx.projectId,
          timeoutSeconds: deps.operationTimeoutSeconds,
        });
        await deps.scheduler.createSnapshot(
          tx,
          {
            operationId,
            context: castContext(ctx),
            snapshotId: id,
            volumeId,
            volumeSizeGb: volume.sizeGb,
            volumeHost: volume.host,
          },
          1,
        );
        return snapshot;
      });
      deps.onCommitted?.();
      return created;
    },

    getSnapshot: loadSnapshot,

    async listSnapshots(ctx, pageSize, pageToken, volumeId) {
      const size = validatePageSize(pageSize);
      const filters = volumeId ? { volumeId: validateId("volume_id", volumeId) } : {};
      const rows = await listSnapshots(db, ctx.projectId, size + 1, filters, pageCursor("page_token", pageToken));
      return toPage(rows, size);
    },

    async *watchSnapshot(ctx, id, signal) {
      let current = await loadSnapshot(ctx, id);
      // NOTE: subscribe before the first read that counts, so no change between them is missed.
      const changes = deps.changes.subscribe("snapshot", current.id);
      const onAbort = () => changes.close();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        current = await loadSnapshot(ctx, id);
        yield current;
        if (TERMINAL_SNAPSHOT_STATUSES.includes(current.status)) return;
        for await (const _ of changes) {
          const next = await loadSnapshot(ctx, id);
          if (next.updatedAt.getTime() === current.updatedAt.getTime() && next.status === current.status) continue;
          current = next;
          yield current;
          if (TERMINAL_SNAPSHOT_STATUSES.includes(current.status)) return;
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
        changes.close();
      }
    },
  };
}
