/**
 * Every NATS subject and stream name Cinderblock uses, under one prefix (default "cinderblock";
 * tests use their own so that runs sharing a server don't collide). Only this package knows them.
 */
export interface Subjects {
  readonly prefix: string;
  /** Work-queue stream holding every cast. */
  readonly castsStream: string;
  /** Limits stream capturing every notification, for replay. */
  readonly notificationsStream: string;
  readonly schedulerAll: string;
  readonly schedulerCreateSnapshot: string;
  readonly schedulerCreateVolume: string;
  readonly schedulerRetypeVolume: string;
  /** Everything addressed to any volume host. */
  readonly volumeAllHosts: string;
  /** Everything addressed to one volume host. */
  volumeAll(host: string): string;
  volumeCreateSnapshot(host: string): string;
  volumeCreateVolume(host: string): string;
  volumeDeleteSnapshot(host: string): string;
  volumeDeleteVolume(host: string): string;
  volumeExtendVolume(host: string): string;
  volumeRevertToSnapshot(host: string): string;
  volumeRetypeVolume(host: string): string;
  volumeMigrateVolume(host: string): string;
  notification(priority: "INFO" | "ERROR", eventType: string): string;
  readonly notificationsAll: string;
  /**
   * Subject of an instance's compute agent: requests (freeze/thaw for SnapshotInstance) and the
   * `volume_extended` event (an attached volume grew).
   */
  compute(instanceId: string, action: "quiesce" | "unquiesce" | "volume_extended"): string;
  /**
   * Prefix of the reply subjects of one identity (`api`, `scheduler`, `volume-<host>`):
   * `_INBOX_<prefix>.<role>`, so the NATS server can let only that identity read its replies.
   */
  inboxPrefix(role: string): string;
  /** Core-NATS signal that a resource row changed (WatchSnapshot wakes on it). */
  change(kind: "snapshot" | "volume", id: string): string;
}

const TOKEN = /^[A-Za-z0-9_-]+$/;

function token(name: string, value: string): string {
  if (!TOKEN.test(value)) throw new Error(`${name} ${JSON.stringify(value)} is not a valid NATS subject token`);
  return value;
}

/** Builds the subject names for a prefix. */
export function createSubjects(prefix = "cinderblock"): Subjects {
  token("prefix", prefix);
  const v1 = `${prefix}.v1`;
  const streamBase = prefix.toUpperCase().replace(/-/g, "_");
  return {
    prefix,
    castsStream: `${streamBase}_CASTS`,
    notificationsStream: `${streamBase}_NOTIFICATIONS`,
    schedulerAll: `${v1}.scheduler.>`,
    schedulerCreateSnapshot: `${v1}.scheduler.create_snapshot`,
    schedulerCreateVolume: `${v1}.scheduler.create_volume`,
    schedulerRetypeVolume: `${v1}.scheduler.retype_volume`,
    volumeAllHosts: `${v1}.volume.>`,
    volumeAll: (host) => `${v1}.volume.${token("host", host)}.>`,
    volumeCreateSnapshot: (host) => `${v1}.volume.${token("host", host)}.create_snapshot`,
    volumeCreateVolume: (host) => `${v1}.volume.${token("host", host)}.create_volume`,
    volumeDeleteSnapshot: (host) => `${v1}.volume.${token("host", host)}.delete_snapshot`,
    volumeDeleteVolume: (host) => `${v1}.volume.${token("host", host)}.delete_volume`,
    volumeExtendVolume: (host) => `${v1}.volume.${token("host", host)}.extend_volume`,
    volumeRevertToSnapshot: (host) => `${v1}.volume.${token("host", host)}.revert_to_snapshot`,
    volumeRetypeVolume: (host) => `${v1}.volume.${token("host", host)}.retype_volume`,
    volumeMigrateVolume: (host) => `${v1}.volume.${token("host", host)}.migrate_volume`,
    notification: (priority, eventType) => `${prefix}.notifications.${priority.toLowerCase()}.${eventType}`,
    notificationsAll: `${prefix}.notifications.>`,
    compute: (instanceId, action) => `${v1}.compute.${token("instance", instanceId)}.${action}`,
    inboxPrefix: (role) => `_INBOX_${prefix}.${token("role", role)}`,
    change: (kind, id) => `${prefix}.changes.${kind}.${token("id", id)}`,
  };
}
