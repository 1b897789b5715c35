import { tellVolumeExtended } from "@cinderblock/bus";
import {
  finishOperation,
  getVolumeElevated,
  listAttachmentsOfVolume,
  releaseQuota,
  updateVolumeStatus,
} from "@cinderblock/db";
import { extendQuotaDeltas, VOLUME_OPERATIONS, volumeUsage } from "@cinderblock/domain";
import type { VolumeExtendVolume } from "@cinderblock/proto";
import { type Delivery, failureFields, type OperationContext } from "./context.js";

/** Releases ignore limits: any defaults do. */
const unlimited = { volumes: -1, snapshots: -1, gigabytes: -1 };

/**
 * Cinder's `VolumeManager.extend_volume`: the driver grows the volume, which goes back to
 * `available` (or `in-use` when attached: Cinder 3.42) at its new size with `volume.resize.end`,
 * and the compute agent of each attached instance is told (Nova's `volume-extended` event); on
 * failure `error_extending`, and the gigabytes the api reserved go back.
 */
export function extendVolumeOperation(
  ctx: OperationContext,
): (cast: VolumeExtendVolume, delivery: Delivery) => Promise<void> {
  const { done, failed } = VOLUME_OPERATIONS.extend;
  const attachedDone = VOLUME_OPERATIONS.extendAttached.done;
  return async (cast, delivery) => {
    const volume = await getVolumeElevated(ctx.db, cast.volumeId);
    if (volume?.status !== "extending") {
      await finishOperation(ctx.db, cast.operationId, "done");
      return;
    }
    const ids = { volume_id: volume.id, operation_id: cast.operationId, new_size_gb: cast.newSizeGb };
    await ctx.started("volume.resize.start", volumeUsage(volume), cast.operationId);
    try {
      await ctx.driverFor(volume.host).extendVolume({ id: volume.id, sizeGb: volume.sizeGb }, cast.newSizeGb);
    } catch (error) {
      const failure = ctx.finalFailure(
        error,
        delivery,
        "extend_volume",
        "the storage backend failed to extend the volume",
      );
      const { reason } = failure;
      await ctx.record(async (tx, outcome) => {
        const [row] = await Promise.all([
          updateVolumeStatus(tx, volume.id, failed.from, failed.to, failureFields(failure)),
          finishOperation(tx, cast.operationId, "failed", failure.detail),
        ]);
        if (!row) return;
        await releaseQuota(
          tx,
          row.projectId,
          extendQuotaDeltas(unlimited, cast.newSizeGb - row.sizeGb, row.volumeType),
        );
        await outcome.announce("ERROR", "volume.resize.error", { ...volumeUsage(row), reason }, cast.operationId);
        outcome.changed("volume", volume.id);
      });
      ctx.log({ ...ids, ...failure }, "volume extend failed", true);
      return;
    }
    // NOTE: no attachment can come or go while the volume is extending (attach and detach start
    // only from available or in-use), so the ones read here are the ones it had when it started.
    const instances = await ctx.record(async (tx, outcome) => {
      const attachments = await listAttachmentsOfVolume(tx, volume.id);
      const move = attachments.length > 0 ? attachedDone : done;
      const [row] = await Promise.all([
        updateVolumeStatus(tx, volume.id, move.from, move.to, { sizeGb: cast.newSizeGb, statusReason: "" }),
        finishOperation(tx, cast.operationId, "done"),
      ]);
      if (!row) return undefined;
      await outcome.announce("INFO", "volume.resize.end", volumeUsage(row), cast.operationId);
      outcome.changed("volume", volume.id);
      return [...new Set(attachments.map((a) => a.instanceId))];
    });
    for (const instanceId of instances ?? []) {
      try {
        tellVolumeExtended(ctx.bus, { instanceId, volumeId: volume.id, newSizeGb: cast.newSizeGb });
      } catch (error) {
        // The extend is recorded; an agent not told can still see the new size on its next rescan.
        ctx.log(
          { ...ids, instance_id: instanceId, error: String(error) },
          "compute agent not told of the extend",
          true,
        );
      }
    }
    ctx.log(instances?.length ? { ...ids, instance_ids: instances } : ids, "volume extended");
  };
}
