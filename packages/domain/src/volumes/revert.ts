import { randomUUID } from "node:crypto";
import {
  getLatestSnapshotOfVolume,
  getVolumeActivity,
  insertOperation,
  transaction,
  updateSnapshotStatus,
  updateVolumeStatus,
} from "@cinderblock/db";
import { castContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { mustGetSnapshot, mustGetVolume } from "../rows.js";
import { assertNoConflict, SNAPSHOT_OPERATIONS, VOLUME_OPERATIONS } from "../state-machine.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId } from "../validation.js";

/**
 * Cinder's `volume/api.py` `revert_to_snapshot`: an available volume goes `reverting` to its
 * latest snapshot, which goes `restoring`, and the revert is cast to the volume's host.
 */
export function revertToSnapshotUseCase(
  deps: Pick<ApiDependencies, "db" | "scheduler" | "operationTimeoutSeconds" | "onCommitted" | "changes">,
): ApiUseCases["revertToSnapshot"] {
  return async (ctx, rawVolumeId, rawSnapshotId) => {
    const volumeId = validateId("volume_id", rawVolumeId);
    const snapshotId = validateId("snapshot_id", rawSnapshotId);
    const result = await transaction(deps.db, async (tx) => {
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
      // Cinder's rule: the snapshot must be of the volume as it is now. A volume extended since
      // would keep its new size with the snapshot's bytes, which Cinder refuses (400) as well.
      if (snapshot.volumeSizeGb !== volume.sizeGb) {
        throw new CinderblockError(
          "FAILED_PRECONDITION",
          `volume ${volumeId} is ${volume.sizeGb} GiB but snapshot ${snapshotId} was taken at ${snapshot.volumeSizeGb} GiB: a volume extended after its snapshot cannot be reverted to it`,
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
    deps.changes.publish("snapshot", snapshotId);
    return result;
  };
}
