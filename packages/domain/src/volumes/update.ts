import { setVolumeBootable, transaction, updateNameDescription } from "@cinderblock/db";
import { announced, mustGetVolume } from "../rows.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId, validateUpdate } from "../validation.js";

/**
 * Cinder's `volume/api.py` `update`: a new name or description, or `bootable` (os-set_bootable),
 * between `volume.update.start` and `.end`.
 */
export function updateVolumeUseCase(
  deps: Pick<ApiDependencies, "db" | "notifications" | "onCommitted">,
): ApiUseCases["updateVolume"] {
  return async (ctx, rawId, raw) => {
    const id = validateId("id", rawId);
    const { bootable, ...fields } = raw;
    const input = validateUpdate(fields);
    const updated = await transaction(deps.db, async (tx) => {
      const before = await mustGetVolume(tx, ctx, id);
      return announced(deps.notifications, tx, "volume", "volume.update", before, async () => {
        await updateNameDescription(tx, "volumes", ctx.projectId, id, input);
        if (bootable !== undefined) await setVolumeBootable(tx, ctx.projectId, id, bootable);
        return mustGetVolume(tx, ctx, id);
      });
    });
    deps.onCommitted?.();
    return updated;
  };
}
