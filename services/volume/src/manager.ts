import { type Bus, type Notifier, type OutboxAnnouncer, publishChange, RetryableError } from "@cinderblock/bus";
import {
  type Db,
  enqueueOutboxMany,
  finishOperation,
  finishOperationsDone,
  getSnapshotElevated,
  getVolumeElevated,
  listSnapshotsOfVolume,
  markSnapshotDeleted,
  markSnapshotsAvailable,
  markVolumeDeleted,
  releaseQuota,
  type SnapshotRow,
  type SnapshotTaken,
  transaction,
  updateSnapshotStatus,
  updateVolumeStatus,
  type VolumeRow,
} from "@cinderblock/db";
import {
  extendQuotaDeltas,
  type GroupEvent,
  settleGroupDelete,
  snapshotQuotaHeld,
  snapshotUsage,
  volumeQuotaHeld,
  volumeUsage,
} from "@cinderblock/domain";
import type {
  VolumeCreateSnapshot,
  VolumeCreateVolume,
  VolumeDeleteSnapshot,
  VolumeDeleteVolume,
  VolumeExtendVolume,
  VolumeRevertToSnapshot,
} from "@cinderblock/proto";
import { createBatcher } from "./batcher.js";
import { DriverError, SnapshotBusyError, type VolumeDriver } from "./drivers/driver.js";

/** Releases ignore limits: any defaults do. */
const unlimited = { volumes: -1, snapshots: -1, gigabytes: -1 };

/** What the volume manager needs. */
export interface ManagerDependencies {
  db: Db;
  bus: Bus;
  notifier: Notifier;
  /**
   * Writes the notification that ends an operation into the transactional outbox, in the
   * transaction that records the outcome: a crash after the commit cannot lose it.
   */
  announcer: OutboxAnnouncer;
  /** Called after a transaction that wrote to the outbox committed (kicks the relay). */
  onCommitted(): void;
  /** This host's name ("vol1"); notifications are published as `snapshot.<host>`. */
  hostName: string;
  /** The drivers of this host's backends, by backend name. */
  drivers: ReadonlyMap<string, VolumeDriver>;
}

/** How a handler is being run: the last delivery may not ask for a retry. */
interface Delivery {
  finalAttempt: boolean;
}

/** A failure message fit for a user's eyes: the driver's own words, or a generic one. */
function reasonOf(error: unknown, fallback: string): string {
  return error instanceof DriverError ? error.message : fallback;
}

/** The volume manager's cast handlers, after Cinder's `VolumeManager`. */
export interface VolumeManager {
  createSnapshot(cast: VolumeCreateSnapshot, delivery: Delivery): Promise<void>;
  createVolume(cast: VolumeCreateVolume, delivery: Delivery): Promise<void>;
  deleteSnapshot(cast: VolumeDeleteSnapshot, delivery: Delivery): Promise<void>;
  deleteVolume(cast: VolumeDeleteVolume, delivery: Delivery): Promise<void>;
  extendVolume(cast: VolumeExtendVolume, delivery: Delivery): Promise<void>;
  revertToSnapshot(cast: VolumeRevertToSnapshot, delivery: Delivery): Promise<void>;
}

/** Why a delete did not happen: the driver said busy, or failed for good. */
type DeleteOutcome = { deleted: true } | { deleted: false; busy: boolean; reason: string };

