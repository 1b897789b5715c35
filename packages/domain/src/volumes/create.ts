import { randomUUID } from "node:crypto";
import {
  type Executor,
  ensureQuotaRows,
  getSnapshot,
  getVolume,
  getVolumeByClientRequest,
  getVolumeElevated,
  insertOperation,
  insertVolume,
  transaction,
  type VolumeRow,
} from "@cinderblock/db";
import { castContext, type RequestContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { isUniqueViolation, replayOrConflict, requestHash } from "../idempotency.js";
import { reserveOrThrow, snapshotQuotaDeltas, volumeQuotaDeltas } from "../quota.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { type CreateVolumeInput, validateCreateVolume } from "../validation.js";
import { findUsableType, resolveVolumeType } from "../volume-types/resolve.js";

/** What a volume created from a snapshot or cloned from a volume inherits (Cinder's rules). */
interface Source {
  /** How refusals name the source: "snapshot" or "source volume". */
  kind: "snapshot" | "source volume";
  snapshotId: string | null;
  sourceVolid: string | null;
  sizeGb: number;
  volumeType: string;
  volumeTypeId: string | null;
  availabilityZone: string;
  bootable: boolean;
  imageMetadata: Record<string, string>;
  encryptionKeyId: string;
  /** The source volume's backend: the new volume lives there too. */
  host: string;
  pool: string | null;
}

/** The size of a volume made from a source of `sourceSizeGb` (0: the same); never smaller. */
function sizeFrom(kind: Source["kind"], askedGb: number, sourceSizeGb: number): number {
  const sizeGb = askedGb || sourceSizeGb;
  if (sizeGb < sourceSizeGb) {
    const whose = kind === "snapshot" ? "the snapshot's" : "the source volume's";
    throw new CinderblockError("INVALID_ARGUMENT", `size_gb: must be at least ${whose} size, ${sourceSizeGb}`);
  }
  return sizeGb;
}

/** The availability zone, when given, must be the source's. */
function checkZone(kind: Source["kind"], asked: string, sourceZone: string): void {
  if (asked && asked !== sourceZone) {
    const whose = kind === "snapshot" ? "the snapshot's" : "the source volume's";
    throw new CinderblockError("INVALID_ARGUMENT", `availability_zone: must be ${whose}, ${sourceZone}`);
  }
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
): Promise<Source> {
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
  const sizeGb = sizeFrom("snapshot", input.sizeGb, snapshot.volumeSizeGb);
  checkZone("snapshot", input.availabilityZone, origin.availabilityZone);
  return {
    kind: "snapshot",
    snapshotId,
    sourceVolid: null,
    sizeGb,
    volumeType: snapshot.volumeType,
    volumeTypeId: snapshot.volumeTypeId,
    availabilityZone: origin.availabilityZone,
    bootable: origin.bootable,
    imageMetadata: snapshot.imageMetadata,
    encryptionKeyId: snapshot.encryptionKeyId,
    host: origin.host,
    pool: origin.pool,
  };
}

/** Statuses a volume may be cloned from (Cinder: an attached volume too). */
const CLONABLE: readonly string[] = ["available", "in-use"];

/**
 * Checks a clone request (Cinder's `source_volid`): the project's volume is available or in-use
 * and on a backend, the size is at least its size (0 means the same), and the availability zone,
 * when given, is its. The source row is share-locked, as a snapshot create does: it cannot start
 * deleting (or extending, reverting) until the clone is recorded, and afterwards those refuse while
 * the clone is `creating` (see the state machine's conflicts).
 */
async function volumeSource(
  tx: Executor,
  ctx: RequestContext,
  input: Omit<CreateVolumeInput, "clientRequestId">,
): Promise<Source> {
  const sourceId = input.sourceVolumeId.toLowerCase();
  const source = await getVolume(tx, ctx.projectId, sourceId, { lock: "share" });
  if (!source) throw new CinderblockError("NOT_FOUND", `source_volume_id: volume ${sourceId} not found`);
  if (!CLONABLE.includes(source.status)) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `source_volume_id: volume ${sourceId} status must be available or in-use to clone it, but is ${source.status}`,
    );
  }
  if (!source.host) {
    throw new CinderblockError("FAILED_PRECONDITION", `source_volume_id: volume ${sourceId} has no backend`);
  }
  const sizeGb = sizeFrom("source volume", input.sizeGb, source.sizeGb);
  checkZone("source volume", input.availabilityZone, source.availabilityZone);
  return {
    kind: "source volume",
    snapshotId: null,
    sourceVolid: sourceId,
    sizeGb,
    volumeType: source.volumeType,
    volumeTypeId: source.volumeTypeId,
    availabilityZone: source.availabilityZone,
    bootable: source.bootable,
    imageMetadata: source.imageMetadata,
    encryptionKeyId: source.encryptionKeyId,
    host: source.host,
    pool: source.pool,
  };
}

