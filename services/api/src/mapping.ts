import type {
  AttachmentRow,
  GroupSnapshotRow,
  SnapshotRow,
  SnapshotStatus as SnapshotStatusName,
  VolumeRow,
  VolumeStatus as VolumeStatusName,
  VolumeTypeRow,
} from "@cinderblock/db";
import {
  CinderblockError,
  type GroupSnapshotStatus as GroupSnapshotStatusName,
  type QosConsumer as QosConsumerName,
  type QosSpecsView,
  type ServiceView,
  visibleExtraSpecs,
} from "@cinderblock/domain";
import {
  type Attachment,
  type GroupSnapshot,
  GroupSnapshotStatus,
  ListView,
  QosConsumer,
  type QosSpecs,
  type Service,
  ServiceState,
  ServiceStatus,
  Snapshot,
  SnapshotStatus,
  Volume,
  VolumeStatus,
  type VolumeType,
} from "@cinderblock/proto";

const VOLUME_STATUS: Record<VolumeStatusName, VolumeStatus> = {
  creating: VolumeStatus.VOLUME_STATUS_CREATING,
  available: VolumeStatus.VOLUME_STATUS_AVAILABLE,
  "in-use": VolumeStatus.VOLUME_STATUS_IN_USE,
  error: VolumeStatus.VOLUME_STATUS_ERROR,
  deleting: VolumeStatus.VOLUME_STATUS_DELETING,
  error_deleting: VolumeStatus.VOLUME_STATUS_ERROR_DELETING,
  maintenance: VolumeStatus.VOLUME_STATUS_MAINTENANCE,
  attaching: VolumeStatus.VOLUME_STATUS_ATTACHING,
  detaching: VolumeStatus.VOLUME_STATUS_DETACHING,
  extending: VolumeStatus.VOLUME_STATUS_EXTENDING,
  reserved: VolumeStatus.VOLUME_STATUS_RESERVED,
  deleted: VolumeStatus.VOLUME_STATUS_DELETED,
  reverting: VolumeStatus.VOLUME_STATUS_REVERTING,
  error_extending: VolumeStatus.VOLUME_STATUS_ERROR_EXTENDING,
  retyping: VolumeStatus.VOLUME_STATUS_RETYPING,
};

const SNAPSHOT_STATUS: Record<SnapshotStatusName, SnapshotStatus> = {
  creating: SnapshotStatus.SNAPSHOT_STATUS_CREATING,
  available: SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE,
  error: SnapshotStatus.SNAPSHOT_STATUS_ERROR,
  deleting: SnapshotStatus.SNAPSHOT_STATUS_DELETING,
  error_deleting: SnapshotStatus.SNAPSHOT_STATUS_ERROR_DELETING,
  deleted: SnapshotStatus.SNAPSHOT_STATUS_DELETED,
  "backing-up": SnapshotStatus.SNAPSHOT_STATUS_BACKING_UP,
  restoring: SnapshotStatus.SNAPSHOT_STATUS_RESTORING,
  unmanaging: SnapshotStatus.SNAPSHOT_STATUS_UNMANAGING,
};

const GROUP_SNAPSHOT_STATUS: Record<GroupSnapshotStatusName, GroupSnapshotStatus> = {
  creating: GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_CREATING,
  available: GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_AVAILABLE,
  error: GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_ERROR,
  deleting: GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_DELETING,
  error_deleting: GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_ERROR_DELETING,
  deleted: GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_DELETED,
};

/** A stored group snapshot status as the public enum; UNRECOGNIZED for text the domain does not name. */
function groupSnapshotStatus(stored: string): GroupSnapshotStatus {
  // NOTE: the group_snapshots.status column is plain text (not typed like volumes' and snapshots'),
  // so look it up as an own key rather than trusting the cast.
  return Object.hasOwn(GROUP_SNAPSHOT_STATUS, stored)
    ? GROUP_SNAPSHOT_STATUS[stored as GroupSnapshotStatusName]
    : GroupSnapshotStatus.UNRECOGNIZED;
}

