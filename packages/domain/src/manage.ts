import { randomUUID } from "node:crypto";
import {
  type Db,
  finishOperation,
  getService,
  getSnapshot,
  getVolume,
  getVolumeElevated,
  insertOperation,
  insertSnapshot,
  listSnapshotIdsOnBackend,
  markSnapshotDeleted,
  releaseQuota,
  type SnapshotRow,
  transaction,
  updateSnapshotStatus,
} from "@cinderblock/db";
import type { RequestContext } from "./context.js";
import { CinderblockError, hostCallError, hostCallReason } from "./errors.js";
import type { Announcer, ChangeFeed, HostManageable, VolumeHostCalls } from "./ports.js";
import { type QuotaDefaults, reserveOrThrow, snapshotQuotaDeltas, snapshotQuotaHeld } from "./quota.js";
import { SNAPSHOT_OPERATIONS } from "./state-machine.js";
import { snapshotUsage } from "./usage.js";
import { validateId, validateMetadata } from "./validation.js";

/** What manage-existing needs. */
export interface ManageDependencies {
  db: Db;
  hosts: VolumeHostCalls;
  notifications: Announcer;
  quota: QuotaDefaults;
  serviceDownTimeSeconds: number;
  operationTimeoutSeconds: number;
  onCommitted?(): void;
  /** Watchers of a snapshot are told after each commit that changed it. */
  changes: ChangeFeed;
}

/** A ManageSnapshot request. */
export interface ManageInput {
  volumeId: string;
  reference: string;
  name: string;
  description: string;
  metadata: Record<string, string>;
}

/** Cinder's manage-existing for snapshots (admin only). */
export interface ManageUseCases {
  listManageableSnapshots(ctx: RequestContext, host: string): Promise<HostManageable[]>;
  manageSnapshot(ctx: RequestContext, input: ManageInput): Promise<SnapshotRow>;
  unmanageSnapshot(ctx: RequestContext, id: string): Promise<void>;
}

