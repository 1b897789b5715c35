import type { Bus } from "@cinderblock/bus";
import { publishChange } from "@cinderblock/bus";
import {
  claimOverdueOperations,
  type Db,
  deleteAttachment,
  finishOperation,
  getGroupSnapshot,
  getSnapshotElevated,
  getVolumeElevated,
  listSnapshotsOfVolume,
  markSnapshotDeleted,
  type OperationKind,
  type OperationRow,
  releaseQuota,
  retryOperation,
  type Tx,
  transaction,
  updateGroupSnapshotStatus,
  updateSnapshotStatus,
  updateVolumeStatus,
} from "@cinderblock/db";
import {
  type Announcer,
  type Dispatcher,
  extendQuotaDeltas,
  failRetype,
  GROUP_SNAPSHOT_OPERATIONS,
  retypeDetailOf,
  SNAPSHOT_OPERATIONS,
  settleGroupDelete,
  settleGroupSnapshot,
  snapshotQuotaHeld,
  VOLUME_OPERATIONS,
} from "@cinderblock/domain";
import type { FailedPlacement } from "@cinderblock/proto";

/** Options for {@link reconcileOnce}. */
export interface ReconcilerOptions {
  db: Db;
  bus: Bus;
  dispatcher: Dispatcher;
  /** Events decided with a resource's change (an operation given up, a group settled), written into the outbox. */
  notifications: Announcer;
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

/** An overdue operation whose resource is still in its transitional status. */
interface Stuck {
  kind: "snapshot" | "volume";
  resourceId: string;
  /** The event whose `.error` reports giving up, e.g. "snapshot.create". */
  event: string;
  /** Casts the operation again as dispatch number `attempt`. */
  redispatch(tx: Tx, attempt: number): Promise<void>;
  /**
   * Gives up: the resource leaves its transitional status, with the reason. Returns the new
   * status, or undefined when the resource had already moved on (its handler finished meanwhile).
   */
  fail(tx: Tx, reason: string): Promise<string | undefined>;
}

/** The context a re-dispatched cast carries: the resource's owner, marked as the reconciler's. */
function reconcileContext(operationId: string, owner: { projectId: string; userId: string }) {
  return { requestId: `reconcile-${operationId}`, projectId: owner.projectId, userId: owner.userId, roles: [] };
}

/** The placements a create's volume hosts recorded on its operation as failed (none: empty). */
function failedPlacementsOf(op: OperationRow): FailedPlacement[] {
  const placements = op.detail.failedPlacements;
  if (!Array.isArray(placements)) return [];
  return placements.map((p: { host?: unknown; error?: unknown }) => ({ host: String(p.host), error: String(p.error) }));
}

/** Per operation kind: whether its resource is still waiting on it, and how to retry or fail it. */
const inspectors: Record<
  OperationKind,
  (tx: Tx, op: OperationRow, d: Dispatcher, n: Announcer) => Promise<Stuck | undefined>
> = {
  async create_snapshot(tx, op, d) {
    const snapshot = await getSnapshotElevated(tx, op.resourceId);
    if (snapshot?.status !== "creating") return undefined;
    const volume = await getVolumeElevated(tx, snapshot.volumeId);
    return {
      kind: "snapshot",
      resourceId: snapshot.id,
      event: "snapshot.create",
      redispatch: async (t, attempt) => {
        if (!volume?.host) throw new Error(`volume ${snapshot.volumeId} of snapshot ${snapshot.id} is gone`);
        await d.createSnapshot(
          t,
          {
            operationId: op.id,
            context: reconcileContext(op.id, snapshot),
            snapshotId: snapshot.id,
            volumeId: volume.id,
            volumeSizeGb: volume.sizeGb,
            volumeHost: volume.host,
          },
          attempt,
        );
      },
      fail: async (t, reason) => {
        const { from, to } = SNAPSHOT_OPERATIONS.create.failed;
        return (await updateSnapshotStatus(t, snapshot.id, from, to, { statusReason: reason })) && to;
      },
    };
  },
  async create_volume(tx, op, d) {
    const volume = await getVolumeElevated(tx, op.resourceId);
    if (volume?.status !== "creating") return undefined;
    return {
      kind: "volume",
      resourceId: volume.id,
      event: "volume.create",
      redispatch: (t, attempt) =>
        d.createVolume(
          t,
          {
            operationId: op.id,
            context: reconcileContext(op.id, volume),
            volumeId: volume.id,
            sizeGb: volume.sizeGb,
            volumeType: volume.volumeType,
            availabilityZone: volume.availabilityZone,
            // The backends that failed it and handed it back stay excluded (see rescheduleCreate).
            failedPlacements: failedPlacementsOf(op),
          },
          attempt,
        ),
      fail: async (t, reason) => {
        const { from, to } = VOLUME_OPERATIONS.create.failed;
        return (await updateVolumeStatus(t, volume.id, from, to, { statusReason: reason })) && to;
      },
    };
  },
  async delete_snapshot(tx, op, d, n) {
    const snapshot = await getSnapshotElevated(tx, op.resourceId);
    if (snapshot?.status !== "deleting") return undefined;
    const volume = await getVolumeElevated(tx, snapshot.volumeId);
    if (!volume?.host) return undefined;
    const host = volume.host;
    return {
      kind: "snapshot",
      resourceId: snapshot.id,
      event: "snapshot.delete",
      redispatch: (t, attempt) =>
        d.deleteSnapshot(
          t,
          host,
          { operationId: op.id, context: reconcileContext(op.id, snapshot), snapshotId: snapshot.id },
          attempt,
        ),
      fail: async (t, reason) => {
        const { from, to } = SNAPSHOT_OPERATIONS.delete.failed;
        const row = await updateSnapshotStatus(t, snapshot.id, from, to, { statusReason: reason });
        if (!row) return undefined;
        const group = await settleGroupDelete(t, snapshot.groupSnapshotId);
        if (group) await n.announce(t, group.priority, group.eventType, group.payload, snapshot.groupSnapshotId);
        return to;
      },
    };
  },
  async delete_volume(tx, op, d) {
    const volume = await getVolumeElevated(tx, op.resourceId);
    if (volume?.status !== "deleting" || !volume.host) return undefined;
    const host = volume.host;
    return {
      kind: "volume",
      resourceId: volume.id,
      event: "volume.delete",
      redispatch: async (t, attempt) => {
        const cascade = (await listSnapshotsOfVolume(t, volume.id)).length > 0;
        await d.deleteVolume(
          t,
          host,
          { operationId: op.id, context: reconcileContext(op.id, volume), volumeId: volume.id, cascade },
          attempt,
        );
      },
      fail: async (t, reason) => {
        const { from, to } = VOLUME_OPERATIONS.delete.failed;
        return (await updateVolumeStatus(t, volume.id, from, to, { statusReason: reason })) && to;
      },
    };
  },
  async extend_volume(tx, op, d) {
    const volume = await getVolumeElevated(tx, op.resourceId);
    if (volume?.status !== "extending" || !volume.host) return undefined;
    const host = volume.host;
    const newSizeGb = Number(op.detail.newSizeGb);
    return {
      kind: "volume",
      resourceId: volume.id,
      event: "volume.resize",
      redispatch: async (t, attempt) => {
        if (!(newSizeGb > volume.sizeGb)) throw new Error(`the operation has no new size for volume ${volume.id}`);
        await d.extendVolume(
          t,
          host,
          { operationId: op.id, context: reconcileContext(op.id, volume), volumeId: volume.id, newSizeGb },
          attempt,
        );
      },
      fail: async (t, reason) => {
        const { from, to } = VOLUME_OPERATIONS.extend.failed;
        const failed = await updateVolumeStatus(t, volume.id, from, to, { statusReason: reason });
        if (!failed) return undefined;
        // The reserved gigabytes are not in use after all (Cinder rolls the reservation back).
        if (newSizeGb > volume.sizeGb) {
          await releaseQuota(
            t,
            volume.projectId,
            extendQuotaDeltas(
              { volumes: -1, snapshots: -1, gigabytes: -1 },
              newSizeGb - volume.sizeGb,
              volume.volumeType,
            ),
          );
        }
        return to;
      },
    };
  },
  async retype_volume(tx, op, d) {
    const volume = await getVolumeElevated(tx, op.resourceId);
    if (volume?.status !== "retyping") return undefined;
    const detail = retypeDetailOf(op.detail);
    const migrating = volume.migrationStatus === "migrating";
    return {
      kind: "volume",
      resourceId: volume.id,
      event: "volume.retype",
      redispatch: async (t, attempt) => {
        if (!detail) throw new Error(`the operation has no new type for volume ${volume.id}`);
        // NOTE: a migration under way is left to its target host (its cast is redelivered by
        // JetStream): deciding again could start a second copy into the same target. It gets
        // more time; once the attempts are spent it is failed below, and a target that finishes
        // later finds the volume no longer retyping and removes its copy.
        if (migrating) return;
        await d.retypeVolume(
          t,
          {
            operationId: op.id,
            context: reconcileContext(op.id, volume),
            volumeId: volume.id,
            newTypeId: detail.newTypeId,
            migrationPolicy: detail.migrationPolicy,
            previousStatus: detail.previousStatus,
          },
          attempt,
        );
      },
      fail: async (t, reason) => {
        const previousStatus = detail?.previousStatus ?? "available";
        const row = await failRetype(t, volume.id, {
          previousStatus,
          newType: { id: detail?.newTypeId ?? "", name: detail?.newTypeName ?? "" },
          reason,
          detail: reason,
          migrated: migrating,
        });
        return row && previousStatus;
      },
    };
  },
  async attach_volume(tx, op) {
    // An attach whose api died between reserving and attaching: give the reservation back.
    const volume = await getVolumeElevated(tx, op.resourceId);
    if (volume?.status !== "attaching") return undefined;
    const attachmentId = String(op.detail.attachmentId ?? "");
    const previous = op.detail.previousStatus === "in-use" ? "in-use" : "available";
    return {
      kind: "volume",
      resourceId: volume.id,
      event: "volume.attach",
      redispatch: async () => {
        throw new Error("an attach is a call; its caller is gone");
      },
      fail: async (t) => {
        if (attachmentId) await deleteAttachment(t, attachmentId);
        return (await updateVolumeStatus(t, volume.id, VOLUME_OPERATIONS.attach.failed.from, previous)) && previous;
      },
    };
  },
  async detach_volume(tx, op) {
    const volume = await getVolumeElevated(tx, op.resourceId);
    if (volume?.status !== "detaching") return undefined;
    return {
      kind: "volume",
      resourceId: volume.id,
      event: "volume.detach",
      redispatch: async () => {
        throw new Error("a detach is a call; its caller is gone");
      },
      fail: async (t) => {
        // The attachment stays; a new DetachVolume can try again.
        const { from, to } = VOLUME_OPERATIONS.detach.failed;
        return (await updateVolumeStatus(t, volume.id, from, to)) && to;
      },
    };
  },
  async create_group_snapshot(tx, op, d, n) {
    const group = await getGroupSnapshot(tx, undefined, op.resourceId);
    if (group?.status !== "creating") return undefined;
    return {
      kind: "snapshot",
      resourceId: group.id,
      event: "group_snapshot.create",
      // "Re-sending" a group is deciding it, once its members have finished (their own
      // operations are reconciled separately).
      redispatch: async (t) => {
        await settleGroupSnapshot(t, { scheduler: d, notifications: n, operationTimeoutSeconds: 120 }, group.id);
      },
      fail: async (t, reason) => {
        const { from, to } = GROUP_SNAPSHOT_OPERATIONS.create.failed;
        return (await updateGroupSnapshotStatus(t, group.id, from, to, reason)) && to;
      },
    };
  },
  async manage_snapshot(tx, op) {
    // A manage whose api died before the backend answered: the row and its quota go again (what
    // the backend holds stays, and shows up again as manageable).
    const snapshot = await getSnapshotElevated(tx, op.resourceId);
    if (snapshot?.status !== "creating") return undefined;
    return {
      kind: "snapshot",
      resourceId: snapshot.id,
      event: "snapshot.manage_existing",
      redispatch: async () => {
        throw new Error("a manage is a call; its caller is gone");
      },
      fail: async (t) => {
        const { from, to } = SNAPSHOT_OPERATIONS.manage.failed;
        await updateSnapshotStatus(t, snapshot.id, from, to);
        const gone = await markSnapshotDeleted(t, snapshot.id);
        if (gone) await releaseQuota(t, gone.projectId, snapshotQuotaHeld(gone));
        return "deleted";
      },
    };
  },
  async unmanage_snapshot(tx, op) {
    // An unmanage whose api died before the backend answered: the snapshot stays ours.
    const snapshot = await getSnapshotElevated(tx, op.resourceId);
    if (snapshot?.status !== "unmanaging") return undefined;
    const previous = op.detail.previousStatus === "error" ? "error" : "available";
    return {
      kind: "snapshot",
      resourceId: snapshot.id,
      event: "snapshot.unmanage",
      redispatch: async () => {
        throw new Error("an unmanage is a call; its caller is gone");
      },
      fail: async (t) => {
        const { from } = SNAPSHOT_OPERATIONS.unmanage.failed;
        return (await updateSnapshotStatus(t, snapshot.id, from, previous)) && previous;
      },
    };
  },
  async revert_volume(tx, op, d) {
    const volume = await getVolumeElevated(tx, op.resourceId);
    if (volume?.status !== "reverting" || !volume.host) return undefined;
    const host = volume.host;
    const restoring = (await listSnapshotsOfVolume(tx, volume.id)).find((s) => s.status === "restoring");
    return {
      kind: "volume",
      resourceId: volume.id,
      event: "volume.revert",
      redispatch: async (t, attempt) => {
        if (!restoring) throw new Error(`volume ${volume.id} has no snapshot being restored`);
        await d.revertToSnapshot(
          t,
          host,
          {
            operationId: op.id,
            context: reconcileContext(op.id, volume),
            volumeId: volume.id,
            snapshotId: restoring.id,
          },
          attempt,
        );
      },
      fail: async (t, reason) => {
        const { from, to } = VOLUME_OPERATIONS.revert.failed;
        const failed = await updateVolumeStatus(t, volume.id, from, to, { statusReason: reason });
        const back = SNAPSHOT_OPERATIONS.revert.failed;
        if (restoring) await updateSnapshotStatus(t, restoring.id, back.from, back.to);
        return failed && to;
      },
    };
  },
};

/**
 * One reconciler pass. JetStream may lose an unsynced ack or a crash may drop work, so the
 * database decides: an operation past its deadline whose resource is still in its transitional
 * status is dispatched again (handlers are idempotent) or, after `maxAttempts` (or when it cannot
 * be re-sent), failed with a reason. Nothing stays `creating`, `deleting`… forever.
 */
export async function reconcileOnce(options: ReconcilerOptions): Promise<ReconcileResult> {
  const result: ReconcileResult = { redispatched: 0, failed: 0, finished: 0 };
  let changed: Stuck[] = [];
  await transaction(options.db, async (tx) => {
    changed = [];
    for (const op of await claimOverdueOperations(tx, 100)) {
      const kind = op.kind as OperationKind;
      const stuck = await inspectors[kind]?.(tx, op, options.dispatcher, options.notifications);
      if (!stuck) {
        await finishOperation(tx, op.id, "done");
        result.finished++;
        continue;
      }
      let reason = `${stuck.event.replace(".", " ")} did not finish after ${op.attempts} attempts`;
      if (op.attempts < options.maxAttempts) {
        const attempt = await retryOperation(tx, op.id, options.timeoutSeconds);
        try {
          await stuck.redispatch(tx, attempt);
          result.redispatched++;
          continue;
        } catch (error) {
          reason = `${stuck.event.replace(".", " ")} could not be retried: ${(error as Error).message}`;
        }
      }
      const status = await stuck.fail(tx, reason);
      if (!status) {
        // Its handler finished between the look and the change: nothing to give up on.
        await finishOperation(tx, op.id, "done");
        result.finished++;
        continue;
      }
      await finishOperation(tx, op.id, "failed", reason);
      // The `.error` goes out with the change (the outbox), its id derived from the operation.
      await options.notifications.announce(
        tx,
        "ERROR",
        `${stuck.event}.error`,
        { tenant_id: op.projectId, [`${stuck.kind}_id`]: stuck.resourceId, status, reason },
        op.id,
      );
      changed.push(stuck);
      result.failed++;
    }
  });
  for (const stuck of changed) publishChange(options.bus, stuck.kind, stuck.resourceId);
  return result;
}
