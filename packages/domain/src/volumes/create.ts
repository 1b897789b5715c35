import { randomUUID } from "node:crypto";
import {
  type Executor,
  ensureQuotaRows,
  getSnapshot,
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

/** What a volume created from a snapshot inherits (Cinder's create-from-snapshot rules). */
interface SnapshotSource {
  snapshotId: string;
  sizeGb: number;
  volumeType: string;
  volumeTypeId: string | null;
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
    volumeTypeId: snapshot.volumeTypeId,
    availabilityZone: origin.availabilityZone,
    bootable: origin.bootable,
    imageMetadata: snapshot.imageMetadata,
    encryptionKeyId: snapshot.encryptionKeyId,
    host: origin.host,
  };
}

/**
 * The type of a volume created from a snapshot: the snapshot's. Another type asked for is refused
 * (Cinder refuses one only across backends; a volume from a snapshot stays on the snapshot's).
 */
async function sourceType(
  tx: Executor,
  ctx: RequestContext,
  source: SnapshotSource,
  asked: string,
): Promise<{ id: string | null; name: string }> {
  const inherited = { id: source.volumeTypeId, name: source.volumeType };
  if (!asked) return inherited;
  const type = await findUsableType(tx, ctx, asked, { lock: "key share" });
  if (!type) throw new CinderblockError("NOT_FOUND", `volume_type: volume type ${JSON.stringify(asked)} not found`);
  if (type.id !== source.volumeTypeId) {
    throw new CinderblockError(
      "INVALID_ARGUMENT",
      `volume_type: must be the snapshot's, ${source.volumeType || "(none)"}, for a volume created from it`,
    );
  }
  return inherited;
}

/**
 * Cinder's `volume/api.py` `create` (empty, or from a snapshot): the quota is reserved and the row
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
        const source = input.snapshotId ? await snapshotSource(tx, ctx, input) : undefined;
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
  };
}
