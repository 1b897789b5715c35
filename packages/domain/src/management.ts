import { randomUUID } from "node:crypto";
import {
  type Db,
  deleteMetadataKey,
  type EditableTable,
  type Executor,
  getLatestSnapshotOfVolume,
  getQuotaLimits,
  getQuotaUsage,
  getSnapshot,
  getSnapshotElevated,
  getVolume,
  getVolumeActivity,
  getVolumeElevated,
  insertOperation,
  listSnapshotsOfVolume,
  markVolumeDeleted,
  releaseQuota,
  resetSnapshotStatus,
  resetVolumeStatus,
  type SnapshotRow,
  type SnapshotStatus,
  setMetadata,
  setQuotaLimit,
  transaction,
  updateNameDescription,
  updateSnapshotStatus,
  updateVolumeStatus,
  type VolumeRow,
  type VolumeStatus,
} from "@cinderblock/db";
import { castContext, type RequestContext, requireAdmin } from "./context.js";
import { CinderblockError } from "./errors.js";
import type { Announcer, Dispatcher, EventFeed, EventJson } from "./ports.js";
import { extendQuotaDeltas, type QuotaDefaults, reserveOrThrow, volumeQuotaHeld } from "./quota.js";
import {
  assertNoConflict,
  cascadedDeleteId,
  SNAPSHOT_OPERATIONS,
  SNAPSHOT_STATUSES,
  statusList,
  VOLUME_OPERATIONS,
  VOLUME_STATUSES,
} from "./state-machine.js";
import { snapshotUsage, volumeUsage } from "./usage.js";
import {
  assertMetadataBound,
  type UpdateInput,
  validateId,
  validateMetadata,
  validateMetadataKey,
  validateNewSize,
  validateUpdate,
} from "./validation.js";

/** What the management use cases need (a subset of the api's dependencies). */
export interface ManagementDependencies {
  db: Db;
  scheduler: Dispatcher;
  notifications: Announcer;
  events: EventFeed;
  quota: QuotaDefaults;
  operationTimeoutSeconds: number;
  onCommitted?(): void;
}

/** A resource's quota: its limit (-1 unlimited) and usage. */
export interface QuotaView {
  resource: string;
  limit: number;
  inUse: number;
}

/** Filters for {@link ManagementUseCases.watchEvents}. */
export interface EventFilter {
  resourceId: string;
  eventTypes: string[];
  allProjects: boolean;
}

/** Update, delete, reset, metadata, quotas and events: every operation after create. */
export interface ManagementUseCases {
  updateSnapshot(ctx: RequestContext, id: string, input: UpdateInput): Promise<SnapshotRow>;
  deleteSnapshot(ctx: RequestContext, id: string, force: boolean): Promise<SnapshotRow>;
  resetSnapshotStatus(ctx: RequestContext, id: string, status: SnapshotStatus): Promise<SnapshotRow>;
  updateVolume(ctx: RequestContext, id: string, input: UpdateInput): Promise<VolumeRow>;
  deleteVolume(ctx: RequestContext, id: string, cascade: boolean): Promise<VolumeRow>;
  resetVolumeStatus(ctx: RequestContext, id: string, status: VolumeStatus): Promise<VolumeRow>;
  extendVolume(ctx: RequestContext, id: string, newSizeGb: number): Promise<VolumeRow>;
  revertToSnapshot(ctx: RequestContext, volumeId: string, snapshotId: string): Promise<VolumeRow>;
  setMetadata(
    ctx: RequestContext,
    table: EditableTable,
    id: string,
    metadata: Record<string, string>,
    replace: boolean,
  ): Promise<Record<string, string>>;
  deleteMetadata(ctx: RequestContext, table: EditableTable, id: string, key: string): Promise<Record<string, string>>;
  getQuotas(ctx: RequestContext, projectId: string): Promise<{ projectId: string; quotas: QuotaView[] }>;
  updateQuotas(
    ctx: RequestContext,
    projectId: string,
    limits: Record<string, number>,
  ): Promise<{ projectId: string; quotas: QuotaView[] }>;
  watchEvents(ctx: RequestContext, filter: EventFilter, signal: AbortSignal): AsyncGenerator<EventJson>;
}

