import { randomUUID } from "node:crypto";
import {
  createSnapshotAtOnce,
  cursorOf,
  type Db,
  decodePageToken,
  type Executor,
  encodePageToken,
  ensureQuotaRows,
  getSnapshot,
  getSnapshotByClientRequest,
  getVolume,
  getVolumeByClientRequest,
  getVolumeElevated,
  getVolumeWithBackend,
  insertOperation,
  insertSnapshot,
  insertVolume,
  type ListQuery,
  listSnapshots,
  listVolumes,
  type NewOperation,
  type NewSnapshotRow,
  type PageCursor,
  type QuotaDelta,
  type SnapshotRow,
  SORT_KEYS,
  type SortDir,
  type SortKey,
  transaction,
  type VolumeRow,
} from "@cinderblock/db";
import type { SchedulerCreateSnapshot } from "@cinderblock/proto";
import { type AttachmentUseCases, createAttachmentUseCases } from "./attachments.js";
import { castContext, type RequestContext, requireAdmin } from "./context.js";
import { CinderblockError } from "./errors.js";
import { createGroupUseCases, type GroupUseCases } from "./groups.js";
import { isUniqueViolation, replayOrConflict, requestHash } from "./idempotency.js";
import { createInstanceSnapshot, type InstanceImage, type SnapshotInstanceInput } from "./instance-snapshot.js";
import { createManageUseCases, type ManageUseCases } from "./manage.js";
import { createManagementUseCases, type ManagementUseCases } from "./management.js";
import type { Announcer, ChangeFeed, ComputeAgents, Dispatcher, EventFeed, VolumeHostCalls } from "./ports.js";
import { type QuotaDefaults, quotaExceeded, reserveOrThrow, snapshotQuotaDeltas, volumeQuotaDeltas } from "./quota.js";
import { assertVolumeSnapshottable, TERMINAL_SNAPSHOT_STATUSES } from "./state-machine.js";
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
  scheduler: Dispatcher;
  /** Notifications of the api's own operations, written into the outbox with their change. */
  notifications: Announcer;
  changes: ChangeFeed;
  events: EventFeed;
  hosts: VolumeHostCalls;
  compute: ComputeAgents;
  /** Seconds SnapshotInstance waits for its snapshots before thawing and failing. */
  snapshotInstanceTimeoutSeconds: number;
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

/** A list request as the api receives it. */
export interface ListInput {
  pageSize: number;
  pageToken: string;
  status?: string | undefined;
  name: string;
  metadata: Record<string, string>;
  sortKey: string;
  sortDir: string;
  allProjects: boolean;
}

/** Validates a list request into a query: sort, page size, token (which must match the sort), scope. */
function listQuery(ctx: RequestContext, input: ListInput): ListQuery {
  const sortKey = (input.sortKey || "created_at") as SortKey;
  if (!SORT_KEYS.includes(sortKey)) {
    throw new CinderblockError("INVALID_ARGUMENT", `sort_key: must be one of ${SORT_KEYS.join(", ")}`);
  }
  const sortDir = (input.sortDir || "desc") as SortDir;
  if (sortDir !== "asc" && sortDir !== "desc")
    throw new CinderblockError("INVALID_ARGUMENT", "sort_dir: must be asc or desc");
  if (input.allProjects) requireAdmin(ctx, "all_projects");
  let after: PageCursor | undefined;
  if (input.pageToken) {
    after = decodePageToken(input.pageToken);
    if (!after) throw new CinderblockError("INVALID_ARGUMENT", "page_token: is not a token this service issued");
    if (after.sortKey !== sortKey || after.sortDir !== sortDir) {
      throw new CinderblockError("INVALID_ARGUMENT", "page_token: was issued for another sort");
    }
  }
  return {
    projectId: input.allProjects ? undefined : ctx.projectId,
    limit: validatePageSize(input.pageSize) + 1,
    sortKey,
    sortDir,
    after,
    status: input.status,
    name: input.name || undefined,
    metadata: input.metadata,
  };
}

