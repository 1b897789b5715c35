import type { GroupSnapshotRow, SnapshotRow, VolumeRow } from "@cinderblock/db";

/** Cinder's `_usage_from_snapshot`: the payload of every snapshot notification. */
export function snapshotUsage(snapshot: SnapshotRow, volume: VolumeRow | undefined): Record<string, unknown> {
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
    // Not in Cinder's payload; a group member's events carry it, so WatchEvents can follow a group.
    ...(snapshot.groupSnapshotId ? { group_snapshot_id: snapshot.groupSnapshotId } : {}),
  };
}

/** Cinder's `_usage_from_volume`, the fields this project stores. */
export function volumeUsage(volume: VolumeRow): Record<string, unknown> {
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
    // Cinder's pool-level host, `host@backend#pool`.
    host: volume.host ? (volume.pool ? `${volume.host}#${volume.pool}` : volume.host) : "",
    metadata: volume.metadata,
    // Where its content came from, as Cinder's `_usage_from_volume` (null: neither).
    snapshot_id: volume.snapshotId,
    source_volid: volume.sourceVolid,
  };
}

/** Cinder's `_usage_from_group_snapshot`. */
export function groupSnapshotUsage(group: GroupSnapshotRow): Record<string, unknown> {
  return {
    tenant_id: group.projectId,
    user_id: group.userId,
    group_snapshot_id: group.id,
    name: group.name,
    description: group.description,
    created_at: group.createdAt.toISOString(),
    status: group.status,
    status_reason: group.statusReason,
  };
}
