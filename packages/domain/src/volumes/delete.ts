import { randomUUID } from "node:crypto";
import {
  type Executor,
  getVolumeActivity,
  insertOperation,
  listAttachmentsOfVolume,
  listSnapshotsOfVolume,
  markVolumeDeleted,
  pendingOperationsOf,
  releaseQuota,
  transaction,
  updateVolumeStatus,
  type VolumeRow,
  type VolumeStatus,
} from "@cinderblock/db";
import { assertBackendNotFrozen } from "../backends/frozen.js";
import { castContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { volumeQuotaHeld } from "../quota.js";
import { mustGetVolume } from "../rows.js";
import { startSnapshotDelete } from "../snapshots/delete.js";
import {
  assertNoConflict,
  cascadedDeleteId,
  isMigrating,
  SNAPSHOT_OPERATIONS,
  statusList,
  VOLUME_OPERATIONS,
} from "../state-machine.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId } from "../validation.js";

/**
 * Cinder's `volume/api.py` `delete` (`cascade`: its snapshots too): the volume goes `deleting`
 * and its delete is cast to its host; one never placed on a backend is deleted at once. `force`
 * (an admin's os-force_delete, the policy decides who): from any status but attached, migrating
 * or deleting, when no attachment and no operation in flight remains (Cinder checks the first
 * three; the last keeps an in-flight create or extend from finishing on a deleted volume).
 */
export function deleteVolumeUseCase(
  deps: Pick<ApiDependencies, "db" | "scheduler" | "operationTimeoutSeconds" | "onCommitted" | "changes">,
): ApiUseCases["deleteVolume"] {
  return async (ctx, rawId, cascade, force = false) => {
    const id = validateId("id", rawId);
    let cascaded: string[] = [];
    const { from, to } = (force ? VOLUME_OPERATIONS.forceDelete : VOLUME_OPERATIONS.delete).start;
    const result = await transaction(deps.db, async (tx) => {
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
      if (force) await assertNothingInFlight(tx, volume);
      await assertBackendNotFrozen(tx, volume.host, `volume ${id}`);
      const snapshots = await listSnapshotsOfVolume(tx, id, { lock: true });
      if (snapshots.length > 0 && !cascade) {
        throw new CinderblockError(
          "FAILED_PRECONDITION",
          `volume ${id} has ${snapshots.length} snapshot(s); delete them first or set cascade`,
        );
      }
      assertNoConflict("volume.delete", `volume ${id}`, await getVolumeActivity(tx, id));
      const deleting = await updateVolumeStatus(tx, id, from, to, { statusReason: "" });
      if (!deleting) throw new CinderblockError("FAILED_PRECONDITION", `volume ${id} changed status; try again`);
      if (!volume.host) {
        // Never placed on a backend (scheduling failed): nothing to remove from storage.
        await releaseQuota(tx, volume.projectId, volumeQuotaHeld(volume));
        return (await markVolumeDeleted(tx, id)) ?? deleting;
      }
      const operationId = randomUUID();
      // Each cascaded snapshot has a delete operation of its own (the reconciler can drive it
      // alone); the volume's cast carries them, and the host derives their ids from the volume's.
      cascaded = snapshots.map((s) => s.id);
      for (const s of snapshots) {
        await startSnapshotDelete(
          deps,
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
    for (const snapshotId of cascaded) deps.changes.publish("snapshot", snapshotId);
    return result;
  };
}

/** A force delete's checks beyond the status: not migrating, no attachment, no operation in flight. */
async function assertNothingInFlight(tx: Executor, volume: VolumeRow): Promise<void> {
  if (isMigrating(volume)) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `volume ${volume.id} is migrating (migration_status ${volume.migrationStatus}) and cannot be force deleted`,
    );
  }
  const attachments = await listAttachmentsOfVolume(tx, volume.id);
  if (attachments.length > 0) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `volume ${volume.id} has ${attachments.length} attachment(s); detach it before deleting it`,
    );
  }
  const [kind] = await pendingOperationsOf(tx, volume.id);
  if (kind) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `volume ${volume.id} has an operation in flight (${kind}); wait for it to finish or for the reconciler to fail it`,
    );
  }
}