/** The stored status for a public VolumeStatus, or undefined for UNSPECIFIED/unknown values. */
export function volumeStatusName(status: VolumeStatus): VolumeStatusName | undefined {
  return (Object.keys(VOLUME_STATUS) as VolumeStatusName[]).find((k) => VOLUME_STATUS[k] === status);
}

/** The stored status for a public GroupSnapshotStatus, or undefined for UNSPECIFIED/unknown values. */
export function groupSnapshotStatusName(status: GroupSnapshotStatus): GroupSnapshotStatusName | undefined {
  return (Object.keys(GROUP_SNAPSHOT_STATUS) as GroupSnapshotStatusName[]).find(
    (k) => GROUP_SNAPSHOT_STATUS[k] === status,
  );
}

/** The stored status for a public SnapshotStatus, or undefined for UNSPECIFIED/unknown values. */
export function snapshotStatusName(status: SnapshotStatus): SnapshotStatusName | undefined {
  return (Object.keys(SNAPSHOT_STATUS) as SnapshotStatusName[]).find((k) => SNAPSHOT_STATUS[k] === status);
}

/** An attachment row as the public API shows it. */
export function toAttachment(row: AttachmentRow): Attachment {
  return {
    id: row.id,
    volumeId: row.volumeId,
    instanceId: row.instanceId,
    mountpoint: row.mountpoint,
    attachStatus: row.attachStatus,
    attachedAt: row.attachedAt ?? undefined,
    connector: row.connector,
  };
}

/** Who reads a view: admins also see the backend's failure detail (status_detail). */
export interface Viewer {
  isAdmin?: boolean | undefined;
}

/**
 * A volume row as the public API shows it to `viewer` (with its attachments, where the caller
 * loaded them).
 */
