import {
  Attachment,
  type Notification,
  type QuotaUsage,
  Snapshot,
  SnapshotStatus,
  snapshotStatusFromJSON,
  snapshotStatusToJSON,
  Volume,
  VolumeStatus,
  VolumeType,
  volumeStatusFromJSON,
  volumeStatusToJSON,
} from "@cinderblock/proto";
import { UsageError } from "./args.js";

/** Cinder's name of a volume status: "available", "in-use", "error_deleting"... */
export function volumeStatusName(status: VolumeStatus): string {
  if (status === VolumeStatus.VOLUME_STATUS_IN_USE) return "in-use";
  return volumeStatusToJSON(status)
    .replace(/^VOLUME_STATUS_/, "")
    .toLowerCase();
}

/** Cinder's name of a snapshot status: "creating", "available", "error_deleting"... */
export function snapshotStatusName(status: SnapshotStatus): string {
  return snapshotStatusToJSON(status)
    .replace(/^SNAPSHOT_STATUS_/, "")
    .toLowerCase();
}

function statusToken(value: string, prefix: string): string {
  const upper = value.trim().toUpperCase().replace(/-/g, "_");
  return upper.startsWith(prefix) ? upper : `${prefix}${upper}`;
}

const VOLUME_STATUS_NAMES = Object.values(VolumeStatus)
  .filter((v): v is VolumeStatus => typeof v === "number" && v > 0)
  .map(volumeStatusName);
const SNAPSHOT_STATUS_NAMES = Object.values(SnapshotStatus)
  .filter((v): v is SnapshotStatus => typeof v === "number" && v > 0)
  .map(snapshotStatusName);

/** Parses a --status value ("in-use", "available", "VOLUME_STATUS_ERROR"...). */
export function parseVolumeStatus(value: string): VolumeStatus {
  const status = volumeStatusFromJSON(statusToken(value, "VOLUME_STATUS_"));
  if (status <= 0) {
    throw new UsageError(`--status: unknown volume status '${value}' (one of ${VOLUME_STATUS_NAMES.join(", ")})`);
  }
  return status;
}

/** Parses a --status value for snapshots ("available", "error_deleting"...). */
export function parseSnapshotStatus(value: string): SnapshotStatus {
  const status = snapshotStatusFromJSON(statusToken(value, "SNAPSHOT_STATUS_"));
  if (status <= 0) {
    throw new UsageError(`--status: unknown snapshot status '${value}' (one of ${SNAPSHOT_STATUS_NAMES.join(", ")})`);
  }
  return status;
}

/**
 * A message as proto3 JSON (camelCase names, enum names, RFC 3339 timestamps) with every field
 * present, even at its default: "" , 0, false, [] or {} (timestamps that are unset are left out).
 * Scripts can then rely on `.bootable` being a boolean.
 */
function fullJson<T extends object>(message: T, json: unknown, enums: Record<string, (v: number) => string> = {}) {
  const given = json as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(message)) {
    if (key in given) out[key] = given[key];
    else if (key in enums && typeof value === "number") out[key] = enums[key]?.(value);
    else if (typeof value === "string") out[key] = "";
    else if (typeof value === "number") out[key] = 0;
    else if (typeof value === "boolean") out[key] = false;
    else if (Array.isArray(value)) out[key] = [];
    else if (value !== undefined && !(value instanceof Date)) out[key] = {};
  }
  return out;
}

/** A volume as JSON for --json output (every field present). */
export function volumeJson(volume: Volume): Record<string, unknown> {
  const out = fullJson(volume, Volume.toJSON(volume), { status: volumeStatusToJSON });
  out.attachments = volume.attachments.map((a) => fullJson(a, Attachment.toJSON(a)));
  return out;
}

/** A snapshot as JSON for --json output (every field present). */
export function snapshotJson(snapshot: Snapshot): Record<string, unknown> {
  return fullJson(snapshot, Snapshot.toJSON(snapshot), { status: snapshotStatusToJSON });
}

/** A volume type as JSON for --json output (every field present). */
export function volumeTypeJson(type: VolumeType): Record<string, unknown> {
  return fullJson(type, VolumeType.toJSON(type));
}

/** Plain columns: a header row, then one row per item, padded to the widest cell. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join("\n")}\n`;
}

function pairs(map: Record<string, string>): string {
  return Object.entries(map)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

function time(date: Date | undefined): string {
  return date ? date.toISOString() : "";
}

/** `volume list`. */
export function volumeTable(volumes: Volume[]): string {
  return table(
    ["ID", "NAME", "STATUS", "SIZE_GB", "TYPE", "BOOTABLE", "HOST", "CREATED"],
    volumes.map((v) => [
      v.id,
      v.name,
      volumeStatusName(v.status),
      String(v.sizeGb),
      v.volumeType,
      v.bootable ? "true" : "false",
      v.host,
      time(v.createdAt),
    ]),
  );
}