function toPage<T extends { createdAt: Date; id: string; name: string; status: string }>(
  rows: T[],
  query: ListQuery,
  size: (row: T) => number,
): Page<T> {
  const items = rows.slice(0, query.limit - 1);
  const last = items[items.length - 1];
  const more = rows.length >= query.limit && last;
  return {
    items,
    nextPageToken: more ? encodePageToken(cursorOf(last, size(last), query.sortKey, query.sortDir)) : "",
  };
}

/** Ids and idempotency data of a snapshot about to be recorded. */
interface SnapshotRecordKeys {
  id: string;
  operationId: string;
  clientRequestId: string;
  hash: string | null;
}

/**
 * The volume a snapshot is to be taken of, checked as the seed's api does: it belongs to the
 * project and may be snapshotted (`force` for an in-use one), it has a backend, and that backend
 * is not frozen. `lock` share-locks the row for the rest of the caller's transaction.
 */
async function snapshottableVolume(
  db: Executor,
  ctx: RequestContext,
  volumeId: string,
  force: boolean,
  lock: boolean,
): Promise<VolumeRow & { host: string }> {
  const found = await getVolumeWithBackend(db, ctx.projectId, volumeId, lock ? { lock: "share" } : {});
  if (!found) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
  const { volume, backendFrozen } = found;
  assertVolumeSnapshottable(volume, force);
  const { host } = volume;
  if (!host) throw new CinderblockError("FAILED_PRECONDITION", `volume ${volumeId} has no backend yet`);
  if (backendFrozen) {
    throw new CinderblockError("FAILED_PRECONDITION", `backend ${host} of volume ${volumeId} is frozen`);
  }
  return { ...volume, host };
}

/**
 * What recording one snapshot of a checked volume writes: the row (`creating`, `0%`), its
 * operation, the cast to the scheduler and the quota it takes.
 */
function snapshotRecord(
  deps: Pick<ApiDependencies, "quota" | "operationTimeoutSeconds">,
  ctx: RequestContext,
  input: Omit<CreateSnapshotInput, "clientRequestId">,
  keys: SnapshotRecordKeys,
  volume: VolumeRow & { host: string },
): { snapshot: NewSnapshotRow; operation: NewOperation; cast: SchedulerCreateSnapshot; quota: QuotaDelta[] } {
  return {
    snapshot: {
      id: keys.id,
      projectId: ctx.projectId,
      userId: ctx.userId,
      volumeId: volume.id,
      name: input.name,
      description: input.description,
      status: "creating",
      progress: "0%",
      volumeSizeGb: volume.sizeGb,
      volumeType: volume.volumeType,
      encryptionKeyId: volume.encryptionKeyId,
      groupSnapshotId: input.groupSnapshotId.toLowerCase(),
      metadata: input.metadata,
      clientRequestId: keys.clientRequestId || null,
      requestHash: keys.hash,
    },
    operation: {
      id: keys.operationId,
      kind: "create_snapshot",
      resourceId: keys.id,
      projectId: ctx.projectId,
      timeoutSeconds: deps.operationTimeoutSeconds,
    },
    cast: {
      operationId: keys.operationId,
      context: castContext(ctx),
      snapshotId: keys.id,
      volumeId: volume.id,
      volumeSizeGb: volume.sizeGb,
      volumeHost: volume.host,
    },
    quota: snapshotQuotaDeltas(deps.quota, volume.sizeGb, volume.volumeType),
  };
}

/**
 * The seed's api steps for one snapshot, inside the caller's transaction (a group snapshot's
 * members): the volume is checked and share-locked, so its status cannot change meanwhile, then
 * the row, its operation, the cast and the quota reservation are written.
 */
