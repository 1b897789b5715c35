import type { Bus, Notifier } from "@cinderblock/bus";
import { publishChange } from "@cinderblock/bus";
import {
  claimOverdueOperations,
  type Db,
  finishOperation,
  getSnapshotElevated,
  getVolumeElevated,
  listSnapshotsOfVolume,
  retryOperation,
  updateSnapshotStatus,
  updateVolumeStatus,
} from "@cinderblock/db";
import type { Dispatcher } from "@cinderblock/domain";

/** The context a re-dispatched cast carries: the resource's owner, marked as the reconciler's. */
function reconcileContext(operationId: string, owner: { projectId: string; userId: string }) {
  return { requestId: `reconcile-${operationId}`, projectId: owner.projectId, userId: owner.userId, roles: [] };
}

/** Options for {@link reconcileOnce}. */
export interface ReconcilerOptions {
  db: Db;
  bus: Bus;
  dispatcher: Dispatcher;
  notifier: Notifier;
  /** Seconds a re-dispatched operation gets before the next look. */
  timeoutSeconds: number;
  maxAttempts: number;
}

/** What one pass did. */
export interface ReconcileResult {
  redispatched: number;
  failed: number;
  finished: number;
}

/**
 * One reconciler pass. JetStream may lose an unsynced ack or a crash may drop work, so the
 * database decides: an operation past its deadline whose resource is still `creating` is
 * dispatched again (handlers are idempotent) or, after `maxAttempts`, failed with a reason.
 */
export async function reconcileOnce(options: ReconcilerOptions): Promise<ReconcileResult> {
  const result: ReconcileResult = { redispatched: 0, failed: 0, finished: 0 };
  const changed: Array<["snapshot" | "volume", string, string, "create" | "delete"]> = [];
  await options.db.transaction(async (tx) => {
    for (const op of await claimOverdueOperations(tx, 100)) {
      if (op.kind === "create_snapshot") {
        const snapshot = await getSnapshotElevated(tx, op.resourceId);
        const volume = snapshot ? await getVolumeElevated(tx, snapshot.volumeId) : undefined;
        if (snapshot?.status !== "creating" || !volume?.host) {
          if (snapshot?.status === "creating") {
            await updateSnapshotStatus(tx, snapshot.id, ["creating"], "error", { statusReason: "its volume is gone" });
          }
          await finishOperation(tx, op.id, "done");
          result.finished++;
          continue;
        }
        if (op.attempts >= options.maxAttempts) {
          const reason = `snapshot creation did not finish after ${op.attempts} attempts`;
          await updateSnapshotStatus(tx, snapshot.id, ["creating"], "error", { statusReason: reason });
          await finishOperation(tx, op.id, "failed", reason);
          changed.push(["snapshot", snapshot.id, reason, "create"]);
          result.failed++;
          continue;
        }
        const attempt = await retryOperation(tx, op.id, options.timeoutSeconds);
        await options.dispatcher.createSnapshot(
          tx,
          {
            operationId: op.id,
            context: {
              requestId: `reconcile-${op.id}`,
              projectId: snapshot.projectId,
              userId: snapshot.userId,
              roles: [],
            },
            snapshotId: snapshot.id,
            volumeId: volume.id,
            volumeSizeGb: volume.sizeGb,
            volumeHost: volume.host,
          },
          attempt,
        );
        result.redispatched++;
      } else if (op.kind === "delete_snapshot") {
        const snapshot = await getSnapshotElevated(tx, op.resourceId);
        const volume = snapshot ? await getVolumeElevated(tx, snapshot.volumeId) : undefined;
        if (snapshot?.status !== "deleting" || !volume?.host) {
          await finishOperation(tx, op.id, "done");
          result.finished++;
          continue;
        }
        if (op.attempts >= options.maxAttempts) {
          const reason = `snapshot deletion did not finish after ${op.attempts} attempts`;
          await updateSnapshotStatus(tx, snapshot.id, ["deleting"], "error_deleting", { statusReason: reason });
          await finishOperation(tx, op.id, "failed", reason);
          changed.push(["snapshot", snapshot.id, reason, "delete"]);
          result.failed++;
          continue;
        }
        const attempt = await retryOperation(tx, op.id, options.timeoutSeconds);
        await options.dispatcher.deleteSnapshot(
          tx,
          volume.host,
          { operationId: op.id, context: reconcileContext(op.id, snapshot), snapshotId: snapshot.id },
          attempt,
        );
        result.redispatched++;
      } else if (op.kind === "delete_volume") {
        const volume = await getVolumeElevated(tx, op.resourceId);
        if (volume?.status !== "deleting" || !volume.host) {
          await finishOperation(tx, op.id, "done");
          result.finished++;
          continue;
        }
        if (op.attempts >= options.maxAttempts) {
          const reason = `volume deletion did not finish after ${op.attempts} attempts`;
          await updateVolumeStatus(tx, volume.id, ["deleting"], "error_deleting", { statusReason: reason });
          await finishOperation(tx, op.id, "failed", reason);
          changed.push(["volume", volume.id, reason, "delete"]);
          result.failed++;
          continue;
        }
        const attempt = await retryOperation(tx, op.id, options.timeoutSeconds);
        const cascade = (await listSnapshotsOfVolume(tx, volume.id)).length > 0;
        await options.dispatcher.deleteVolume(
          tx,
          volume.host,
          { operationId: op.id, context: reconcileContext(op.id, volume), volumeId: volume.id, cascade },
          attempt,
        );
        result.redispatched++;
      } else if (op.kind === "create_volume") {
        const volume = await getVolumeElevated(tx, op.resourceId);
        if (volume?.status !== "creating") {
          await finishOperation(tx, op.id, "done");
          result.finished++;
          continue;
        }
        if (op.attempts >= options.maxAttempts) {
          const reason = `volume creation did not finish after ${op.attempts} attempts`;
          await updateVolumeStatus(tx, volume.id, ["creating"], "error", { statusReason: reason });
          await finishOperation(tx, op.id, "failed", reason);
          changed.push(["volume", volume.id, reason, "create"]);
          result.failed++;
          continue;
        }
        const attempt = await retryOperation(tx, op.id, options.timeoutSeconds);
        await options.dispatcher.createVolume(
          tx,
          {
            operationId: op.id,
            context: reconcileContext(op.id, volume),
            volumeId: volume.id,
            sizeGb: volume.sizeGb,
            volumeType: volume.volumeType,
            availabilityZone: volume.availabilityZone,
          },
          attempt,
        );
        result.redispatched++;
      }
    }
  });
  for (const [kind, id, reason, op] of changed) {
    publishChange(options.bus, kind, id);
    await options.notifier.notify("ERROR", `${kind}.${op}.error`, "scheduler.reconciler", {
      [`${kind}_id`]: id,
      status: op === "create" ? "error" : "error_deleting",
      reason,
    });
  }
  return result;
}
