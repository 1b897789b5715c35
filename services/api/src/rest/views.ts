import type { AttachmentRow, SnapshotRow, VolumeRow, VolumeTypeRow } from "@cinderblock/db";
import {
  type AvailabilityZoneView,
  type PoolView,
  type QosSpecsView,
  type QuotaView,
  type ServiceView,
  visibleExtraSpecs,
} from "@cinderblock/domain";
import { atLeast, type Microversion } from "./microversion.js";

/** What a view depends on besides the row: the version asked for, who asks, and the base URL of links. */
export interface ViewContext {
  version: Microversion;
  isAdmin: boolean;
  /** Scheme, host and port the caller reached (or CINDERBLOCK_REST_PUBLIC_URL), without a trailing slash. */
  baseUrl: string;
  /** The caller's project (links carry it, as Cinder's do). */
  projectId: string;
}

/** A timestamp as Cinder's JSON shows it: UTC, microseconds, no zone suffix (`2026-12-06T10:00:00.000000`). */
export function cinderTime(date: Date | null | undefined): string | null {
  if (!date) return null;
  return `${date.toISOString().slice(0, 23)}000`;
}

/** Cinder's `links` of one resource: `self` under /v3/{project_id}, `bookmark` without the version. */
function resourceLinks(view: ViewContext, collection: string, id: string) {
  return [
    { rel: "self", href: `${view.baseUrl}/v3/${view.projectId}/${collection}/${id}` },
    { rel: "bookmark", href: `${view.baseUrl}/${view.projectId}/${collection}/${id}` },
  ];
}

/** A volume's `host` (`<host>@<backend>`) and `pool` as Cinder's `host@backend#pool`. */
function cinderHost(host: string | null, pool: string | null): string | null {
  if (!host) return null;
  return pool ? `${host}#${pool}` : host;
}

/** A volume's attachments as Cinder lists them (attached ones only). */
function attachmentViews(rows: AttachmentRow[], isAdmin: boolean) {
  return rows
    .filter((a) => a.attachStatus === "attached")
    .map((a) => ({
      id: a.volumeId,
      attachment_id: a.id,
      volume_id: a.volumeId,
      server_id: a.instanceId,
      host_name: isAdmin ? (a.connector.host ?? null) : null,
      device: a.mountpoint || null,
      attached_at: cinderTime(a.attachedAt),
    }));
}

/** Options of {@link volumeView}. */
export interface VolumeViewOptions {
  attachments?: AttachmentRow[];
  /**
   * Whether the extension attributes are added (`os-vol-tenant-attr:tenant_id`...): Cinder adds them
   * to show and detail (GET), not to create and update.
   */
  extended?: boolean;
}

/** A volume as cinder/api/v3/views/volumes.py `detail` shows it at `view.version`. */
export function volumeView(row: VolumeRow, view: ViewContext, options: VolumeViewOptions = {}) {
  const { version, isAdmin } = view;
  const volume: Record<string, unknown> = {
    id: row.id,
    status: row.status,
    size: row.sizeGb,
    availability_zone: row.availabilityZone,
    created_at: cinderTime(row.createdAt),
    updated_at: cinderTime(row.updatedAt),
    name: row.name || null,
    description: row.description,
    volume_type: row.volumeType || null,
    snapshot_id: row.snapshotId,
    source_volid: row.sourceVolid,
    metadata: row.metadata,
    links: resourceLinks(view, "volumes", row.id),
    user_id: row.userId,
    bootable: String(row.bootable),
    encrypted: row.encryptionKeyId !== "",
    replication_status: "disabled",
    consistencygroup_id: null,
    multiattach: row.multiattach,
    attachments: attachmentViews(options.attachments ?? [], isAdmin),
  };
  if (isAdmin) volume.migration_status = row.migrationStatus;
  if (atLeast(version, "3.13")) volume.group_id = null;
  if (isAdmin && atLeast(version, "3.21")) volume.provider_id = null;
  if (atLeast(version, "3.48")) {
    volume.shared_targets = true;
    volume.service_uuid = null;
  }
  if (isAdmin && atLeast(version, "3.61")) volume.cluster_name = null;
  if (atLeast(version, "3.63")) volume.volume_type_id = row.volumeTypeId;
  if (atLeast(version, "3.64") && row.encryptionKeyId !== "") volume.encryption_key_id = row.encryptionKeyId;
  if (options.extended) {
    volume["os-vol-tenant-attr:tenant_id"] = row.projectId;
    if (isAdmin) {
      volume["os-vol-host-attr:host"] = cinderHost(row.host, row.pool);
      volume["os-vol-mig-status-attr:migstat"] = row.migrationStatus;
      volume["os-vol-mig-status-attr:name_id"] = null;
    }
    if (Object.keys(row.imageMetadata).length > 0) volume.volume_image_metadata = row.imageMetadata;
  }
  return volume;
}

/** A volume in `GET /volumes` (no detail): id, name and links. */
export function volumeSummaryView(row: VolumeRow, view: ViewContext) {
  return { id: row.id, name: row.name || null, links: resourceLinks(view, "volumes", row.id) };
}

/**
 * A snapshot as cinder/api/v3/views/snapshots.py shows it; `extended` adds what the
 * extended_snapshot_attributes extension adds to show and detail (progress, project id).
 */
export function snapshotView(row: SnapshotRow, view: ViewContext, extended: boolean) {
  const snapshot: Record<string, unknown> = {
    id: row.id,
    created_at: cinderTime(row.createdAt),
    updated_at: cinderTime(row.updatedAt),
    name: row.name,
    description: row.description,
    volume_id: row.volumeId,
    status: row.status,
    size: row.volumeSizeGb,
    metadata: row.metadata,
  };
  if (atLeast(view.version, "3.14")) snapshot.group_snapshot_id = row.groupSnapshotId || null;
  if (atLeast(view.version, "3.41")) snapshot.user_id = row.userId;
  if (extended) {
    snapshot["os-extended-snapshot-attributes:progress"] = row.progress;
    snapshot["os-extended-snapshot-attributes:project_id"] = row.projectId;
  }
  return snapshot;
}

