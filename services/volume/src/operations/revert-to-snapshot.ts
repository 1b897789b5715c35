import {
  finishOperation,
  getSnapshotElevated,
  getVolumeElevated,
  updateSnapshotStatus,
  updateVolumeStatus,
} from "@cinderblock/db";
import { SNAPSHOT_OPERATIONS, VOLUME_OPERATIONS, volumeUsage } from "@cinderblock/domain";
import type { VolumeRevertToSnapshot } from "@cinderblock/proto";
import { type Delivery, type Failure, failureFields, type OperationContext } from "./context.js";

/**
 * Cinder's `VolumeManager.revert_to_snapshot`: the driver rolls the volume back to its latest
 * snapshot; both go back to `available` with `volume.revert.end`. On failure the volume goes to
 * `error` and the snapshot back to `available` (as Cinder does), with `volume.revert.error`.
 */
export function revertToSnapshotOperation(
  ctx: OperationContext,
): (cast: VolumeRevertToSnapshot, delivery: Delivery) => Promise<void> {
  return async (cast, delivery) => {
    const [volume, snapshot] = await Promise.all([
      getVolumeElevated(ctx.db, cast.volumeId),
      getSnapshotElevated(ctx.db, cast.snapshotId),
    ]);
    if (volume?.status !== "reverting" || snapshot?.status !== "restoring") {
      await finishOperation(ctx.db, cast.operationId, "done");
      return;
    }
    const ids = { volume_id: volume.id, snapshot_id: snapshot.id, operation_id: cast.operationId };
    await ctx.started("volume.revert.start", { ...volumeUsage(volume), snapshot_id: snapshot.id }, cast.operationId);
    let failure: Failure | undefined;
    try {
      await ctx
        .driverFor(volume.host)
        .revertToSnapshot(
          { id: volume.id, sizeGb: volume.sizeGb },
          { id: snapshot.id, volumeId: volume.id, volumeSizeGb: snapshot.volumeSizeGb },
        );
    } catch (error) {
      failure = ctx.finalFailure(
        error,
        delivery,
        "revert_to_snapshot",
        "the storage backend failed to revert the volume",
      );
    }
    const reason = failure?.reason;
    const volumeMove = reason ? VOLUME_OPERATIONS.revert.failed : VOLUME_OPERATIONS.revert.done;
    const snapshotMove = reason ? SNAPSHOT_OPERATIONS.revert.failed : SNAPSHOT_OPERATIONS.revert.done;
    await ctx.record(async (tx, outcome) => {
      const [after] = await Promise.all([
        updateVolumeStatus(
          tx,
          volume.id,
          volumeMove.from,
          volumeMove.to,
          failureFields(failure ?? { reason: "", detail: "" }),
        ),
        updateSnapshotStatus(tx, snapshot.id, snapshotMove.from, snapshotMove.to),
        finishOperation(tx, cast.operationId, failure ? "failed" : "done", failure?.detail ?? ""),
      ]);
      outcome.changed("volume", volume.id);
      outcome.changed("snapshot", snapshot.id);
      if (!after) return;
      if (reason) {
        await outcome.announce("ERROR", "volume.revert.error", { ...volumeUsage(after), reason }, cast.operationId);
      } else {
        await outcome.announce(
          "INFO",
          "volume.revert.end",
          { ...volumeUsage(after), snapshot_id: snapshot.id },
          cast.operationId,
        );
      }
    });
    ctx.log(
      failure ? { ...ids, ...failure } : ids,
      reason ? "volume revert failed" : "volume reverted",
      reason !== undefined,
    );
  };
}
