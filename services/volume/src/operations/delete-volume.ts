import {
  finishOperation,
  getVolumeElevated,
  listSnapshotsOfVolume,
  markVolumeDeleted,
  releaseQuota,
  updateVolumeStatus,
  type VolumeRow,
} from "@cinderblock/db";
import { cascadedDeleteId, VOLUME_OPERATIONS, volumeQuotaHeld, volumeUsage } from "@cinderblock/domain";
import type { VolumeDeleteVolume } from "@cinderblock/proto";
import { type Delivery, type Failure, failureFields, type OperationContext } from "./context.js";
import { deleteOneSnapshot } from "./delete-snapshot.js";

/**
 * Cinder's `VolumeManager.delete_volume`, with cascade: the snapshots the api set `deleting` with
 * the volume are deleted first, each under its own operation (derived from the volume's), then the
 * volume; it is soft-deleted and its quota released with `volume.delete.end`. A snapshot that
 * cannot go leaves the volume `error_deleting` with the reason; the other snapshots still go.
 */
export function deleteVolumeOperation(
  ctx: OperationContext,
): (cast: VolumeDeleteVolume, delivery: Delivery) => Promise<void> {
  const { failed } = VOLUME_OPERATIONS.delete;

  async function fail(volume: VolumeRow, operationId: string, failure: Failure): Promise<void> {
    const { reason } = failure;
    await ctx.record(async (tx, outcome) => {
      const [row] = await Promise.all([
        updateVolumeStatus(tx, volume.id, failed.from, failed.to, failureFields(failure)),
        finishOperation(tx, operationId, "failed", failure.detail),
      ]);
      if (!row) return;
      await outcome.announce("ERROR", "volume.delete.error", { ...volumeUsage(row), reason }, operationId);
      outcome.changed("volume", volume.id);
    });
    ctx.log({ volume_id: volume.id, operation_id: operationId, ...failure }, "volume delete failed", true);
  }

  return async (cast, delivery) => {
    const volume = await getVolumeElevated(ctx.db, cast.volumeId);
    if (volume?.status !== "deleting") {
      await finishOperation(ctx.db, cast.operationId, "done");
      return;
    }
    await ctx.started("volume.delete.start", volumeUsage(volume), cast.operationId);
    // Cascade: every snapshot the api set deleting goes, each under its own operation; the api
    // locked the volume and its snapshots to decide, so no other snapshot can be there. One that
    // is (a reset by an admin) keeps the volume, and says so.
    const refusals: Failure[] = [];
    for (const snapshot of await listSnapshotsOfVolume(ctx.db, volume.id)) {
      if (snapshot.status !== "deleting") {
        const kept = `snapshot ${snapshot.id} is ${snapshot.status}; the volume keeps it`;
        refusals.push({ reason: kept, detail: kept });
        continue;
      }
      const outcome = await deleteOneSnapshot(
        ctx,
        snapshot,
        volume,
        cascadedDeleteId(cast.operationId, snapshot.id),
        delivery,
      );
      if (!outcome.deleted) {
        const { reason, detail } = outcome.failure;
        const what = `snapshot ${snapshot.id} could not be deleted`;
        refusals.push({ reason: `${what}: ${reason}`, detail: `${what}: ${detail}` });
      }
    }
    if (refusals.length > 0) {
      await fail(volume, cast.operationId, {
        reason: refusals.map((r) => r.reason).join("; "),
        detail: refusals.map((r) => r.detail).join("; "),
      });
      return;
    }
    try {
      await ctx.driverFor(volume.host).deleteVolume({ id: volume.id, sizeGb: volume.sizeGb });
    } catch (error) {
      await fail(
        volume,
        cast.operationId,
        ctx.finalFailure(error, delivery, "delete_volume", "the storage backend failed to delete the volume"),
      );
      return;
    }
    const gone = await ctx.record(async (tx, outcome) => {
      const [row] = await Promise.all([
        markVolumeDeleted(tx, volume.id),
        finishOperation(tx, cast.operationId, "done"),
      ]);
      if (!row) return undefined;
      await releaseQuota(tx, row.projectId, volumeQuotaHeld(row));
      await outcome.announce("INFO", "volume.delete.end", volumeUsage(row), cast.operationId);
      outcome.changed("volume", volume.id);
      return row;
    });
    if (gone) ctx.log({ volume_id: volume.id, operation_id: cast.operationId }, "volume deleted");
  };
}
