import type { operations, services, snapshots, volumes } from "./schema.js";

/** Volume statuses as stored (Cinder's spelling). */
export type VolumeStatus =
  | "creating"
  | "available"
  | "in-use"
  | "error"
  | "deleting"
  | "error_deleting"
  | "maintenance"
  | "attaching"
  | "detaching"
  | "extending"
  | "reserved"
  | "deleted"
  | "reverting"
  | "error_extending"
  | "retyping";

/** Snapshot statuses as stored (Cinder's spelling). */
export type SnapshotStatus =
  | "creating"
  | "available"
  | "error"
  | "deleting"
  | "error_deleting"
  | "deleted"
  | "backing-up"
  | "restoring"
  | "unmanaging";

export type VolumeRow = Omit<typeof volumes.$inferSelect, "status"> & { status: VolumeStatus };
export type NewVolumeRow = Omit<typeof volumes.$inferInsert, "status"> & { status: VolumeStatus };
export type SnapshotRow = Omit<typeof snapshots.$inferSelect, "status"> & { status: SnapshotStatus };
export type NewSnapshotRow = Omit<typeof snapshots.$inferInsert, "status"> & { status: SnapshotStatus };
export type ServiceRow = typeof services.$inferSelect;
export type OperationRow = typeof operations.$inferSelect;

/** The asynchronous operations the reconciler knows. */
export type OperationKind =
  | "create_snapshot"
  | "create_volume"
  | "delete_snapshot"
  | "delete_volume"
  | "extend_volume"
  | "revert_volume"
  | "attach_volume"
  | "detach_volume"
  | "create_group_snapshot"
  | "manage_snapshot"
  | "unmanage_snapshot"
  | "retype_volume";