/** Builds the manager. Every handler is idempotent: a redelivered cast does no harm. */
export function createVolumeManager(deps: ManagerDependencies): VolumeManager {
  const { db, notifier } = deps;
  const snapshotPublisher = `snapshot.${deps.hostName}`;
  const volumePublisher = `volume.${deps.hostName}`;

  /**
   * Records created snapshots as available, their operations done and their `snapshot.create.end`
   * notifications in the outbox: one transaction (three statements, one WAL flush) for every
   * snapshot that finished while the previous batch was being written.
   * NOTE: per snapshot this was a transaction of its own (BEGIN, two updates, an insert, COMMIT);
   * with 64 creates in flight the host spent more on that bookkeeping than on the copies.
   */
  const snapshotsTaken = createBatcher(
    async (batch: (SnapshotTaken & { operationId: string; volume: VolumeRow | undefined })[]) => {
      const rows = await transaction(db, async (tx) => {
        const [changed] = await Promise.all([
          markSnapshotsAvailable(tx, batch),
          finishOperationsDone(
            tx,
            batch.map((b) => b.operationId),
          ),
        ]);
        const byId = new Map(changed.map((row) => [row.id, row]));
        await enqueueOutboxMany(
          tx,
          batch.flatMap((b) => {
            const row = byId.get(b.id);
            return row ? [deps.announcer.message("INFO", "snapshot.create.end", snapshotUsage(row, b.volume))] : [];
          }),
        );
        return byId;
      });
      if (rows.size > 0) deps.onCommitted();
      return batch.map((b) => rows.get(b.id));
    },
  );

  function driverFor(host: string | null): VolumeDriver {
    const backend = host?.split("@")[1] ?? "";
    const driver = deps.drivers.get(backend);
    if (!driver)
      throw new DriverError(`backend ${host ?? "(none)"} is not served by host ${deps.hostName}`, { retryable: false });
    return driver;
  }

  async function failSnapshot(
    snapshot: SnapshotRow,
    volume: VolumeRow | undefined,
    operationId: string,
    reason: string,
  ) {
    const failed = await transaction(db, async (tx) => {
      const [row] = await Promise.all([
        updateSnapshotStatus(tx, snapshot.id, ["creating"], "error", { statusReason: reason }),
        finishOperation(tx, operationId, "failed", reason),
      ]);
      if (row)
        await deps.announcer.announce(tx, "ERROR", "snapshot.create.error", { ...snapshotUsage(row, volume), reason });
      return row;
    });
    if (!failed) return;
    deps.onCommitted();
    publishChange(deps.bus, "snapshot", snapshot.id);
  }

  async function failVolume(volume: VolumeRow, operationId: string, reason: string) {
    const failed = await transaction(db, async (tx) => {
      const [row] = await Promise.all([
        updateVolumeStatus(tx, volume.id, ["creating"], "error", { statusReason: reason }),
        finishOperation(tx, operationId, "failed", reason),
      ]);
      if (row) await deps.announcer.announce(tx, "ERROR", "volume.create.error", { ...volumeUsage(row), reason });
      return row;
    });
    if (!failed) return;
    deps.onCommitted();
    publishChange(deps.bus, "volume", volume.id);
  }

  /** Publishes what a member's delete decided about its group (deleted, or error_deleting). */
  async function announceGroup(event: GroupEvent | undefined): Promise<void> {
    if (event) await notifier.notify(event.priority, event.eventType, `group_snapshot.${deps.hostName}`, event.payload);
  }

  /** Throws RetryableError while retries remain, else reports the driver failure for the caller to record. */
  function finalFailure(error: unknown, delivery: Delivery, what: string, fallback: string): string {
    const retryable = !(error instanceof DriverError) || error.retryable;
    if (retryable && !delivery.finalAttempt) {
      throw new RetryableError(`driver ${what} failed: ${String(error)}`, { delayMs: 2000, cause: error });
    }
    return reasonOf(error, fallback);
  }

  /**
   * Deletes one snapshot that is `deleting`: the driver removes it, then the row is soft-deleted
   * and its quota released in one transaction. Busy → back to `available` with a reason; a final
   * failure → `error_deleting`, which a new delete may retry.
   */
  async function deleteOneSnapshot(
    snapshot: SnapshotRow,
    volume: VolumeRow | undefined,
    delivery: Delivery,
  ): Promise<DeleteOutcome> {
    await notifier.notify("INFO", "snapshot.delete.start", snapshotPublisher, snapshotUsage(snapshot, volume));
    try {
      if (volume) {
        await driverFor(volume.host).deleteSnapshot({
          id: snapshot.id,
          volumeId: volume.id,
          volumeSizeGb: snapshot.volumeSizeGb,
        });
      }
    } catch (error) {
      const busy = error instanceof SnapshotBusyError;
      const reason = busy
        ? `snapshot is busy: ${(error as Error).message}`
        : finalFailure(error, delivery, "delete_snapshot", "the storage backend failed to delete the snapshot");
      const { failed, group } = await transaction(db, async (tx) => {
        const row = await updateSnapshotStatus(tx, snapshot.id, ["deleting"], busy ? "available" : "error_deleting", {
          statusReason: reason,
        });
        return { failed: row, group: row && (await settleGroupDelete(tx, row.groupSnapshotId)) };
      });
      await announceGroup(group);
      if (failed) {
        publishChange(deps.bus, "snapshot", snapshot.id);
        await notifier.notify("ERROR", "snapshot.delete.error", snapshotPublisher, {
          ...snapshotUsage(failed, volume),
          reason,
        });
      }
      return { deleted: false, busy, reason };
    }
    const { gone, group } = await transaction(db, async (tx) => {
      const row = await markSnapshotDeleted(tx, snapshot.id);
      if (!row) return { gone: row, group: undefined };
      await releaseQuota(tx, row.projectId, snapshotQuotaHeld(row));
      return { gone: row, group: await settleGroupDelete(tx, row.groupSnapshotId) };
    });
    if (gone) {
      publishChange(deps.bus, "snapshot", snapshot.id);
      await notifier.notify("INFO", "snapshot.delete.end", snapshotPublisher, snapshotUsage(gone, volume));
    }
    await announceGroup(group);
    return { deleted: true };
  }

  return {
    async extendVolume(cast, delivery) {
      const volume = await getVolumeElevated(db, cast.volumeId);
      if (volume?.status !== "extending") {
        await finishOperation(db, cast.operationId, "done");
        return;
      }
      await notifier.notify("INFO", "volume.resize.start", volumePublisher, volumeUsage(volume));
      try {
        await driverFor(volume.host).extendVolume({ id: volume.id, sizeGb: volume.sizeGb }, cast.newSizeGb);
      } catch (error) {
        const reason = finalFailure(
          error,
          delivery,
          "extend_volume",
          "the storage backend failed to extend the volume",
        );
        // Cinder: error_extending, and the reserved gigabytes go back.
        const failed = await transaction(db, async (tx) => {
          const row = await updateVolumeStatus(tx, volume.id, ["extending"], "error_extending", {
            statusReason: reason,
          });
          if (row)
            await releaseQuota(
              tx,
              row.projectId,
              extendQuotaDeltas(unlimited, cast.newSizeGb - row.sizeGb, row.volumeType),
            );
          return row;
        });
        await finishOperation(db, cast.operationId, "failed", reason);
        if (failed) {
          publishChange(deps.bus, "volume", volume.id);
          await notifier.notify("ERROR", "volume.resize.error", volumePublisher, { ...volumeUsage(failed), reason });
        }
        return;
      }
      const done = await updateVolumeStatus(db, volume.id, ["extending"], "available", { sizeGb: cast.newSizeGb });
      await finishOperation(db, cast.operationId, "done");
      if (!done) return;
      publishChange(deps.bus, "volume", volume.id);
      await notifier.notify("INFO", "volume.resize.end", volumePublisher, volumeUsage(done));
    },

    async revertToSnapshot(cast, delivery) {
      const volume = await getVolumeElevated(db, cast.volumeId);
      const snapshot = await getSnapshotElevated(db, cast.snapshotId);
      if (volume?.status !== "reverting" || snapshot?.status !== "restoring") {
        await finishOperation(db, cast.operationId, "done");
        return;
      }
      await notifier.notify("INFO", "volume.revert.start", volumePublisher, {
        ...volumeUsage(volume),
        snapshot_id: snapshot.id,
      });
      let reason: string | undefined;
      try {
        await driverFor(volume.host).revertToSnapshot(
          { id: volume.id, sizeGb: volume.sizeGb },
          { id: snapshot.id, volumeId: volume.id, volumeSizeGb: snapshot.volumeSizeGb },
        );
      } catch (error) {
        reason = finalFailure(error, delivery, "revert_to_snapshot", "the storage backend failed to revert the volume");
      }
      // Cinder: on failure the volume goes to error and the snapshot back to available.
      const [after] = await transaction(db, async (tx) => [
        await updateVolumeStatus(tx, volume.id, ["reverting"], reason ? "error" : "available", {
          statusReason: reason ?? "",
        }),
        await updateSnapshotStatus(tx, snapshot.id, ["restoring"], "available"),
      ]);
      await finishOperation(db, cast.operationId, reason ? "failed" : "done", reason ?? "");
      publishChange(deps.bus, "volume", volume.id);
      publishChange(deps.bus, "snapshot", snapshot.id);
      if (!after) return;
      if (reason) {
        await notifier.notify("ERROR", "volume.revert.error", volumePublisher, { ...volumeUsage(after), reason });
      } else {
        await notifier.notify("INFO", "volume.revert.end", volumePublisher, {
          ...volumeUsage(after),
          snapshot_id: snapshot.id,
        });
      }
    },

    async deleteSnapshot(cast, delivery) {
      const snapshot = await getSnapshotElevated(db, cast.snapshotId);
      if (snapshot?.status !== "deleting") {
        await finishOperation(db, cast.operationId, "done");
        return; // deleted already, or reset by an admin
      }
      const volume = await getVolumeElevated(db, snapshot.volumeId);
      const outcome = await deleteOneSnapshot(snapshot, volume, delivery);
      await finishOperation(
        db,
        cast.operationId,
        outcome.deleted ? "done" : "failed",
        outcome.deleted ? "" : outcome.reason,
      );
    },

    async deleteVolume(cast, delivery) {
      const volume = await getVolumeElevated(db, cast.volumeId);
      if (volume?.status !== "deleting") {
        await finishOperation(db, cast.operationId, "done");
        return;
      }
      await notifier.notify("INFO", "volume.delete.start", volumePublisher, volumeUsage(volume));
      const fail = async (reason: string) => {
        const failed = await updateVolumeStatus(db, volume.id, ["deleting"], "error_deleting", {
          statusReason: reason,
        });
        await finishOperation(db, cast.operationId, "failed", reason);
        if (!failed) return;
        publishChange(deps.bus, "volume", volume.id);
        await notifier.notify("ERROR", "volume.delete.error", volumePublisher, { ...volumeUsage(failed), reason });
      };
      // Cascade: the api marked the snapshots deleting in the same transaction as the volume.
      for (const snapshot of await listSnapshotsOfVolume(db, volume.id)) {
        if (snapshot.status !== "deleting") {
          await fail(`snapshot ${snapshot.id} is ${snapshot.status}; the volume keeps it`);
          return;
        }
        const outcome = await deleteOneSnapshot(snapshot, volume, delivery);
        if (!outcome.deleted) {
          await fail(`snapshot ${snapshot.id} could not be deleted: ${outcome.reason}`);
          return;
        }
      }
      try {
        await driverFor(volume.host).deleteVolume({ id: volume.id, sizeGb: volume.sizeGb });
      } catch (error) {
        await fail(finalFailure(error, delivery, "delete_volume", "the storage backend failed to delete the volume"));
        return;
      }
      const gone = await transaction(db, async (tx) => {
        const row = await markVolumeDeleted(tx, volume.id);
        if (row) {
          await releaseQuota(tx, row.projectId, volumeQuotaHeld(row));
        }
        return row;
      });
      await finishOperation(db, cast.operationId, "done");
      if (!gone) return;
      publishChange(deps.bus, "volume", volume.id);
      await notifier.notify("INFO", "volume.delete.end", volumePublisher, volumeUsage(gone));
    },

    async createSnapshot(cast, delivery) {
      // The manager acts with elevated rights from here on (Cinder's context.elevated()).
      // NOTE: both rows in one round trip (the cast names the volume); the snapshot's own volume id wins.
      const [snapshot, castVolume] = await Promise.all([
        getSnapshotElevated(db, cast.snapshotId),
        getVolumeElevated(db, cast.volumeId),
      ]);
      if (snapshot?.status !== "creating") return; // done already, or gone
      const volume = snapshot.volumeId === castVolume?.id ? castVolume : await getVolumeElevated(db, snapshot.volumeId);
      // NOTE: the start notification is published while the driver works; it is awaited before any
      // other notification of this snapshot, so consumers still see start before end or error.
      const started = notifier.notify(
        "INFO",
        "snapshot.create.start",
        snapshotPublisher,
        snapshotUsage(snapshot, volume),
      );
      started.catch(() => {}); // awaited below; this only keeps an early failure from going unhandled

      let providerLocation = snapshot.providerLocation;
      try {
        if (!volume) throw new DriverError(`volume ${snapshot.volumeId} no longer exists`, { retryable: false });
        const update = await driverFor(volume.host).createSnapshot({
          id: snapshot.id,
          volumeId: volume.id,
          volumeSizeGb: snapshot.volumeSizeGb,
        });
        if (update?.providerLocation) {
          providerLocation = update.providerLocation;
          await updateSnapshotStatus(db, snapshot.id, ["creating"], "creating", { providerLocation });
        }
      } catch (error) {
        const retryable = !(error instanceof DriverError) || error.retryable;
        if (retryable && !delivery.finalAttempt) {
          throw new RetryableError(`driver create_snapshot failed: ${String(error)}`, { delayMs: 2000, cause: error });
        }
        await started;
        await failSnapshot(
          snapshot,
          volume,
          cast.operationId,
          reasonOf(error, "the storage backend failed to create the snapshot"),
        );
        return;
      }

      // A bootable volume's image metadata goes onto the snapshot so it can boot an instance again.
      // A volume without any ("no metadata found") is skipped; any other failure fails the snapshot.
      await started;
      let imageMetadata: Record<string, string> = {};
      if (volume?.bootable) {
        try {
          const current = await getVolumeElevated(db, volume.id);
          if (!current) throw new Error("volume vanished while copying its image metadata");
          imageMetadata = { ...current.imageMetadata };
        } catch (error) {
          await failSnapshot(
            snapshot,
            volume,
            cast.operationId,
            `failed to copy image metadata to the snapshot: ${String(error)}`,
          );
          return;
        }
      }

      const done = await snapshotsTaken.submit({
        id: snapshot.id,
        operationId: cast.operationId,
        providerLocation,
        imageMetadata,
        encryptionKeyId: volume?.encryptionKeyId ?? snapshot.encryptionKeyId,
        volume,
      });
      if (done) publishChange(deps.bus, "snapshot", snapshot.id);
    },

    async createVolume(cast, delivery) {
      const volume = await getVolumeElevated(db, cast.volumeId);
      if (volume?.status !== "creating") return;
      await notifier.notify("INFO", "volume.create.start", volumePublisher, volumeUsage(volume));
      try {
        const driver = driverFor(volume.host);
        if (volume.snapshotId) {
          const snapshot = await getSnapshotElevated(db, volume.snapshotId);
          if (!snapshot) {
            throw new DriverError(`snapshot ${volume.snapshotId} no longer exists`, { retryable: false });
          }
          await driver.createVolumeFromSnapshot(
            { id: volume.id, sizeGb: volume.sizeGb },
            { id: snapshot.id, volumeId: snapshot.volumeId, volumeSizeGb: snapshot.volumeSizeGb },
          );
        } else {
          await driver.createVolume({ id: volume.id, sizeGb: volume.sizeGb });
        }
      } catch (error) {
        const reason = finalFailure(
          error,
          delivery,
          "create_volume",
          "the storage backend failed to create the volume",
        );
        await failVolume(volume, cast.operationId, reason);
        return;
      }
      const done = await transaction(db, async (tx) => {
        const [row] = await Promise.all([
          updateVolumeStatus(tx, volume.id, ["creating"], "available", { statusReason: "" }),
          finishOperation(tx, cast.operationId, "done"),
        ]);
        if (row) await deps.announcer.announce(tx, "INFO", "volume.create.end", volumeUsage(row));
        return row;
      });
      if (!done) return;
      deps.onCommitted();
      publishChange(deps.bus, "volume", volume.id);
    },
  };
}
