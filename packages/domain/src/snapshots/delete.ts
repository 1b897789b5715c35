import { randomUUID } from "node:crypto";
import {
  type Executor,
  getVolumeActivity,
  getVolumeElevated,
  insertOperation,
  type SnapshotRow,
  type SnapshotStatus,
  transaction,
  updateSnapshotStatus,
} from "@cinderblock/db";
import { assertBackendNotFrozen } from "../backends/frozen.js";
import { castContext, type RequestContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { mustGetSnapshot } from "../rows.js";
import { assertNoConflict, SNAPSHOT_OPERATIONS, statusList } from "../state-machine.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId } from "../validation.js";

/**
 * Moves a snapshot to `deleting` and records its delete operation, in `tx`; casts it to `host`
 * unless it is part of a volume's cascade (the volume's cast carries it; the operation lets the
 * reconciler drive it on its own should the cascade not finish).
 */
export async function startSnapshotDelete(
  deps: Pick<ApiDependencies, "scheduler" | "operationTimeoutSeconds">,
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

/**
 * Cinder's `volume/api.py` `delete_snapshot` (`force` for an admin: from any status the state
 * machine allows): the snapshot goes `deleting` and its delete is cast to its volume's host.
 */
export function deleteSnapshotUseCase(
  deps: Pick<ApiDependencies, "db" | "scheduler" | "operationTimeoutSeconds" | "onCommitted" | "changes">,
): ApiUseCases["deleteSnapshot"] {
  return async (ctx, rawId, force) => {
    const id = validateId("id", rawId);
    const deleting = await transaction(deps.db, async (tx) => {
      // NOTE: locked FOR UPDATE first: a create-from-snapshot share-locks it, so one being
      // recorded is committed (and seen below) before this goes on.
      const snapshot = await mustGetSnapshot(tx, ctx, id, "update");
      const volume = await getVolumeElevated(tx, snapshot.volumeId);
      if (!volume?.host) {
        throw new CinderblockError("FAILED_PRECONDITION", `snapshot ${id} has no backend to delete it from`);
      }
      await assertBackendNotFrozen(tx, volume.host, `snapshot ${id}`);
      assertNoConflict("snapshot.delete", `snapshot ${id}`, await getVolumeActivity(tx, snapshot.volumeId), id);
      const from = (force ? SNAPSHOT_OPERATIONS.forceDelete : SNAPSHOT_OPERATIONS.delete).start.from;
      return startSnapshotDelete(deps, tx, ctx, snapshot, from, volume.host);
    });
    deps.onCommitted?.();
    deps.changes.publish("snapshot", id);
    return deleting;
  };
}
