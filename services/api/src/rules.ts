import type { MethodRules } from "@cinderblock/rpc";

const rule =
  (name: string): MethodRules<unknown>["rules"] =>
  () => [name];

/** Adds `cinderblock:all_projects` when the request asks for every project (Cinder's all_tenants). */
const listing =
  (name: string) =>
  (req: { allProjects?: boolean }): string[] =>
    req.allProjects ? [name, "cinderblock:all_projects"] : [name];

/** A quota (or default type) call's target: the project asked about (the caller's own when none is named). */
const quotaTarget = (req: { projectId?: string }, caller: { projectId: string; userId: string }) => ({
  project_id: req.projectId || caller.projectId,
  user_id: caller.userId,
});

/**
 * The policy rules each public RPC names (Cinder's rule names where Cinder has the operation; see
 * RULE_DEFAULTS in @cinderblock/rpc for the defaults). The guard enforces them after authentication
 * and before the handler validates anything.
 */
export const API_METHOD_RULES: Readonly<Record<string, MethodRules<never>>> = {
  CreateVolume: { rules: rule("volume:create") },
  GetVolume: { rules: rule("volume:get") },
  ListVolumes: { rules: listing("volume:get_all") },
  UpdateVolume: { rules: rule("volume:update") },
  DeleteVolume: {
    rules: (req: { force?: boolean }) =>
      req.force ? ["volume:delete", "volume_extension:volume_admin_actions:force_delete"] : ["volume:delete"],
  },
  ResetVolumeStatus: { rules: rule("volume_extension:volume_admin_actions:reset_status") },
  SetVolumeMetadata: { rules: rule("volume:update_volume_metadata") },
  DeleteVolumeMetadata: { rules: rule("volume:delete_volume_metadata") },
  ExtendVolume: { rules: rule("volume:extend") },
  RetypeVolume: { rules: rule("volume:retype") },
  RevertVolumeToSnapshot: { rules: rule("volume:revert_to_snapshot") },
  AttachVolume: { rules: rule("volume:attachment_create") },
  DetachVolume: { rules: rule("volume:attachment_delete") },
  CreateSnapshot: { rules: rule("volume:create_snapshot") },
  GetSnapshot: { rules: rule("volume:get_snapshot") },
  WatchSnapshot: { rules: rule("volume:get_snapshot") },
  ListSnapshots: { rules: listing("volume:get_all_snapshots") },
  UpdateSnapshot: { rules: rule("volume:update_snapshot") },
  DeleteSnapshot: {
    rules: (req: { force?: boolean }) =>
      req.force
        ? ["volume:delete_snapshot", "volume_extension:snapshot_admin_actions:force_delete"]
        : ["volume:delete_snapshot"],
  },
  ResetSnapshotStatus: { rules: rule("volume_extension:snapshot_admin_actions:reset_status") },
  SetSnapshotMetadata: { rules: rule("volume:update_snapshot_metadata") },
  DeleteSnapshotMetadata: { rules: rule("volume:delete_snapshot_metadata") },
  ListManageableSnapshots: { rules: rule("snapshot_extension:list_manageable") },
  ManageSnapshot: { rules: rule("snapshot_extension:snapshot_manage") },
  UnmanageSnapshot: { rules: rule("snapshot_extension:snapshot_unmanage") },
  SnapshotInstance: { rules: rule("cinderblock:snapshot_instance") },
  GetQuotas: { rules: rule("volume_extension:quotas:show"), target: quotaTarget },
  UpdateQuotas: { rules: rule("volume_extension:quotas:update"), target: quotaTarget },
  DeleteQuotas: { rules: rule("volume_extension:quotas:delete"), target: quotaTarget },
  WatchEvents: { rules: listing("cinderblock:watch_events") },
  CreateGroupSnapshot: { rules: rule("group:create_group_snapshot") },
  GetGroupSnapshot: { rules: rule("group:get_group_snapshot") },
  ListGroupSnapshots: { rules: listing("group:get_all_group_snapshots") },
  DeleteGroupSnapshot: { rules: rule("group:delete_group_snapshot") },
  CreateVolumeType: { rules: rule("volume_extension:type_create") },
  GetVolumeType: { rules: rule("volume_extension:type_get") },
  ListVolumeTypes: { rules: rule("volume_extension:type_get_all") },
  UpdateVolumeType: { rules: rule("volume_extension:type_update") },
  DeleteVolumeType: { rules: rule("volume_extension:type_delete") },
  SetVolumeTypeExtraSpecs: { rules: rule("volume_extension:types_extra_specs:create") },
  DeleteVolumeTypeExtraSpec: { rules: rule("volume_extension:types_extra_specs:delete") },
  AddVolumeTypeAccess: { rules: rule("volume_extension:volume_type_access:addProjectAccess") },
  RemoveVolumeTypeAccess: { rules: rule("volume_extension:volume_type_access:removeProjectAccess") },
  ListVolumeTypeAccess: { rules: rule("volume_extension:volume_type_access:get_all_for_type") },
  GetDefaultVolumeType: { rules: rule("volume_extension:default_get"), target: quotaTarget },
  SetDefaultVolumeType: { rules: rule("volume_extension:default_set_or_update"), target: quotaTarget },
  UnsetDefaultVolumeType: { rules: rule("volume_extension:default_unset"), target: quotaTarget },
  ListDefaultVolumeTypes: { rules: rule("volume_extension:default_get_all") },
  CreateQosSpecs: { rules: rule("volume_extension:qos_specs_manage:create") },
  GetQosSpecs: { rules: rule("volume_extension:qos_specs_manage:get") },
  ListQosSpecs: { rules: rule("volume_extension:qos_specs_manage:get_all") },
  SetQosSpecsKeys: { rules: rule("volume_extension:qos_specs_manage:update") },
  DeleteQosSpecsKeys: { rules: rule("volume_extension:qos_specs_manage:delete") },
  DeleteQosSpecs: { rules: rule("volume_extension:qos_specs_manage:delete") },
  AssociateQosSpecs: { rules: rule("volume_extension:qos_specs_manage:update") },
  DisassociateQosSpecs: { rules: rule("volume_extension:qos_specs_manage:update") },
  ListServices: { rules: rule("volume_extension:services:index") },
  EnableService: { rules: rule("volume_extension:services:update") },
  DisableService: { rules: rule("volume_extension:services:update") },
  // Cinder's os-services/freeze needs services:update and volume/api.py's freeze_host rule; ours names
  // the specific rule first, so a refusal says which operation was refused.
  FreezeHost: { rules: () => ["volume:freeze_host", "volume_extension:services:update"] },
  ThawHost: { rules: () => ["volume:thaw_host", "volume_extension:services:update"] },
  ListPools: { rules: rule("scheduler_extension:scheduler_stats:get_pools") },
  ListAvailabilityZones: { rules: rule("cinderblock:availability_zones") },
};
