import { enqueueVolumeReschedule } from "@cinderblock/bus";
import { lockFailedPlacements, recordFailedPlacements, unassignVolumeHost, type VolumeRow } from "@cinderblock/db";
import { VOLUME_OPERATIONS } from "@cinderblock/domain";
import type { VolumeCreateVolume } from "@cinderblock/proto";
import type { Failure, OperationContext } from "./context.js";

/**
 * Cinder's reschedule (`OnFailureRescheduleTask`): a backend that failed for good to create a new
 * blank volume hands it back to the scheduler rather than failing it. In one transaction the
 * volume leaves this backend (still `creating`), its operation records the failed placements (and
 * gets its time again: it is the same operation) and a SchedulerCreateVolume naming every backend
 * tried goes into the outbox; the scheduler places it elsewhere or, out of backends or attempts,
 * fails it. Returns false when the create may not be rescheduled (retries off, or a volume made
 * from a snapshot, bound to its source's backend): the caller records the failure as before.
 */
export async function rescheduleCreate(
  ctx: OperationContext,
  volume: VolumeRow,
  cast: VolumeCreateVolume,
  failure: Failure,
): Promise<boolean> {
  const host = volume.host;
  // NOTE: a volume made from a source (a snapshot, or a volume it clones) lives where its source does.
  if (ctx.maxSchedulingAttempts <= 1 || volume.snapshotId || volume.sourceVolid || !host) return false;
  const placements = await ctx.record(async (tx, outcome) => {
    const earlier = await lockFailedPlacements(tx, cast.operationId);
    // The operation is over (the reconciler gave up on it), or a duplicate delivery of this cast
    // already handed the volume back: nothing is this delivery's to change.
    if (!earlier) return undefined;
    const moved = await unassignVolumeHost(tx, volume.id, host, VOLUME_OPERATIONS.create.rescheduled.from);
    if (!moved) return undefined;
    const failed = [...earlier, { host, error: failure.detail }];
    await recordFailedPlacements(tx, cast.operationId, failed);
    await enqueueVolumeReschedule(tx, ctx.bus.subjects, {
      operationId: cast.operationId,
      context: cast.context,
      volumeId: volume.id,
      sizeGb: volume.sizeGb,
      volumeType: volume.volumeType,
      availabilityZone: volume.availabilityZone,
      failedPlacements: failed,
    });
    outcome.changed("volume", volume.id);
    return failed;
  });
  if (placements) {
    ctx.log(
      { volume_id: volume.id, operation_id: cast.operationId, host, attempt: placements.length, ...failure },
      "volume create failed on this backend; handed back to the scheduler to retry on another",
      true,
    );
  }
  return true;
}