async function recordSnapshot(
  tx: Executor,
  deps: Pick<ApiDependencies, "quota" | "scheduler" | "serviceDownTimeSeconds" | "operationTimeoutSeconds">,
  ctx: RequestContext,
  input: Omit<CreateSnapshotInput, "clientRequestId">,
  keys: SnapshotRecordKeys,
): Promise<SnapshotRow> {
  const volume = await snapshottableVolume(tx, ctx, input.volumeId, input.force, true);
  const record = snapshotRecord(deps, ctx, input, keys, volume);
  // NOTE: the four writes go out pipelined on the transaction's connection: one round trip instead
  // of four. PostgreSQL runs them in this order, and a failure of any aborts the transaction (the
  // first error to settle is the first statement's, e.g. an idempotency key's unique violation).
  // Quota comes last: the project's usage rows are locked from that statement until commit, and
  // every create of the project queues on them; a refusal still rolls back everything before it.
  const [snapshot] = await Promise.all([
    insertSnapshot(tx, record.snapshot),
    insertOperation(tx, record.operation),
    deps.scheduler.createSnapshot(tx, record.cast, 1),
    reserveOrThrow(tx, ctx.projectId, record.quota),
  ]);
  return snapshot;
}

/** Times a single create re-checks a volume that changed between its check and its write. */
const CREATE_ATTEMPTS = 5;

/** What a volume created from a snapshot inherits (Cinder's create-from-snapshot rules). */
interface SnapshotSource {
  snapshotId: string;
  sizeGb: number;
  volumeType: string;
  availabilityZone: string;
  bootable: boolean;
  imageMetadata: Record<string, string>;
  encryptionKeyId: string;
  /** The source volume's backend: the new volume lives there too. */
  host: string;
}

/**
 * Checks a create-from-snapshot request: the project's snapshot is available, the size is at
 * least the snapshot's (0 means the same), and the availability zone, when given, is the
 * snapshot's. The snapshot row is share-locked so it cannot start deleting meanwhile.
 */
async function snapshotSource(
  tx: Executor,
  ctx: RequestContext,
  input: Omit<CreateVolumeInput, "clientRequestId">,
): Promise<SnapshotSource> {
  const snapshotId = input.snapshotId.toLowerCase();
  const snapshot = await getSnapshot(tx, ctx.projectId, snapshotId, { lock: "share" });
  if (!snapshot) throw new CinderblockError("NOT_FOUND", `snapshot ${snapshotId} not found`);
  if (snapshot.status !== "available") {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `snapshot ${snapshotId} status must be available to create a volume from it, but is ${snapshot.status}`,
    );
  }
  const origin = await getVolumeElevated(tx, snapshot.volumeId);
  if (!origin?.host) throw new CinderblockError("FAILED_PRECONDITION", `snapshot ${snapshotId} has no backend`);
  const sizeGb = input.sizeGb || snapshot.volumeSizeGb;
  if (sizeGb < snapshot.volumeSizeGb) {
    throw new CinderblockError(
      "INVALID_ARGUMENT",
      `size_gb: must be at least the snapshot's size, ${snapshot.volumeSizeGb}`,
    );
  }
  if (input.availabilityZone && input.availabilityZone !== origin.availabilityZone) {
    throw new CinderblockError(
      "INVALID_ARGUMENT",
      `availability_zone: must be the snapshot's, ${origin.availabilityZone}`,
    );
  }
  return {
    snapshotId,
    sizeGb,
    volumeType: snapshot.volumeType,
    availabilityZone: origin.availabilityZone,
    bootable: origin.bootable,
    imageMetadata: snapshot.imageMetadata,
    encryptionKeyId: snapshot.encryptionKeyId,
    host: origin.host,
  };
}

