import { randomUUID } from "node:crypto";
import {
  createSnapshotAtOnce,
  type Executor,
  ensureQuotaRows,
  getSnapshotByClientRequest,
  getVolumeWithBackend,
  insertOperation,
  insertSnapshot,
  type NewOperation,
  type NewSnapshotRow,
  type QuotaDelta,
  type SnapshotRow,
  type VolumeRow,
} from "@cinderblock/db";
import type { SchedulerCreateSnapshot } from "@cinderblock/proto";
import { castContext, type RequestContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { isUniqueViolation, replayOrConflict, requestHash } from "../idempotency.js";
import { quotaExceeded, reserveOrThrow, snapshotQuotaDeltas } from "../quota.js";
import { RecentMap } from "../recent-map.js";
import { assertVolumeSnapshottable } from "../state-machine.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { type CreateSnapshotInput, validateCreateSnapshot } from "../validation.js";

/** Ids and idempotency data of a snapshot about to be recorded. */
interface SnapshotRecordKeys {
  id: string;
  operationId: string;
  clientRequestId: string;
  hash: string | null;
}

/**
 * The volume a snapshot is to be taken of, checked as the seed's api does: it belongs to the
 * project and may be snapshotted (available or in-use: Cinder 3.66), it has a backend, and that backend
 * is not frozen. `lock` share-locks the row for the rest of the caller's transaction.
 */
async function snapshottableVolume(
  db: Executor,
  ctx: RequestContext,
  volumeId: string,
  lock: boolean,
): Promise<VolumeRow & { host: string }> {
  const found = await getVolumeWithBackend(db, ctx.projectId, volumeId, lock ? { lock: "share" } : {});
  if (!found) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
  const { volume, backendFrozen } = found;
  assertVolumeSnapshottable(volume);
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
      volumeTypeId: volume.volumeTypeId,
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
export async function recordSnapshot(
  tx: Executor,
  deps: Pick<ApiDependencies, "quota" | "scheduler" | "serviceDownTimeSeconds" | "operationTimeoutSeconds">,
  ctx: RequestContext,
  input: Omit<CreateSnapshotInput, "clientRequestId">,
  keys: SnapshotRecordKeys,
): Promise<SnapshotRow> {
  const volume = await snapshottableVolume(tx, ctx, input.volumeId, true);
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

/** How many volumes (project and id) the api remembers as checked snapshottable: ~1.5 MB at most. */
const CHECKED_VOLUMES_KEPT = 1024;

/** Times a single create re-checks a volume that changed between its check and its write. */
const CREATE_ATTEMPTS = 5;

/**
 * Cinder's `volume/api.py` `create_snapshot` (`force` is accepted and ignored, as since 3.66): the
 * volume is checked, then the row (`creating`), its operation, the cast to the scheduler and the
 * quota reservation are written at once. A repeated client request id replays the first answer.
 */
export function createSnapshotUseCase(
  deps: Pick<ApiDependencies, "db" | "scheduler" | "quota" | "operationTimeoutSeconds" | "onCommitted">,
): ApiUseCases["createSnapshot"] {
  const { db } = deps;
  const checkedVolumes = new RecentMap<string, VolumeRow & { host: string }>(CHECKED_VOLUMES_KEPT);
  return async (ctx, raw) => {
    const { clientRequestId, ...input } = validateCreateSnapshot(raw);
    // NOTE: a group's members are recorded by CreateGroupSnapshot, all in one transaction; one
    // joining later could join another project's group (the id is not looked up here).
    if (input.groupSnapshotId) {
      throw new CinderblockError(
        "INVALID_ARGUMENT",
        "group_snapshot_id: must be empty; snapshots join a group only through CreateGroupSnapshot",
      );
    }
    const volumeId = input.volumeId.toLowerCase();
    const hash = clientRequestId ? requestHash({ ...input, volumeId }) : null;
    if (clientRequestId && hash) {
      const existing = await getSnapshotByClientRequest(db, ctx.projectId, clientRequestId);
      if (existing) return replayOrConflict(existing, hash, clientRequestId);
    }
    const keys = { id: randomUUID(), operationId: randomUUID(), clientRequestId, hash };
    // NOTE: the volume is checked without a lock, then everything is written in one statement
    // that share-locks the volume and proceeds only if it is still as checked (createSnapshotAtOnce):
    // no transaction around them. A volume that changed in between is checked again, so the caller
    // gets the same answer as under a lock. The check is skipped when this process saw the volume
    // snapshottable before (checkedVolumes): the statement's compare makes a stale memory cost one
    // more try, never a wrong answer, and a snapshot of a volume snapshotted before is then one
    // statement and one commit, where it was two of each.
    const key = `${ctx.projectId}\u0000${volumeId}`;
    const create = async (): Promise<SnapshotRow> => {
      for (let attempt = 1; ; attempt++) {
        const remembered = attempt === 1 ? checkedVolumes.get(key) : undefined;
        const volume = remembered ?? (await snapshottableVolume(db, ctx, volumeId, false));
        const record = snapshotRecord(deps, ctx, { ...input, volumeId }, keys, volume);
        const outcome = await createSnapshotAtOnce(db, {
          volume,
          snapshot: record.snapshot,
          operation: record.operation,
          cast: deps.scheduler.createSnapshotMessage(record.cast, 1),
          quota: record.quota,
        });
        if ("created" in outcome) {
          checkedVolumes.set(key, volume);
          return outcome.created;
        }
        checkedVolumes.delete(key);
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
  };
}
