import { finishOperation, getSnapshotElevated, getVolumeElevated, updateVolumeStatus } from "@cinderblock/db";
import { VOLUME_OPERATIONS, volumeUsage } from "@cinderblock/domain";
import type { VolumeCreateVolume } from "@cinderblock/proto";
import { DriverError } from "../drivers/driver.js";
import { type Delivery, type Failure, failureFields, type OperationContext } from "./context.js";
import { rescheduleCreate } from "./reschedule-create.js";

/**
 * Cinder's `VolumeManager.create_volume`: the driver makes an empty volume, one from a snapshot, or
 * a clone of a volume (a source the api share-locked when it accepted the create, and which cannot
 * start deleting while a volume is being made from it); `available` with `volume.create.end`
 * (its payload names the snapshot_id or source_volid), or `error` with the reason.
 */
export function createVolumeOperation(
  ctx: OperationContext,
): (cast: VolumeCreateVolume, delivery: Delivery) => Promise<void> {
  const { done, failed } = VOLUME_OPERATIONS.create;
  return async (cast, delivery) => {
    const volume = await getVolumeElevated(ctx.db, cast.volumeId);
    if (volume?.status !== "creating") {
      await finishOperation(ctx.db, cast.operationId, volume?.status === "available" ? "done" : "failed");
      return;
    }
    // NOTE: a stale delivery: this backend failed the volume and handed it back to the scheduler since.
    if (volume.host !== `${ctx.hostName}@${cast.backend}`) return;
    const ids = {
      volume_id: volume.id,
      snapshot_id: volume.snapshotId ?? undefined,
      source_volid: volume.sourceVolid ?? undefined,
      operation_id: cast.operationId,
    };
    await ctx.started("volume.create.start", volumeUsage(volume), cast.operationId);
    let failure: Failure | undefined;
    try {
      const driver = ctx.driverFor(volume.host);
      if (volume.snapshotId) {
        const snapshot = await getSnapshotElevated(ctx.db, volume.snapshotId);
        if (!snapshot) throw new DriverError(`snapshot ${volume.snapshotId} no longer exists`, { retryable: false });
        await driver.createVolumeFromSnapshot(
          { id: volume.id, sizeGb: volume.sizeGb },
          { id: snapshot.id, volumeId: snapshot.volumeId, volumeSizeGb: snapshot.volumeSizeGb },
        );
      } else if (volume.sourceVolid) {
        const source = await getVolumeElevated(ctx.db, volume.sourceVolid);
        if (!source) {
          throw new DriverError(`source volume ${volume.sourceVolid} no longer exists`, { retryable: false });
        }
        await driver.createClonedVolume(
          { id: volume.id, sizeGb: volume.sizeGb },
          { id: source.id, sizeGb: source.sizeGb },
        );
      } else {
        await driver.createVolume({ id: volume.id, sizeGb: volume.sizeGb });
      }
    } catch (error) {
      failure = ctx.finalFailure(error, delivery, "create_volume", "the storage backend failed to create the volume");
    }
    if (failure && (await rescheduleCreate(ctx, volume, cast, failure))) return;
    const reason = failure?.reason;
    const move = failure ? failed : done;
    const row = await ctx.record(async (tx, outcome) => {
      const [changed] = await Promise.all([
        updateVolumeStatus(tx, volume.id, move.from, move.to, failureFields(failure ?? { reason: "", detail: "" })),
        finishOperation(tx, cast.operationId, failure ? "failed" : "done", failure?.detail ?? ""),
      ]);
      if (!changed) return undefined;
      if (reason) {
        await outcome.announce("ERROR", "volume.create.error", { ...volumeUsage(changed), reason }, cast.operationId);
      } else {
        await outcome.announce("INFO", "volume.create.end", volumeUsage(changed), cast.operationId);
      }
      outcome.changed("volume", volume.id);
      return changed;
    });
    if (row)
      ctx.log(
        failure ? { ...ids, ...failure } : ids,
        reason ? "volume create failed" : "volume created",
        reason !== undefined,
      );
  };
}
