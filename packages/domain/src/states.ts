import type { SnapshotStatus, VolumeRow, VolumeStatus } from "@cinderblock/db";
import { CinderblockError } from "./errors.js";

/** Snapshot statuses that end a WatchSnapshot stream (nothing will change them on its own). */
export const TERMINAL_SNAPSHOT_STATUSES: readonly SnapshotStatus[] = [
  "available",
  "error",
  "deleted",
  "error_deleting",
];

/** Volume statuses no operation will move on its own. */
export const TERMINAL_VOLUME_STATUSES: readonly VolumeStatus[] = [
  "available",
  "in-use",
  "error",
  "error_deleting",
  "deleted",
];

/** Migration statuses that mean a migration is under way (Cinder: anything but none/success/error). */
function isMigrating(volume: Pick<VolumeRow, "migrationStatus">): boolean {
  const m = volume.migrationStatus;
  return m !== null && m !== "" && m !== "success" && m !== "error";
}

/**
 * Cinder's checks before snapshotting a volume (`volume/api.py` `_create_snapshot`): not in
 * maintenance, not migrating, not in error; `available`, or `in-use` only with `force`.
 * Throws FAILED_PRECONDITION naming the status that forbids it.
 */
export function assertVolumeSnapshottable(
  volume: Pick<VolumeRow, "id" | "status" | "migrationStatus">,
  force: boolean,
): void {
  if (volume.status === "maintenance") {
    throw new CinderblockError("FAILED_PRECONDITION", `volume ${volume.id} is in maintenance`);
  }
  if (isMigrating(volume)) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `volume ${volume.id} is migrating (migration_status ${volume.migrationStatus})`,
    );
  }
  if (volume.status === "available") return;
  if (volume.status === "in-use") {
    if (force) return;
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `volume ${volume.id} is in-use; set force to snapshot an attached volume`,
    );
  }
  throw new CinderblockError(
    "FAILED_PRECONDITION",
    `volume ${volume.id} status must be available or in-use, but is ${volume.status}`,
  );
}
