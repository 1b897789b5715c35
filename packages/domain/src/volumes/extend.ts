import { randomUUID } from "node:crypto";
import {
  getVolumeActivity,
  insertOperation,
  transaction,
  updateVolumeStatus,
  type VolumeStatus,
} from "@cinderblock/db";
import { castContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { extendQuotaDeltas, reserveOrThrow } from "../quota.js";
import { mustGetVolume } from "../rows.js";
import { assertNoConflict, statusList, VOLUME_OPERATIONS } from "../state-machine.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId, validateNewSize } from "../validation.js";

/**
 * Cinder's `volume/api.py` `extend` (and, since 3.42, an attached volume's `extend_attached_volume`):
 * the added size's quota is reserved, the volume goes `extending` from `available` or `in-use`
 * and the extend is cast to its host, which puts it back where it was and tells the attached
 * instances' compute agents.
 */
export function extendVolumeUseCase(
  deps: Pick<ApiDependencies, "db" | "scheduler" | "quota" | "operationTimeoutSeconds" | "onCommitted">,
): ApiUseCases["extendVolume"] {
  return async (ctx, rawId, newSizeGb) => {
    const id = validateId("id", rawId);
    const result = await transaction(deps.db, async (tx) => {
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
  };
}
