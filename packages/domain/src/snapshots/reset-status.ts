import { getSnapshotElevated, resetSnapshotStatus, type SnapshotStatus, transaction } from "@cinderblock/db";
import { CinderblockError } from "../errors.js";
import { announced } from "../rows.js";
import { SNAPSHOT_STATUSES } from "../state-machine.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId } from "../validation.js";

/** Statuses an admin may reset a snapshot to (not `deleted`: that is what a delete does). */
const SNAPSHOT_RESETTABLE: readonly SnapshotStatus[] = SNAPSHOT_STATUSES.filter((x) => x !== "deleted");

/**
 * Cinder's `api/contrib/admin_actions.py` `SnapshotAdminController._reset_status` (admin only):
 * sets any snapshot's status without a state check, between `snapshots.reset_status.start` and `.end`.
 */
export function resetSnapshotStatusUseCase(
  deps: Pick<ApiDependencies, "db" | "notifications" | "onCommitted" | "changes">,
): ApiUseCases["resetSnapshotStatus"] {
  return async (_ctx, rawId, status) => {
    const id = validateId("id", rawId);
    if (!SNAPSHOT_RESETTABLE.includes(status)) {
      throw new CinderblockError("INVALID_ARGUMENT", `status: must be one of ${SNAPSHOT_RESETTABLE.join(", ")}`);
    }
    const row = await transaction(deps.db, async (tx) => {
      const before = await getSnapshotElevated(tx, id);
      if (!before) throw new CinderblockError("NOT_FOUND", `snapshot ${id} not found`);
      // Cinder's admin action names this event after the collection: "snapshots.reset_status".
      return announced(deps.notifications, tx, "snapshot", "snapshots.reset_status", before, async () => {
        const after = await resetSnapshotStatus(tx, id, status);
        if (!after) throw new CinderblockError("NOT_FOUND", `snapshot ${id} not found`);
        return after;
      });
    });
    deps.onCommitted?.();
    deps.changes.publish("snapshot", id);
    return row;
  };
}
