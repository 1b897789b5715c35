import { type Bus, type Notifier, publishChange, RetryableError } from "@cinderblock/bus";
import {
  type Db,
  finishOperation,
  getSnapshotElevated,
  getVolumeElevated,
  type SnapshotRow,
  updateSnapshotStatus,
  updateVolumeStatus,
  type VolumeRow,
} from "@cinderblock/db";
import type { VolumeCreateSnapshot, VolumeCreateVolume } from "@cinderblock/proto";
import { DriverError, type VolumeDriver } from "./drivers/driver.js";

/** What the volume manager needs. */
export interface ManagerDependencies {
  db: Db;
  bus: Bus;
  notifier: Notifier;
  /** This host's name ("vol1"); notifications are published as `snapshot.<host>`. */
  hostName: string;
  /** The drivers of this host's backends, by backend name. */
  drivers: ReadonlyMap<string, VolumeDriver>;
}

/** How a handler is being run: the last delivery may not ask for a retry. */
interface Delivery {
  finalAttempt: boolean;
}

/** Cinder's `_usage_from_snapshot`: the payload of every snapshot notification. */
function snapshotUsage(snapshot: SnapshotRow, volume: VolumeRow | undefined): Record<string, unknown> {
  return {
    tenant_id: snapshot.projectId,
    user_id: snapshot.userId,
    availability_zone: volume?.availabilityZone ?? "",
    volume_id: snapshot.volumeId,
    volume_size: snapshot.volumeSizeGb,
    snapshot_id: snapshot.id,
    display_name: snapshot.name,
    created_at: snapshot.createdAt.toISOString(),
    status: snapshot.status,
    deleted: snapshot.deleted,
    metadata: snapshot.metadata,
  };
}

/** Cinder's `_usage_from_volume`, the fields this project stores. */
function volumeUsage(volume: VolumeRow): Record<string, unknown> {
  return {
    tenant_id: volume.projectId,
    user_id: volume.userId,
    availability_zone: volume.availabilityZone,
    volume_id: volume.id,
    volume_type: volume.volumeType,
    size: volume.sizeGb,
    display_name: volume.name,
    created_at: volume.createdAt.toISOString(),
    status: volume.status,
    host: volume.host ?? "",
    metadata: volume.metadata,
  };
}

/** A failure message fit for a user's eyes: the driver's own words, or a generic one. */
function reasonOf(error: unknown, fallback: string): string {
  return error instanceof DriverError ? error.message : fallback;
}

/** The volume manager's cast handlers, after Cinder's `VolumeManager`. */
export interface VolumeManager {
  createSnapshot(cast: VolumeCreateSnapshot, delivery: Delivery): Promise<void>;
  createVolume(cast: VolumeCreateVolume, delivery: Delivery): Promise<void>;
}

/** Builds the manager. Every handler is idempotent: a redelivered cast does no harm. */
export function createVolumeManager(deps: ManagerDependencies): VolumeManager {
  const { db, notifier } = deps;
  const snapshotPublisher = `snapshot.${deps.hostName}`;
  const volumePublisher = `volume.${deps.hostName}`;

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
    const failed = await updateSnapshotStatus(db, snapshot.id, ["creating"], "error", { statusReason: reason });
    await finishOperation(db, operationId, "failed", reason);
    if (!failed) return;
    publishChange(deps.bus, "snapshot", snapshot.id);
    await notifier.notify("ERROR", "snapshot.create.error", snapshotPublisher, {
      ...snapshotUsage(failed, volume),
      reason,
    });
  }

  async function failVolume(volume: VolumeRow, operationId: string, reason: string) {
    const failed = await updateVolumeStatus(db, volume.id, ["creating"], "error", { statusReason: reason });
    await finishOperation(db, operationId, "failed", reason);
    if (!failed) return;
    publishChange(deps.bus, "volume", volume.id);
    await notifier.notify("ERROR", "volume.create.error", volumePublisher, { ...volumeUsage(failed), reason });
  }

  return {
    async createSnapshot(cast, delivery) {
      // The manager acts with elevated rights from here on (Cinder's context.elevated()).
      const snapshot = await getSnapshotElevated(db, cast.snapshotId);
      if (snapshot?.status !== "creating") return; // done already, or gone
      const volume = await getVolumeElevated(db, snapshot.volumeId);
      await notifier.notify("INFO", "snapshot.create.start", snapshotPublisher, snapshotUsage(snapshot, volume));

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

      const done = await updateSnapshotStatus(db, snapshot.id, ["creating"], "available", {
        progress: "100%",
        statusReason: "",
        providerLocation,
        imageMetadata,
        encryptionKeyId: volume?.encryptionKeyId ?? snapshot.encryptionKeyId,
      });
      await finishOperation(db, cast.operationId, "done");
      if (!done) return;
      publishChange(deps.bus, "snapshot", snapshot.id);
      await notifier.notify("INFO", "snapshot.create.end", snapshotPublisher, snapshotUsage(done, volume));
    },

    async createVolume(cast, delivery) {
      const volume = await getVolumeElevated(db, cast.volumeId);
      if (volume?.status !== "creating") return;
      await notifier.notify("INFO", "volume.create.start", volumePublisher, volumeUsage(volume));
      try {
        await driverFor(volume.host).createVolume({ id: volume.id, sizeGb: volume.sizeGb });
      } catch (error) {
        const retryable = !(error instanceof DriverError) || error.retryable;
        if (retryable && !delivery.finalAttempt) {
          throw new RetryableError(`driver create_volume failed: ${String(error)}`, { delayMs: 2000, cause: error });
        }
        await failVolume(volume, cast.operationId, reasonOf(error, "the storage backend failed to create the volume"));
        return;
      }
      const done = await updateVolumeStatus(db, volume.id, ["creating"], "available", { statusReason: "" });
      await finishOperation(db, cast.operationId, "done");
      if (!done) return;
      publishChange(deps.bus, "volume", volume.id);
      await notifier.notify("INFO", "volume.create.end", volumePublisher, volumeUsage(done));
    },
  };
}