const QUOTA_RESOURCES = ["volumes", "snapshots", "gigabytes"] as const;
/** Cinder's per-volume-type quotas: `volumes_<type>`, `snapshots_<type>`, `gigabytes_<type>`. */
const TYPED_RESOURCE = /^(volumes|snapshots|gigabytes)_.{1,255}$/s;
/** Statuses an admin may reset a row to (not `deleted`: that is what a delete does). */
const SNAPSHOT_RESETTABLE: readonly SnapshotStatus[] = SNAPSHOT_STATUSES.filter((x) => x !== "deleted");
const VOLUME_RESETTABLE: readonly VolumeStatus[] = VOLUME_STATUSES.filter((x) => x !== "deleted");

/** Builds the management use cases. */
export function createManagementUseCases(deps: ManagementDependencies): ManagementUseCases {
  const { db } = deps;

  async function mustGetSnapshot(tx: Executor, ctx: RequestContext, id: string, lock?: "update"): Promise<SnapshotRow> {
    const row = await getSnapshot(tx, ctx.projectId, id, lock ? { lock } : {});
    if (!row) throw new CinderblockError("NOT_FOUND", `snapshot ${id} not found`);
    return row;
  }

  /** The project's volume; `lock: "update"` before reading what else is going on around it. */
  async function mustGetVolume(tx: Executor, ctx: RequestContext, id: string, lock?: "update"): Promise<VolumeRow> {
    const row = await getVolume(tx, ctx.projectId, id, lock ? { lock } : {});
    if (!row) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
    return row;
  }

  /** Announces a snapshot event (INFO) in `tx`, with its volume's availability zone. */
  async function snapshotEvent(tx: Executor, eventType: string, row: SnapshotRow): Promise<void> {
    const volume = await getVolumeElevated(tx, row.volumeId);
    await deps.notifications.announce(tx, "INFO", eventType, snapshotUsage(row, volume));
  }

  /** Announces a volume event (INFO) in `tx`. */
  async function volumeEvent(tx: Executor, eventType: string, row: VolumeRow): Promise<void> {
    await deps.notifications.announce(tx, "INFO", eventType, volumeUsage(row));
  }

  /** Announces `<resource>.<op>.start`, applies `change`, then announces `.end` with the row after it. */
  async function announced<T extends SnapshotRow | VolumeRow>(
    tx: Executor,
    kind: "snapshot" | "volume",
    op: string,
    before: T,
    change: () => Promise<T>,
  ): Promise<T> {
    const event = (row: T, phase: string) =>
      kind === "snapshot"
        ? snapshotEvent(tx, `${op}.${phase}`, row as SnapshotRow)
        : volumeEvent(tx, `${op}.${phase}`, row as VolumeRow);
    await event(before, "start");
    const after = await change();
    await event(after, "end");
    return after;
  }

  /**
   * A metadata change of one snapshot or volume with its `<resource>.<op>.start/.end` events;
   * `change` resolves false when the row is not there. Returns the metadata after it.
   */
  async function metadataChange(
    tx: Executor,
    ctx: RequestContext,
    table: EditableTable,
    id: string,
    op: "update_metadata" | "delete_metadata",
    change: () => Promise<boolean>,
  ): Promise<Record<string, string>> {
    const apply = async () => {
      if (!(await change())) throw new CinderblockError("NOT_FOUND", `${table.slice(0, -1)} ${id} not found`);
    };
    if (table === "snapshots") {
      const before = await mustGetSnapshot(tx, ctx, id);
      const after = await announced(tx, "snapshot", `snapshot.${op}`, before, async () => {
        await apply();
        return mustGetSnapshot(tx, ctx, id);
      });
      return after.metadata;
    }
    const before = await mustGetVolume(tx, ctx, id);
    const after = await announced(tx, "volume", `volume.${op}`, before, async () => {
      await apply();
      return mustGetVolume(tx, ctx, id);
    });
    return after.metadata;
  }

  /**
   * Moves a snapshot to `deleting` and records its delete operation, in `tx`; casts it to `host`
   * unless it is part of a volume's cascade (the volume's cast carries it; the operation lets the
   * reconciler drive it on its own should the cascade not finish).
   */
  async function startSnapshotDelete(
    tx: Executor,
    ctx: RequestContext,
    snapshot: SnapshotRow,
    from: readonly SnapshotStatus[],
    host: string | undefined,
    operationId: string = randomUUID(),
  ): Promise<SnapshotRow> {
    const deleting = await updateSnapshotStatus(tx, snapshot.id, from, "deleting", { statusReason: "" });
    if (!deleting) {
      throw new CinderblockError(
        "FAILED_PRECONDITION",
        `snapshot ${snapshot.id} status must be ${statusList(from)} to delete, but is ${snapshot.status}`,
      );
    }
    await insertOperation(tx, {
      id: operationId,
      kind: "delete_snapshot",
      resourceId: snapshot.id,
      projectId: snapshot.projectId,
      timeoutSeconds: deps.operationTimeoutSeconds,
    });
    if (host) {
      await deps.scheduler.deleteSnapshot(
        tx,
        host,
        { operationId, context: castContext(ctx), snapshotId: snapshot.id },
        1,
      );
    }
    return deleting;
  }

  /** The base resources, then every per-volume-type one the project has a limit or usage for. */
  async function quotas(projectId: string): Promise<QuotaView[]> {
    const [limits, usage] = await Promise.all([getQuotaLimits(db, projectId), getQuotaUsage(db, projectId)]);
    const typed = [...new Set([...Object.keys(limits), ...Object.keys(usage)])]
      .filter((r) => TYPED_RESOURCE.test(r))
      .sort();
    return [
      ...QUOTA_RESOURCES.map((resource) => ({
        resource,
        limit: limits[resource] ?? deps.quota[resource],
        inUse: usage[resource] ?? 0,
      })),
      ...typed.map((resource) => ({ resource, limit: limits[resource] ?? -1, inUse: usage[resource] ?? 0 })),
    ];
  }

  return {
    async updateSnapshot(ctx, rawId, raw) {
      const id = validateId("id", rawId);
      const input = validateUpdate(raw);
      const updated = await transaction(db, async (tx) => {
        const before = await mustGetSnapshot(tx, ctx, id);
        return announced(tx, "snapshot", "snapshot.update", before, async () => {
          await updateNameDescription(tx, "snapshots", ctx.projectId, id, input);
          return mustGetSnapshot(tx, ctx, id);
        });
      });
      deps.onCommitted?.();
      return updated;
    },

    async deleteSnapshot(ctx, rawId, force) {
      const id = validateId("id", rawId);
      if (force) requireAdmin(ctx, "force delete");
      const deleting = await transaction(db, async (tx) => {
        // NOTE: locked FOR UPDATE first: a create-from-snapshot share-locks it, so one being
        // recorded is committed (and seen below) before this goes on.
        const snapshot = await mustGetSnapshot(tx, ctx, id, "update");
        const volume = await getVolumeElevated(tx, snapshot.volumeId);
        if (!volume?.host) {
          throw new CinderblockError("FAILED_PRECONDITION", `snapshot ${id} has no backend to delete it from`);
        }
        assertNoConflict("snapshot.delete", `snapshot ${id}`, await getVolumeActivity(tx, snapshot.volumeId), id);
        const from = (force ? SNAPSHOT_OPERATIONS.forceDelete : SNAPSHOT_OPERATIONS.delete).start.from;
        return startSnapshotDelete(tx, ctx, snapshot, from, volume.host);
      });
      deps.onCommitted?.();
      return deleting;
    },

    async resetSnapshotStatus(ctx, rawId, status) {
      requireAdmin(ctx, "reset status");
      const id = validateId("id", rawId);
      if (!SNAPSHOT_RESETTABLE.includes(status)) {
        throw new CinderblockError("INVALID_ARGUMENT", `status: must be one of ${SNAPSHOT_RESETTABLE.join(", ")}`);
      }
      const row = await transaction(db, async (tx) => {
        const before = await getSnapshotElevated(tx, id);
        if (!before) throw new CinderblockError("NOT_FOUND", `snapshot ${id} not found`);
        // Cinder's admin action names this event after the collection: "snapshots.reset_status".
        return announced(tx, "snapshot", "snapshots.reset_status", before, async () => {
          const after = await resetSnapshotStatus(tx, id, status);
          if (!after) throw new CinderblockError("NOT_FOUND", `snapshot ${id} not found`);
          return after;
        });
      });
      deps.onCommitted?.();
      return row;
    },

    async updateVolume(ctx, rawId, raw) {
      const id = validateId("id", rawId);
      const input = validateUpdate(raw);
      const updated = await transaction(db, async (tx) => {
        const before = await mustGetVolume(tx, ctx, id);
        return announced(tx, "volume", "volume.update", before, async () => {
          await updateNameDescription(tx, "volumes", ctx.projectId, id, input);
          return mustGetVolume(tx, ctx, id);
        });
      });
      deps.onCommitted?.();
      return updated;
    },

    async deleteVolume(ctx, rawId, cascade) {
      const id = validateId("id", rawId);
      const { from } = VOLUME_OPERATIONS.delete.start;
      const result = await transaction(db, async (tx) => {
        // NOTE: the volume, then its snapshots, locked FOR UPDATE: a snapshot create share-locks the
        // volume and a clone its snapshot, so neither can start (or be half-recorded) while the
        // cascade decides which snapshots it takes.
        const volume = await mustGetVolume(tx, ctx, id, "update");
        if (!(from as readonly VolumeStatus[]).includes(volume.status)) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `volume ${id} status must be ${statusList(from)} to delete, but is ${volume.status}`,
          );
        }
        const snapshots = await listSnapshotsOfVolume(tx, id, { lock: true });
        if (snapshots.length > 0 && !cascade) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `volume ${id} has ${snapshots.length} snapshot(s); delete them first or set cascade`,
          );
        }
        assertNoConflict("volume.delete", `volume ${id}`, await getVolumeActivity(tx, id));
        const deleting = await updateVolumeStatus(tx, id, from, "deleting", { statusReason: "" });
        if (!deleting) throw new CinderblockError("FAILED_PRECONDITION", `volume ${id} changed status; try again`);
        if (!volume.host) {
          // Never placed on a backend (scheduling failed): nothing to remove from storage.
          await releaseQuota(tx, volume.projectId, volumeQuotaHeld(volume));
          return (await markVolumeDeleted(tx, id)) ?? deleting;
        }
        const operationId = randomUUID();
        // Each cascaded snapshot has a delete operation of its own (the reconciler can drive it
        // alone); the volume's cast carries them, and the host derives their ids from the volume's.
        for (const s of snapshots) {
          await startSnapshotDelete(
            tx,
            ctx,
            s,
            SNAPSHOT_OPERATIONS.delete.start.from,
            undefined,
            cascadedDeleteId(operationId, s.id),
          );
        }
        await insertOperation(tx, {
          id: operationId,
          kind: "delete_volume",
          resourceId: id,
          projectId: volume.projectId,
          timeoutSeconds: deps.operationTimeoutSeconds,
        });
        await deps.scheduler.deleteVolume(
          tx,
          volume.host,
          { operationId, context: castContext(ctx), volumeId: id, cascade: snapshots.length > 0 },
          1,
        );
        return deleting;
      });
      deps.onCommitted?.();
      return result;
    },

    async extendVolume(ctx, rawId, newSizeGb) {
      const id = validateId("id", rawId);
      const result = await transaction(db, async (tx) => {
        const volume = await mustGetVolume(tx, ctx, id, "update");
        validateNewSize(newSizeGb, volume.sizeGb);
        const { from, to } = VOLUME_OPERATIONS.extend.start;
        if (!(from as readonly VolumeStatus[]).includes(volume.status) || !volume.host) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `volume ${id} status must be ${statusList(from)} to extend, but is ${volume.status}`,
          );
        }
        assertNoConflict("volume.extend", `volume ${id}`, await getVolumeActivity(tx, id));
        await reserveOrThrow(
          tx,
          volume.projectId,
          extendQuotaDeltas(deps.quota, newSizeGb - volume.sizeGb, volume.volumeType),
        );
        const extending = await updateVolumeStatus(tx, id, from, to, { statusReason: "" });
        if (!extending) throw new CinderblockError("FAILED_PRECONDITION", `volume ${id} changed status; try again`);
        const operationId = randomUUID();
        await insertOperation(tx, {
          id: operationId,
          kind: "extend_volume",
          resourceId: id,
          projectId: volume.projectId,
          timeoutSeconds: deps.operationTimeoutSeconds,
          detail: { newSizeGb },
        });
        await deps.scheduler.extendVolume(
          tx,
          volume.host,
          { operationId, context: castContext(ctx), volumeId: id, newSizeGb },
          1,
        );
        return extending;
      });
      deps.onCommitted?.();
      return result;
    },

    async revertToSnapshot(ctx, rawVolumeId, rawSnapshotId) {
      const volumeId = validateId("volume_id", rawVolumeId);
      const snapshotId = validateId("snapshot_id", rawSnapshotId);
      const result = await transaction(db, async (tx) => {
        const volume = await mustGetVolume(tx, ctx, volumeId, "update");
        const snapshot = await mustGetSnapshot(tx, ctx, snapshotId);
        if (snapshot.volumeId !== volumeId) {
          throw new CinderblockError(
            "INVALID_ARGUMENT",
            `snapshot_id: snapshot ${snapshotId} is not of volume ${volumeId}`,
          );
        }
        if (volume.status !== "available" || !volume.host) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `volume ${volumeId} status must be available to revert, but is ${volume.status}`,
          );
        }
        if (snapshot.status !== "available") {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `snapshot ${snapshotId} status must be available to revert to it, but is ${snapshot.status}`,
          );
        }
        assertNoConflict("volume.revert", `volume ${volumeId}`, await getVolumeActivity(tx, volumeId));
        const latest = await getLatestSnapshotOfVolume(tx, volumeId);
        if (latest?.id !== snapshotId) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `volume ${volumeId} can only revert to its latest snapshot, ${latest?.id ?? "none"}`,
          );
        }
        const revert = VOLUME_OPERATIONS.revert.start;
        const restore = SNAPSHOT_OPERATIONS.revert.start;
        const reverting = await updateVolumeStatus(tx, volumeId, revert.from, revert.to, { statusReason: "" });
        const restoring = await updateSnapshotStatus(tx, snapshotId, restore.from, restore.to);
        if (!reverting || !restoring) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `volume ${volumeId} or its snapshot changed status; try again`,
          );
        }
        const operationId = randomUUID();
        await insertOperation(tx, {
          id: operationId,
          kind: "revert_volume",
          resourceId: volumeId,
          projectId: volume.projectId,
          timeoutSeconds: deps.operationTimeoutSeconds,
        });
        await deps.scheduler.revertToSnapshot(
          tx,
          volume.host,
          { operationId, context: castContext(ctx), volumeId, snapshotId },
          1,
        );
        return reverting;
      });
      deps.onCommitted?.();
      return result;
    },

    async resetVolumeStatus(ctx, rawId, status) {
      requireAdmin(ctx, "reset status");
      const id = validateId("id", rawId);
      if (!VOLUME_RESETTABLE.includes(status)) {
        throw new CinderblockError("INVALID_ARGUMENT", `status: must be one of ${VOLUME_RESETTABLE.join(", ")}`);
      }
      const row = await transaction(db, async (tx) => {
        const before = await getVolumeElevated(tx, id);
        if (!before) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
        return announced(tx, "volume", "volumes.reset_status", before, async () => {
          const after = await resetVolumeStatus(tx, id, status);
          if (!after) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
          return after;
        });
      });
      deps.onCommitted?.();
      return row;
    },

    async setMetadata(ctx, table, rawId, raw, replace) {
      const id = validateId("id", rawId);
      const metadata = validateMetadata(raw);
      const result = await transaction(db, (tx) =>
        metadataChange(tx, ctx, table, id, "update_metadata", async () => {
          const after = await setMetadata(tx, table, ctx.projectId, id, metadata, replace);
          if (after) assertMetadataBound(after);
          return after !== undefined;
        }),
      );
      deps.onCommitted?.();
      return result;
    },

    async deleteMetadata(ctx, table, rawId, rawKey) {
      const id = validateId("id", rawId);
      const key = validateMetadataKey(rawKey);
      const result = await transaction(db, (tx) =>
        metadataChange(tx, ctx, table, id, "delete_metadata", async () => {
          if (await deleteMetadataKey(tx, table, ctx.projectId, id, key)) return true;
          throw new CinderblockError(
            "NOT_FOUND",
            `${table.slice(0, -1)} ${id} has no metadata key ${JSON.stringify(key)}`,
          );
        }),
      );
      deps.onCommitted?.();
      return result;
    },

    async getQuotas(ctx, rawProjectId) {
      const projectId = rawProjectId || ctx.projectId;
      if (projectId !== ctx.projectId) requireAdmin(ctx, "reading another project's quotas");
      return { projectId, quotas: await quotas(projectId) };
    },

    async updateQuotas(ctx, rawProjectId, limits) {
      requireAdmin(ctx, "updating quotas");
      const projectId = rawProjectId || ctx.projectId;
      const current = await quotas(projectId);
      for (const [resource, limit] of Object.entries(limits)) {
        const known =
          current.find((q) => q.resource === resource) ??
          (TYPED_RESOURCE.test(resource) ? { resource, limit: -1, inUse: 0 } : undefined);
        if (!known) {
          throw new CinderblockError(
            "INVALID_ARGUMENT",
            `limits.${resource}: unknown resource (${QUOTA_RESOURCES.join(", ")}, or <resource>_<volume type>)`,
          );
        }
        if (!Number.isInteger(limit) || limit < -1) {
          throw new CinderblockError("INVALID_ARGUMENT", `limits.${resource}: must be -1 (unlimited) or more`);
        }
        if (limit >= 0 && limit < known.inUse) {
          throw new CinderblockError(
            "INVALID_ARGUMENT",
            `limits.${resource}: must be at least ${known.inUse}, the amount in use`,
          );
        }
      }
      await transaction(db, async (tx) => {
        for (const [resource, limit] of Object.entries(limits)) await setQuotaLimit(tx, projectId, resource, limit);
      });
      return { projectId, quotas: await quotas(projectId) };
    },

    async *watchEvents(ctx, filter, signal) {
      if (filter.allProjects) requireAdmin(ctx, "all_projects");
      if (filter.resourceId) validateId("resource_id", filter.resourceId);
      const subscription = deps.events.subscribe();
      const onAbort = () => subscription.close();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        for await (const event of subscription) {
          const payload = event.payload ?? {};
          if (!filter.allProjects && payload.tenant_id !== ctx.projectId) continue;
          if (filter.eventTypes.length > 0 && !filter.eventTypes.includes(event.eventType)) continue;
          if (
            filter.resourceId &&
            payload.volume_id !== filter.resourceId &&
            payload.snapshot_id !== filter.resourceId &&
            payload.group_snapshot_id !== filter.resourceId
          ) {
            continue;
          }
          yield event;
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
        subscription.close();
      }
    },
  };
}