/** The api's use cases: each validates, checks state and quota, writes, and dispatches. */
export interface ApiUseCases extends ManagementUseCases, AttachmentUseCases, ManageUseCases, GroupUseCases {
  snapshotInstance(ctx: RequestContext, input: SnapshotInstanceInput): Promise<InstanceImage>;
  createVolume(ctx: RequestContext, input: CreateVolumeInput): Promise<VolumeRow>;
  getVolume(ctx: RequestContext, id: string): Promise<VolumeRow>;
  listVolumes(ctx: RequestContext, input: ListInput): Promise<Page<VolumeRow>>;
  createSnapshot(ctx: RequestContext, input: CreateSnapshotInput): Promise<SnapshotRow>;
  getSnapshot(ctx: RequestContext, id: string): Promise<SnapshotRow>;
  listSnapshots(ctx: RequestContext, input: ListInput & { volumeId: string }): Promise<Page<SnapshotRow>>;
  /** Yields the snapshot now and after each change, and returns after a terminal status. */
  watchSnapshot(ctx: RequestContext, id: string, signal: AbortSignal): AsyncGenerator<SnapshotRow>;
}

/** Builds the api's use cases over their dependencies. */
export function createApiUseCases(deps: ApiDependencies): ApiUseCases {
  const { db } = deps;

  async function loadSnapshot(ctx: RequestContext, id: string, includeDeleted = false): Promise<SnapshotRow> {
    const row = await getSnapshot(db, ctx.projectId, validateId("id", id), { includeDeleted });
    if (!row) throw new CinderblockError("NOT_FOUND", `snapshot ${id} not found`);
    return row;
  }

  const useCases: Omit<ApiUseCases, "snapshotInstance" | keyof GroupUseCases> = {
    ...createManagementUseCases(deps),
    ...createAttachmentUseCases(deps),
    ...createManageUseCases(deps),

    async createVolume(ctx, raw) {
      const { clientRequestId, ...input } = validateCreateVolume(raw);
      const hash = clientRequestId ? requestHash(input) : null;
      if (clientRequestId && hash) {
        const existing = await getVolumeByClientRequest(db, ctx.projectId, clientRequestId);
        if (existing) return replayOrConflict(existing, hash, clientRequestId);
      }
      const id = randomUUID();
      const operationId = randomUUID();
      const create = () =>
        transaction(db, async (tx) => {
          const source = input.snapshotId ? await snapshotSource(tx, ctx, input) : undefined;
          const sizeGb = source?.sizeGb ?? input.sizeGb;
          const volumeType = source?.volumeType ?? input.volumeType;
          await reserveOrThrow(tx, ctx.projectId, volumeQuotaDeltas(deps.quota, sizeGb, volumeType));
          // The project's snapshot usage rows, up front: its first snapshot then has rows to lock.
          await ensureQuotaRows(
            tx,
            ctx.projectId,
            snapshotQuotaDeltas(deps.quota, sizeGb, volumeType).map((q) => q.resource),
          );
          const volume = await insertVolume(tx, {
            id,
            projectId: ctx.projectId,
            userId: ctx.userId,
            name: input.name,
            description: input.description,
            status: "creating",
            sizeGb,
            volumeType: source?.volumeType ?? input.volumeType,
            availabilityZone: source?.availabilityZone ?? (input.availabilityZone || deps.defaultAvailabilityZone),
            bootable: source?.bootable ?? input.bootable,
            imageMetadata: source?.imageMetadata ?? input.imageMetadata,
            encryptionKeyId: source?.encryptionKeyId ?? input.encryptionKeyId.toLowerCase(),
            metadata: input.metadata,
            multiattach: input.multiattach,
            host: source?.host ?? null,
            snapshotId: source?.snapshotId ?? null,
            clientRequestId: clientRequestId || null,
            requestHash: hash,
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
      let created: VolumeRow;
      try {
        created = await create();
      } catch (error) {
        if (!clientRequestId || !hash || !isUniqueViolation(error, "volumes_project_client_request_idx")) throw error;
        const winner = await getVolumeByClientRequest(db, ctx.projectId, clientRequestId);
        if (!winner) throw error;
        return replayOrConflict(winner, hash, clientRequestId);
      }
      deps.onCommitted?.();
      return created;
    },

    async getVolume(ctx, id) {
      const row = await getVolume(db, ctx.projectId, validateId("id", id));
      if (!row) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
      return row;
    },

    async listVolumes(ctx, input) {
      const query = listQuery(ctx, input);
      return toPage(await listVolumes(db, query), query, (v) => v.sizeGb);
    },

    async createSnapshot(ctx, raw) {
      const { clientRequestId, ...input } = validateCreateSnapshot(raw);
      const volumeId = input.volumeId.toLowerCase();
      const hash = clientRequestId ? requestHash({ ...input, volumeId }) : null;
      if (clientRequestId && hash) {
        const existing = await getSnapshotByClientRequest(db, ctx.projectId, clientRequestId);
        if (existing) return replayOrConflict(existing, hash, clientRequestId);
      }
      const keys = { id: randomUUID(), operationId: randomUUID(), clientRequestId, hash };
      // NOTE: the volume is checked without a lock, then everything is written in one statement
      // that share-locks the volume and proceeds only if it is still as checked (createSnapshotAtOnce):
      // three round trips and no transaction around them. A volume that changed in between is
      // checked again, so the caller gets the same answer as under a lock.
      const create = async (): Promise<SnapshotRow> => {
        for (let attempt = 1; ; attempt++) {
          const volume = await snapshottableVolume(db, ctx, volumeId, input.force, false);
          const record = snapshotRecord(deps, ctx, { ...input, volumeId }, keys, volume);
          const outcome = await createSnapshotAtOnce(db, {
            volume,
            snapshot: record.snapshot,
            operation: record.operation,
            cast: deps.scheduler.createSnapshotMessage(record.cast, 1),
            quota: record.quota,
          });
          if ("created" in outcome) return outcome.created;
          if ("refused" in outcome) throw quotaExceeded(outcome.refused);
          if ("missingQuotaRows" in outcome) {
            await ensureQuotaRows(
              db,
              ctx.projectId,
              record.quota.map((q) => q.resource),
            );
          }
          if (attempt >= CREATE_ATTEMPTS) {
            throw new CinderblockError("ABORTED", `volume ${volumeId} kept changing while the snapshot was recorded`);
          }
        }
      };
      let created: SnapshotRow;
      try {
        created = await create();
      } catch (error) {
        if (!clientRequestId || !hash || !isUniqueViolation(error, "snapshots_project_client_request_idx")) throw error;
        const winner = await getSnapshotByClientRequest(db, ctx.projectId, clientRequestId);
        if (!winner) throw error;
        return replayOrConflict(winner, hash, clientRequestId);
      }
      deps.onCommitted?.();
      return created;
    },

    getSnapshot: loadSnapshot,

    async listSnapshots(ctx, input) {
      const query = listQuery(ctx, input);
      const volumeId = input.volumeId ? validateId("volume_id", input.volumeId) : undefined;
      return toPage(await listSnapshots(db, { ...query, volumeId }), query, (s) => s.volumeSizeGb);
    },

    async *watchSnapshot(ctx, id, signal) {
      // NOTE: deleted rows count, so a watcher that arrives just after a delete finished sees it end.
      let current = await loadSnapshot(ctx, id, true);
      // NOTE: subscribe before the first read that counts, so no change between them is missed.
      const changes = deps.changes.subscribe("snapshot", current.id);
      const onAbort = () => changes.close();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        current = await loadSnapshot(ctx, id, true);
        yield current;
        if (TERMINAL_SNAPSHOT_STATUSES.includes(current.status)) return;
        for await (const _ of changes) {
          // A delete ends with the row soft-deleted: the watcher still sees its last state.
          const next = await loadSnapshot(ctx, id, true);
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
  return {
    ...useCases,
    ...createGroupUseCases({
      ...deps,
      recordSnapshot: (tx, ctx, input, keys) => recordSnapshot(tx, deps, ctx, input, keys),
      watchSnapshot: useCases.watchSnapshot,
    }),
    snapshotInstance: createInstanceSnapshot({
      db,
      compute: deps.compute,
      createSnapshot: useCases.createSnapshot,
      watchSnapshot: useCases.watchSnapshot,
      timeoutSeconds: deps.snapshotInstanceTimeoutSeconds,
    }),
  };
}
