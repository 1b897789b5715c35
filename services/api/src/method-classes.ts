import type { MethodClass } from "@cinderblock/rpc";
import type { API_METHOD_RULES } from "./rules.js";

/**
 * The rate-limit class of every public RPC (a bucket per project per class; see
 * CINDERBLOCK_RATE_LIMIT_*): `read` gets and lists, `write` changes, `admin` operators' actions,
 * `stream` opening a stream. Typed by API_METHOD_RULES, so a new method cannot be left out.
 */
export const API_METHOD_CLASSES: Readonly<Record<keyof typeof API_METHOD_RULES, MethodClass>> = {
  CreateVolume: "write",
  GetVolume: "read",
  ListVolumes: "read",
  UpdateVolume: "write",
  DeleteVolume: "write",
  ResetVolumeStatus: "admin",
  SetVolumeMetadata: "write",
  DeleteVolumeMetadata: "write",
  ExtendVolume: "write",
  RevertVolumeToSnapshot: "write",
  AttachVolume: "write",
  DetachVolume: "write",
  CreateSnapshot: "write",
  GetSnapshot: "read",
  WatchSnapshot: "stream",
  ListSnapshots: "read",
  UpdateSnapshot: "write",
  DeleteSnapshot: "write",
  ResetSnapshotStatus: "admin",
  SetSnapshotMetadata: "write",
  DeleteSnapshotMetadata: "write",
  ListManageableSnapshots: "admin",
  ManageSnapshot: "admin",
  UnmanageSnapshot: "admin",
  SnapshotInstance: "write",
  GetQuotas: "read",
  UpdateQuotas: "admin",
  WatchEvents: "stream",
  CreateGroupSnapshot: "write",
  GetGroupSnapshot: "read",
  ListGroupSnapshots: "read",
  DeleteGroupSnapshot: "write",
};