export function toVolume(row: VolumeRow, viewer: Viewer, attachments: AttachmentRow[] = []): Volume {
  return {
    id: row.id,
    projectId: row.projectId,
    userId: row.userId,
    name: row.name,
    description: row.description,
    status: VOLUME_STATUS[row.status] ?? VolumeStatus.UNRECOGNIZED,
    statusReason: row.statusReason,
    statusDetail: viewer.isAdmin ? row.statusDetail : "",
    sizeGb: row.sizeGb,
    volumeType: row.volumeType,
    volumeTypeId: row.volumeTypeId ?? "",
    availabilityZone: row.availabilityZone,
    bootable: row.bootable,
    imageMetadata: row.imageMetadata,
    encryptionKeyId: row.encryptionKeyId,
    host: row.host ?? "",
    pool: row.pool ?? "",
    metadata: row.metadata,
    migrationStatus: row.migrationStatus ?? "",
    snapshotId: row.snapshotId ?? "",
    sourceVolumeId: row.sourceVolid ?? "",
    multiattach: row.multiattach,
    attachments: attachments.map(toAttachment),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** A snapshot row as the public API shows it to `viewer`. */
export function toSnapshot(row: SnapshotRow, viewer: Viewer): Snapshot {
  return {
    id: row.id,
    projectId: row.projectId,
    userId: row.userId,
    name: row.name,
    description: row.description,
    status: SNAPSHOT_STATUS[row.status] ?? SnapshotStatus.UNRECOGNIZED,
    statusReason: row.statusReason,
    statusDetail: viewer.isAdmin ? row.statusDetail : "",
    volumeId: row.volumeId,
    volumeSizeGb: row.volumeSizeGb,
    progress: row.progress,
    volumeType: row.volumeType,
    volumeTypeId: row.volumeTypeId ?? "",
    providerLocation: row.providerLocation,
    groupSnapshotId: row.groupSnapshotId,
    imageMetadata: row.imageMetadata,
    metadata: row.metadata,
    encryptionKeyId: row.encryptionKeyId,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** A request's list view, refusing numbers the enum does not know. */
export function listView(view: ListView): ListView {
  if (view === ListView.LIST_VIEW_SUMMARY || view === ListView.LIST_VIEW_DETAIL) return view;
  if (view === ListView.LIST_VIEW_UNSPECIFIED) return ListView.LIST_VIEW_DETAIL;
  throw new CinderblockError("INVALID_ARGUMENT", "view: must be LIST_VIEW_SUMMARY or LIST_VIEW_DETAIL");
}

/** A volume in a list: every field, or the summary's id, name, status and size. */
export function toListedVolume(row: VolumeRow, view: ListView, viewer: Viewer): Volume {
  if (view !== ListView.LIST_VIEW_SUMMARY) return toVolume(row, viewer);
  return Volume.fromPartial({
    id: row.id,
    name: row.name,
    status: VOLUME_STATUS[row.status] ?? VolumeStatus.UNRECOGNIZED,
    sizeGb: row.sizeGb,
  });
}

/** A snapshot in a list: every field, or the summary's id, name, status, size, volume and time. */
export function toListedSnapshot(row: SnapshotRow, view: ListView, viewer: Viewer): Snapshot {
  if (view !== ListView.LIST_VIEW_SUMMARY) return toSnapshot(row, viewer);
  return Snapshot.fromPartial({
    id: row.id,
    name: row.name,
    status: SNAPSHOT_STATUS[row.status] ?? SnapshotStatus.UNRECOGNIZED,
    volumeId: row.volumeId,
    volumeSizeGb: row.volumeSizeGb,
    createdAt: row.createdAt,
  });
}

/** A group snapshot and its members as the public API shows them. */
export function toGroupSnapshot(group: GroupSnapshotRow, members: SnapshotRow[], viewer: Viewer): GroupSnapshot {
  return {
    id: group.id,
    projectId: group.projectId,
    name: group.name,
    description: group.description,
    status: groupSnapshotStatus(group.status),
    statusReason: group.statusReason,
    snapshots: members.map((row) => toSnapshot(row, viewer)),
    createdAt: group.createdAt,
    updatedAt: group.updatedAt,
  };
}

/** A volume type as `viewer` sees it: extra specs and the QoS specs id as Cinder shows them. */
export function toVolumeType(row: VolumeTypeRow, viewer: Viewer): VolumeType {
  const admin = viewer.isAdmin === true;
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    isPublic: row.isPublic,
    extraSpecs: visibleExtraSpecs(admin, row.extraSpecs),
    qosSpecsId: admin ? (row.qosSpecsId ?? "") : "",
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

const QOS_CONSUMER: Record<QosConsumerName, QosConsumer> = {
  "back-end": QosConsumer.QOS_CONSUMER_BACK_END,
  "front-end": QosConsumer.QOS_CONSUMER_FRONT_END,
  both: QosConsumer.QOS_CONSUMER_BOTH,
};

/** The stored consumer of a request's QosConsumer: unspecified is back-end (Cinder's default). */
export function qosConsumerName(consumer: QosConsumer): QosConsumerName {
  if (consumer === QosConsumer.QOS_CONSUMER_UNSPECIFIED) return "back-end";
  const name = (Object.keys(QOS_CONSUMER) as QosConsumerName[]).find((k) => QOS_CONSUMER[k] === consumer);
  if (!name) throw new CinderblockError("INVALID_ARGUMENT", "consumer: must be back-end, front-end or both");
  return name;
}

/** QoS specs and their types as the public API shows them. */
export function toQosSpecs(view: QosSpecsView): QosSpecs {
  return {
    id: view.qos.id,
    name: view.qos.name,
    consumer: QOS_CONSUMER[view.qos.consumer as QosConsumerName] ?? QosConsumer.UNRECOGNIZED,
    specs: view.qos.specs,
    volumeTypeIds: view.volumeTypeIds,
    createdAt: view.qos.createdAt,
  };
}

/** A backend as ListServices shows it (os-services with os-extended-services). */
export function toService(view: ServiceView): Service {
  return {
    binary: view.binary,
    host: view.host,
    zone: view.zone,
    status: view.status === "disabled" ? ServiceStatus.SERVICE_STATUS_DISABLED : ServiceStatus.SERVICE_STATUS_ENABLED,
    state: view.state === "up" ? ServiceState.SERVICE_STATE_UP : ServiceState.SERVICE_STATE_DOWN,
    disabledReason: view.disabledReason,
    frozen: view.frozen,
    updatedAt: view.updatedAt,
    heartbeatAt: view.heartbeatAt,
    backendState: view.backendState,
  };
}
