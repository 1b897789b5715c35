import type { OutcomeWrites } from "@cinderblock/bus";
import {
  finishOperation,
  getSnapshotElevated,
  getVolumeElevated,
  markSnapshotDeleted,
  releaseQuota,
  type SnapshotRow,
  type Tx,
  updateSnapshotStatus,
  type VolumeRow,
} from "@cinderblock/db";
import { SNAPSHOT_OPERATIONS, settleGroupDelete, snapshotQuotaHeld, snapshotUsage } from "@cinderblock/domain";
import type { VolumeDeleteSnapshot } from "@cinderblock/proto";
import { SnapshotBusyError } from "../drivers/driver.js";
import { type Delivery, type Failure, failureFields, type OperationContext } from "./context.js";

/** Whether a snapshot's delete happened; if not, whether the backend said busy, and why. */
export type DeleteOutcome = { deleted: true } | { deleted: false; busy: boolean; failure: Failure };

/** Writes what a member's delete decided about its group (deleted, or error_deleting), keyed by the group. */
async function settleGroup(tx: Tx, outcome: OutcomeWrites, groupId: string): Promise<void> {
  const event = await settleGroupDelete(tx, groupId);
  if (event) await outcome.announce(event.priority, event.eventType, event.payload, groupId);
}

/**
 * Deletes one snapshot that is `deleting`, under its own delete operation (`operationId`: the
 * cast's, or the one derived from its volume's cascade): the driver removes it, then the row is
 * soft-deleted, its quota released and its operation done, with `snapshot.delete.end`, in one
 * transaction. Busy → back to `available` with a reason; a final failure → `error_deleting`, which
 * a new delete may retry.
 */
export async function deleteOneSnapshot(
  ctx: OperationContext,
  snapshot: SnapshotRow,
  volume: VolumeRow | undefined,
  operationId: string,
  delivery: Delivery,
): Promise<DeleteOutcome> {
  const ids = { snapshot_id: snapshot.id, volume_id: snapshot.volumeId, operation_id: operationId };
  await ctx.started("snapshot.delete.start", snapshotUsage(snapshot, volume), operationId);
  try {
    if (volume) {
      await ctx.driverFor(volume.host).deleteSnapshot({
        id: snapshot.id,
        volumeId: volume.id,
        volumeSizeGb: snapshot.volumeSizeGb,
      });
    }
  } catch (error) {
    const busy = error instanceof SnapshotBusyError;
    const failure: Failure = busy
      ? {
          reason: "the snapshot is busy: something on the storage backend still depends on it",
          detail: (error as Error).message,
        }
      : ctx.finalFailure(error, delivery, "delete_snapshot", "the storage backend failed to delete the snapshot");
    const { reason } = failure;
    const { from, to } = busy ? SNAPSHOT_OPERATIONS.delete.busy : SNAPSHOT_OPERATIONS.delete.failed;
    await ctx.record(async (tx, outcome) => {
      const [row] = await Promise.all([
        updateSnapshotStatus(tx, snapshot.id, from, to, failureFields(failure)),
        finishOperation(tx, operationId, "failed", failure.detail),
      ]);
      if (!row) return;
      await outcome.announce("ERROR", "snapshot.delete.error", { ...snapshotUsage(row, volume), reason }, operationId);
      outcome.changed("snapshot", snapshot.id);
      await settleGroup(tx, outcome, row.groupSnapshotId);
    });
    ctx.log({ ...ids, ...failure, busy }, "snapshot delete failed", true);
    return { deleted: false, busy, failure };
  }
  const gone = await ctx.record(async (tx, outcome) => {
    const [row] = await Promise.all([markSnapshotDeleted(tx, snapshot.id), finishOperation(tx, operationId, "done")]);
    if (!row) return undefined;
    await releaseQuota(tx, row.projectId, snapshotQuotaHeld(row));
    await outcome.announce("INFO", "snapshot.delete.end", snapshotUsage(row, volume), operationId);
    outcome.changed("snapshot", snapshot.id);
    await settleGroup(tx, outcome, row.groupSnapshotId);
    return row;
  });
  if (gone) ctx.log(ids, "snapshot deleted");
  return { deleted: true };
}

/** Cinder's `VolumeManager.delete_snapshot`, for a snapshot deleted on its own. */
export function deleteSnapshotOperation(
  ctx: OperationContext,
): (cast: VolumeDeleteSnapshot, delivery: Delivery) => Promise<void> {
  return async (cast, delivery) => {
    const snapshot = await getSnapshotElevated(ctx.db, cast.snapshotId);
    if (snapshot?.status !== "deleting") {
      await finishOperation(ctx.db, cast.operationId, "done");
      return; // deleted already, or reset by an admin
    }
    const volume = await getVolumeElevated(ctx.db, snapshot.volumeId);
    await deleteOneSnapshot(ctx, snapshot, volume, cast.operationId, delivery);
  };
}