/**
 * The type of a volume created from a snapshot or cloned: the source's. Another type asked for is
 * refused (Cinder refuses one only across backends; the new volume stays on the source's).
 */
async function sourceType(
  tx: Executor,
  ctx: RequestContext,
  source: Source,
  asked: string,
): Promise<{ id: string | null; name: string }> {
  const inherited = { id: source.volumeTypeId, name: source.volumeType };
  if (!asked) return inherited;
  const type = await findUsableType(tx, ctx, asked, { lock: "key share" });
  if (!type) throw new CinderblockError("NOT_FOUND", `volume_type: volume type ${JSON.stringify(asked)} not found`);
  if (type.id !== source.volumeTypeId) {
    const what = source.kind === "snapshot" ? "the snapshot's" : "the source volume's";
    throw new CinderblockError(
      "INVALID_ARGUMENT",
      `volume_type: must be ${what}, ${source.volumeType || "(none)"}, for a volume created from it`,
    );
  }
  return inherited;
}

/**
 * Cinder's `volume/api.py` `create` (empty, from a snapshot, or a clone of a volume): the quota is reserved and the row
 * (`creating`), its operation and the cast to the scheduler are written in one transaction. A
 * repeated client request id replays the first answer.
 */
export function createVolumeUseCase(
  deps: Pick<
    ApiDependencies,
    | "db"
    | "scheduler"
    | "quota"
    | "defaultAvailabilityZone"
    | "defaultVolumeType"
    | "operationTimeoutSeconds"
    | "onCommitted"
  >,
): ApiUseCases["createVolume"] {
  const { db } = deps;
  return async (ctx, raw) => {
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
        const source = input.snapshotId
          ? await snapshotSource(tx, ctx, input)
          : input.sourceVolumeId
            ? await volumeSource(tx, ctx, input)
            : undefined;
        const sizeGb = source?.sizeGb ?? input.sizeGb;
        const type = source
          ? await sourceType(tx, ctx, source, input.volumeType)
          : await resolveVolumeType(tx, ctx, input.volumeType, deps.defaultVolumeType).then((t) => ({
              id: t.id,
              name: t.name,
            }));
        const volumeType = type.name;
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
          volumeType,
          volumeTypeId: type.id,
          availabilityZone: source?.availabilityZone ?? (input.availabilityZone || deps.defaultAvailabilityZone),
          bootable: source?.bootable ?? input.bootable,
          imageMetadata: source?.imageMetadata ?? input.imageMetadata,
          encryptionKeyId: source?.encryptionKeyId ?? input.encryptionKeyId.toLowerCase(),
          metadata: input.metadata,
          multiattach: input.multiattach,
          // Kept on the row: the scheduler (and a reconciler's re-dispatch) places by them.
          schedulerHints:
            input.sameHost.length + input.differentHost.length > 0
              ? {
                  sameHost: input.sameHost.map((v) => v.toLowerCase()),
                  differentHost: input.differentHost.map((v) => v.toLowerCase()),
                }
              : null,
          host: source?.host ?? null,
          pool: source?.pool ?? null,
          snapshotId: source?.snapshotId ?? null,
          sourceVolid: source?.sourceVolid ?? null,
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
  };
}