/** `snapshot list`. */
export function snapshotTable(snapshots: Snapshot[]): string {
  return table(
    ["ID", "NAME", "STATUS", "PROGRESS", "VOLUME_ID", "SIZE_GB", "CREATED"],
    snapshots.map((s) => [
      s.id,
      s.name,
      snapshotStatusName(s.status),
      s.progress,
      s.volumeId,
      String(s.volumeSizeGb),
      time(s.createdAt),
    ]),
  );
}

/** `type list`. */
export function volumeTypeTable(types: VolumeType[]): string {
  return table(
    ["ID", "NAME", "PUBLIC", "DESCRIPTION", "EXTRA_SPECS"],
    types.map((t) => [t.id, t.name, t.isPublic ? "true" : "false", t.description, pairs(t.extraSpecs)]),
  );
}

/** `type show`: one field per line. */
export function volumeTypeDetail(t: VolumeType): string {
  const rows: [string, string][] = [
    ["id", t.id],
    ["name", t.name],
    ["description", t.description],
    ["is_public", String(t.isPublic)],
    ["extra_specs", pairs(t.extraSpecs)],
    ["qos_specs_id", t.qosSpecsId],
    ["created_at", time(t.createdAt)],
    ["updated_at", time(t.updatedAt)],
  ];
  return table(["FIELD", "VALUE"], rows);
}

/** `volume show`: one field per line. */
export function volumeDetail(v: Volume): string {
  const rows: [string, string][] = [
    ["id", v.id],
    ["name", v.name],
    ["description", v.description],
    ["status", volumeStatusName(v.status)],
    ["status_reason", v.statusReason],
    ["status_detail", v.statusDetail],
    ["size_gb", String(v.sizeGb)],
    ["volume_type", v.volumeType],
    ["availability_zone", v.availabilityZone],
    ["bootable", String(v.bootable)],
    ["multiattach", String(v.multiattach)],
    ["host", v.host],
    ["pool", v.pool],
    ["snapshot_id", v.snapshotId],
    ["source_volume_id", v.sourceVolumeId],
    ["encryption_key_id", v.encryptionKeyId],
    ["metadata", pairs(v.metadata)],
    ["image_metadata", pairs(v.imageMetadata)],
    ["attachments", v.attachments.map((a) => `${a.instanceId} ${a.mountpoint} (${a.attachStatus})`).join("; ")],
    ["project_id", v.projectId],
    ["user_id", v.userId],
    ["created_at", time(v.createdAt)],
    ["updated_at", time(v.updatedAt)],
  ];
  return table(["FIELD", "VALUE"], rows);
}

/** `snapshot show`: one field per line. */
export function snapshotDetail(s: Snapshot): string {
  const rows: [string, string][] = [
    ["id", s.id],
    ["name", s.name],
    ["description", s.description],
    ["status", snapshotStatusName(s.status)],
    ["status_reason", s.statusReason],
    ["status_detail", s.statusDetail],
    ["progress", s.progress],
    ["volume_id", s.volumeId],
    ["volume_size_gb", String(s.volumeSizeGb)],
    ["volume_type", s.volumeType],
    ["provider_location", s.providerLocation],
    ["group_snapshot_id", s.groupSnapshotId],
    ["metadata", pairs(s.metadata)],
    ["image_metadata", pairs(s.imageMetadata)],
    ["project_id", s.projectId],
    ["user_id", s.userId],
    ["created_at", time(s.createdAt)],
    ["updated_at", time(s.updatedAt)],
  ];
  return table(["FIELD", "VALUE"], rows);
}

/** `quota show`. */
export function quotaTable(quotas: QuotaUsage[]): string {
  return table(
    ["RESOURCE", "LIMIT", "IN_USE"],
    quotas.map((q) => [q.resource, q.limit < 0 ? "unlimited" : String(q.limit), String(q.inUse)]),
  );
}

/** One line of `events`: time, priority, event type, the resource it is about and its status. */
export function eventLine(event: Notification): string {
  const payload = (event.payload ?? {}) as Record<string, unknown>;
  const text = (key: string) => (typeof payload[key] === "string" ? (payload[key] as string) : "");
  const resource = text("snapshot_id")
    ? `snapshot ${text("snapshot_id")} (volume ${text("volume_id")})`
    : text("volume_id")
      ? `volume ${text("volume_id")}`
      : "";
  return [time(event.timestamp), event.priority.padEnd(5), event.eventType.padEnd(26), resource, text("status")]
    .join("  ")
    .trimEnd();
}
