import { getVolumeElevated, resetVolumeStatus, transaction, type VolumeStatus } from "@cinderblock/db";
import { CinderblockError } from "../errors.js";
import { announced } from "../rows.js";
import { VOLUME_STATUSES } from "../state-machine.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId } from "../validation.js";

/** Statuses an admin may reset a volume to (not `deleted`: that is what a delete does). */
const VOLUME_RESETTABLE: readonly VolumeStatus[] = VOLUME_STATUSES.filter((x) => x !== "deleted");

/**
 * Cinder's `api/contrib/admin_actions.py` `VolumeAdminController._reset_status` (admin only):
 * sets any volume's status without a state check, between `volumes.reset_status.start` and `.end`.
 */
export function resetVolumeStatusUseCase(
  deps: Pick<ApiDependencies, "db" | "notifications" | "onCommitted">,
): ApiUseCases["resetVolumeStatus"] {
  return async (_ctx, rawId, status) => {
    const id = validateId("id", rawId);
    if (!VOLUME_RESETTABLE.includes(status)) {
      throw new CinderblockError("INVALID_ARGUMENT", `status: must be one of ${VOLUME_RESETTABLE.join(", ")}`);
    }
    const row = await transaction(deps.db, async (tx) => {
      const before = await getVolumeElevated(tx, id);
      if (!before) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
      return announced(deps.notifications, tx, "volume", "volumes.reset_status", before, async () => {
        const after = await resetVolumeStatus(tx, id, status);
        if (!after) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
        return after;
      });
    });
    deps.onCommitted?.();
    return row;
  };
}
