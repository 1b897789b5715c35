import { transaction, updateNameDescription } from "@cinderblock/db";
import { announced, mustGetVolume } from "../rows.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId, validateUpdate } from "../validation.js";

/**
 * Cinder's `volume/api.py` `update`: a new name or description, between `volume.update.start`
 * and `.end`.
 */
export function updateVolumeUseCase(
  deps: Pick<ApiDependencies, "db" | "notifications" | "onCommitted">,
): ApiUseCases["updateVolume"] {
  return async (ctx, rawId, raw) => {
    const id = validateId("id", rawId);
    const input = validateUpdate(raw);
    const updated = await transaction(deps.db, async (tx) => {
      const before = await mustGetVolume(tx, ctx, id);
      return announced(deps.notifications, tx, "volume", "volume.update", before, async () => {
        await updateNameDescription(tx, "volumes", ctx.projectId, id, input);
        return mustGetVolume(tx, ctx, id);
      });
    });
    deps.onCommitted?.();
    return updated;
  };
}