/** Builds manage, unmanage and the listing of manageable snapshots. */
export function createManageUseCases(deps: ManageDependencies): ManageUseCases {
  const { db } = deps;

  async function address(host: string): Promise<string> {
    const service = await getService(db, host, deps.serviceDownTimeSeconds);
    if (!service) throw new CinderblockError("NOT_FOUND", `backend ${host} not found`);
    if (!service.up || !service.grpcAddress)
      throw new CinderblockError("FAILED_PRECONDITION", `backend ${host} is down`);
    return service.grpcAddress;
  }

  async function manageable(ctx: RequestContext, host: string): Promise<HostManageable[]> {
    const hostAddress = await address(host);
    const owned = await listSnapshotIdsOnBackend(db, host);
    try {
      return await deps.hosts.listManageableSnapshots(hostAddress, ctx, host, owned);
    } catch (error) {
      throw hostCallError(error, `backend ${host} did not answer; try again`);
    }
  }

  return {
    async listManageableSnapshots(ctx, host) {
      if (!/^[A-Za-z0-9_-]+@[A-Za-z0-9_-]+$/.test(host)) {
        throw new CinderblockError("INVALID_ARGUMENT", "host: must be <host>@<backend>");
      }
      return manageable(ctx, host);
    },

    async manageSnapshot(ctx, input) {
      const volumeId = validateId("volume_id", input.volumeId);
      const metadata = validateMetadata(input.metadata);
      if (input.name.length > 255 || input.description.length > 255) {
        throw new CinderblockError("INVALID_ARGUMENT", "name, description: must be at most 255 characters");
      }
      const volume = await getVolume(db, ctx.projectId, volumeId);
      if (!volume?.host) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
      // The size comes from the backend before anything is written, so the quota check is exact.
      const found = (await manageable(ctx, volume.host)).find((m) => m.reference === input.reference);
      if (!found) {
        throw new CinderblockError(
          "NOT_FOUND",
          `reference: ${JSON.stringify(input.reference)} is not on ${volume.host}`,
        );
      }
      if (!found.safeToManage) {
        throw new CinderblockError(
          "FAILED_PRECONDITION",
          `reference: ${input.reference} is not safe to manage: ${found.reasonNotSafe}`,
        );
      }
      const id = randomUUID();
      const operationId = randomUUID();
      await transaction(db, async (tx) => {
        await reserveOrThrow(tx, ctx.projectId, snapshotQuotaDeltas(deps.quota, found.sizeGb, volume.volumeType));
        const row = await insertSnapshot(tx, {
          id,
          projectId: ctx.projectId,
          userId: ctx.userId,
          volumeId,
          name: input.name || `managed ${input.reference}`.slice(0, 255),
          description: input.description,
          status: "creating",
          progress: "0%",
          volumeSizeGb: found.sizeGb,
          volumeType: volume.volumeType,
          volumeTypeId: volume.volumeTypeId,
          encryptionKeyId: volume.encryptionKeyId,
          metadata,
        });
        // Should this process die before the backend answers, the reconciler gives the row up.
        await insertOperation(tx, {
          id: operationId,
          kind: "manage_snapshot",
          resourceId: id,
          projectId: ctx.projectId,
          timeoutSeconds: deps.operationTimeoutSeconds,
        });
        await deps.notifications.announce(tx, "INFO", "snapshot.manage_existing.start", snapshotUsage(row, volume));
      });
      deps.onCommitted?.();
      try {
        await deps.hosts.manageSnapshot(await address(volume.host), ctx, id, volumeId, input.reference);
      } catch (raw) {
        const error = hostCallError(raw, `backend ${volume.host} did not answer; try again`);
        // Nothing was taken over: the row and its quota go again.
        await transaction(db, async (tx) => {
          const { from, to } = SNAPSHOT_OPERATIONS.manage.failed;
          await updateSnapshotStatus(tx, id, from, to);
          const gone = await markSnapshotDeleted(tx, id);
          await finishOperation(tx, operationId, "failed", String(error));
          if (!gone) return;
          await releaseQuota(tx, ctx.projectId, snapshotQuotaHeld(gone));
          await deps.notifications.announce(tx, "ERROR", "snapshot.manage_existing.error", {
            ...snapshotUsage(gone, volume),
            reason: hostCallReason(error),
          });
        });
        deps.onCommitted?.();
        deps.changes.publish("snapshot", id);
        throw error;
      }
      const row = await transaction(db, async (tx) => {
        const { from, to } = SNAPSHOT_OPERATIONS.manage.done;
        const done = await updateSnapshotStatus(tx, id, from, to, { progress: "100%" });
        if (!done) throw new CinderblockError("FAILED_PRECONDITION", `snapshot ${id} changed status meanwhile`);
        await finishOperation(tx, operationId, "done");
        await deps.notifications.announce(tx, "INFO", "snapshot.manage_existing.end", snapshotUsage(done, volume));
        return done;
      });
      deps.onCommitted?.();
      deps.changes.publish("snapshot", id);
      return row;
    },

    async unmanageSnapshot(ctx, rawId) {
      const id = validateId("id", rawId);
      const snapshot = await getSnapshot(db, ctx.projectId, id);
      if (!snapshot) throw new CinderblockError("NOT_FOUND", `snapshot ${id} not found`);
      const volume = await getVolumeElevated(db, snapshot.volumeId);
      if (!volume?.host) throw new CinderblockError("FAILED_PRECONDITION", `snapshot ${id} has no backend`);
      const operationId = randomUUID();
      await transaction(db, async (tx) => {
        const { from, to } = SNAPSHOT_OPERATIONS.unmanage.start;
        const unmanaging = await updateSnapshotStatus(tx, id, from, to);
        if (!unmanaging) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `snapshot ${id} status must be available or error to unmanage, but is ${snapshot.status}`,
          );
        }
        // Should this process die before the backend answers, the reconciler puts the status back.
        await insertOperation(tx, {
          id: operationId,
          kind: "unmanage_snapshot",
          resourceId: id,
          projectId: snapshot.projectId,
          timeoutSeconds: deps.operationTimeoutSeconds,
          detail: { previousStatus: snapshot.status },
        });
        await deps.notifications.announce(tx, "INFO", "snapshot.unmanage.start", snapshotUsage(unmanaging, volume));
      });
      deps.onCommitted?.();
      deps.changes.publish("snapshot", id);
      try {
        await deps.hosts.unmanageSnapshot(await address(volume.host), ctx, id, volume.id);
      } catch (raw) {
        const error = hostCallError(raw, `backend ${volume.host} did not answer; try again`);
        await transaction(db, async (tx) => {
          await updateSnapshotStatus(tx, id, SNAPSHOT_OPERATIONS.unmanage.failed.from, snapshot.status);
          await finishOperation(tx, operationId, "failed", String(error));
        });
        deps.changes.publish("snapshot", id);
        throw error;
      }
      // The storage stays; our row and its quota go.
      await transaction(db, async (tx) => {
        const row = await markSnapshotDeleted(tx, id, "unmanaging");
        await finishOperation(tx, operationId, "done");
        if (row) {
          await releaseQuota(tx, row.projectId, snapshotQuotaHeld(row));
          await deps.notifications.announce(tx, "INFO", "snapshot.unmanage.end", snapshotUsage(row, volume));
        }
      });
      deps.onCommitted?.();
      deps.changes.publish("snapshot", id);
    },
  };
}
