import { transaction, updateNameDescription } from "@cinderblock/db";
import { announced, mustGetSnapshot } from "../rows.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId, validateUpdate } from "../validation.js";

/**
 * Cinder's `volume/api.py` `update_snapshot`: a new name or description, between
 * `snapshot.update.start` and `.end`.
 */
export function updateSnapshotUseCase(
  deps: Pick<ApiDependencies, "db" | "notifications" | "onCommitted" | "changes">,
): ApiUseCases["updateSnapshot"] {
  return async (ctx, rawId, raw) => {
    const id = validateId("id", rawId);
    const input = validateUpdate(raw);
    const updated = await transaction(deps.db, async (tx) => {
      const before = await mustGetSnapshot(tx, ctx, id);
      return announced(deps.notifications, tx, "snapshot", "snapshot.update", before, async () => {
        await updateNameDescription(tx, "snapshots", ctx.projectId, id, input);
        return mustGetSnapshot(tx, ctx, id);
      });
    });
    deps.onCommitted?.();
    deps.changes.publish("snapshot", id);
    return updated;
  };
}