/**
 * A volume type as cinder/api/v3/views/types.py shows it (sensitive extra specs to admins only).
 * `qos_specs_id` (admins) is on show and list only: the answers of create and update have no such
 * field in Cinder (tempest's create/update schemas refuse it).
 */
export function volumeTypeView(row: VolumeTypeRow, view: ViewContext, withQos = true) {
  const type: Record<string, unknown> = {
    id: row.id,
    name: row.name,
    is_public: row.isPublic,
    "os-volume-type-access:is_public": row.isPublic,
    description: row.description || null,
    extra_specs: visibleExtraSpecs(view.isAdmin, row.extraSpecs),
  };
  if (view.isAdmin && withQos) type.qos_specs_id = row.qosSpecsId;
  return type;
}

/**
 * Resources Cinder's quota sets always name that Cinderblock has no feature for: none can be made,
 * so their limit is 0 (per_volume_gigabytes: unlimited).
 */
const ABSENT_QUOTAS: Record<string, number> = { backups: 0, backup_gigabytes: 0, groups: 0, per_volume_gigabytes: -1 };

/** os-quota-sets' `quota_set`: limits, or with `usage` Cinder's `{limit, in_use, reserved}` per resource. */
export function quotaSetView(projectId: string | undefined, quotas: QuotaView[], usage: boolean) {
  const set: Record<string, unknown> = projectId === undefined ? {} : { id: projectId };
  for (const [resource, limit] of Object.entries(ABSENT_QUOTAS)) {
    set[resource] = usage ? { limit, in_use: 0, reserved: 0 } : limit;
  }
  for (const q of quotas) set[q.resource] = usage ? { limit: q.limit, in_use: q.inUse, reserved: 0 } : q.limit;
  return set;
}

/** `GET /limits`: the project's absolute limits and usage (no rate limits, as Cinder). */
export function limitsView(quotas: QuotaView[]) {
  const of = (resource: string) => quotas.find((q) => q.resource === resource) ?? { limit: 0, inUse: 0 };
  return {
    rate: [],
    absolute: {
      maxTotalVolumes: of("volumes").limit,
      maxTotalSnapshots: of("snapshots").limit,
      maxTotalVolumeGigabytes: of("gigabytes").limit,
      maxTotalBackups: 0,
      maxTotalBackupGigabytes: 0,
      totalVolumesUsed: of("volumes").inUse,
      totalSnapshotsUsed: of("snapshots").inUse,
      totalGigabytesUsed: of("gigabytes").inUse,
      totalBackupsUsed: 0,
      totalBackupGigabytesUsed: 0,
    },
  };
}

/** `os-availability-zone`'s list. */
export function availabilityZonesView(zones: AvailabilityZoneView[]) {
  return zones.map((z) => ({ zoneName: z.name, zoneState: { available: z.available } }));
}

/** The versions document (cinder/api/versions.py): v3 CURRENT with its microversion range. */
export function versionView(baseUrl: string, min: string, max: string) {
  return {
    id: "v3.0",
    status: "CURRENT",
    version: max,
    min_version: min,
    updated: "2026-12-06T00:00:00Z",
    links: [
      { rel: "describedby", type: "text/html", href: "https://docs.openstack.org/" },
      { rel: "self", href: `${baseUrl}/v3/` },
    ],
    "media-types": [{ base: "application/json", type: "application/vnd.openstack.volume+json;version=3" }],
  };
}

/**
 * A volume service as Cinder's os-services lists it (with os-extended-services' `disabled_reason`,
 * the volume binary's `replication_status`, `active_backend_id` and `frozen`, 3.7's `cluster` and
 * 3.49's `backend_state`). Cinderblock replicates nothing, so `replication_status` is `disabled`.
 */
export function serviceListView(service: ServiceView, view: ViewContext) {
  return {
    binary: service.binary,
    host: service.host,
    zone: service.zone,
    status: service.status,
    state: service.state,
    updated_at: cinderTime(service.updatedAt),
    disabled_reason: service.disabledReason || null,
    replication_status: "disabled",
    active_backend_id: null,
    frozen: service.frozen,
    ...(atLeast(view.version, "3.7") ? { cluster: null } : {}),
    ...(atLeast(view.version, "3.49") ? { backend_state: service.backendState } : {}),
  };
}

/**
 * The pools get_pools lists: names, and with `detail` their capabilities (a `storage_protocol`
 * given as a list shows its first, preferred, variant, as Cinder's view).
 */
export function poolsView(pools: PoolView[], detail: boolean) {
  return pools.map((pool) => {
    if (!detail) return { name: pool.name };
    const capabilities: Record<string, unknown> = { ...pool.capabilities };
    const protocol = capabilities.storage_protocol;
    if (Array.isArray(protocol)) capabilities.storage_protocol = protocol[0];
    return { name: pool.name, capabilities };
  });
}

/** QoS specs as Cinder shows them (`id`, `name`, `consumer`, `specs`). */
export function qosSpecsView(view: QosSpecsView) {
  return { id: view.qos.id, name: view.qos.name, consumer: view.qos.consumer, specs: view.qos.specs };
}

/** The `links` of one QoS specs (show and create answer them beside the specs). */
export function qosSpecsLinks(view: ViewContext, id: string) {
  return resourceLinks(view, "qos-specs", id);
}
