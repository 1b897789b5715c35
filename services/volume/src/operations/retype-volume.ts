import {
  type Db,
  finishOperation,
  getQosSpecsOfType,
  getVolumeElevated,
  getVolumeTypeBy,
  type VolumeTypeRow,
} from "@cinderblock/db";
import { failRetype, finishRetype, type RetypeFailed, volumeUsage } from "@cinderblock/domain";
import type { VolumeRetypeVolume } from "@cinderblock/proto";
import type { VolumeTypeDiff } from "../drivers/driver.js";
import type { Delivery, Failure, OperationContext } from "./context.js";

type Pair = readonly [string | undefined, string | undefined];

/** What differs between two maps, as [old, new] per key. */
function mapDiff(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): Record<string, Pair> {
  const out: Record<string, Pair> = {};
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (a[key] !== b[key]) out[key] = [a[key], b[key]];
  }
  return out;
}

/** Cinder's `volume_types.volume_types_diff`: the extra specs and QoS specs that differ. */
async function typeDiff(db: Db, oldType: VolumeTypeRow | undefined, newType: VolumeTypeRow): Promise<VolumeTypeDiff> {
  const [oldQos, newQos] = await Promise.all([
    oldType ? getQosSpecsOfType(db, oldType.id) : undefined,
    getQosSpecsOfType(db, newType.id),
  ]);
  return {
    extraSpecs: mapDiff(oldType?.extraSpecs ?? {}, newType.extraSpecs),
    qosSpecs: mapDiff(oldQos?.specs ?? {}, newQos?.specs ?? {}),
  };
}

/** The status a retype goes back to. */
export function previousStatusOf(cast: { previousStatus: string }): "available" | "in-use" {
  return cast.previousStatus === "in-use" ? "in-use" : "available";
}

/**
 * Records a retype (in place or by migration) that failed: the volume back where it was with the
 * reason and detail, the new type's reservation released, its operation failed and
 * `volume.retype.error` sent, in one transaction.
 */
export function recordRetypeFailure(
  ctx: OperationContext,
  volumeId: string,
  operationId: string,
  failed: RetypeFailed,
): Promise<void> {
  return ctx.record(async (tx, outcome) => {
    const [row] = await Promise.all([
      failRetype(tx, volumeId, failed),
      finishOperation(tx, operationId, "failed", failed.detail),
    ]);
    if (!row) return;
    await outcome.announce("ERROR", "volume.retype.error", { ...volumeUsage(row), reason: failed.reason }, operationId);
    outcome.changed("volume", volumeId);
  });
}

/**
 * Cinder's `VolumeManager.retype`, in place: the driver makes the volume what the new type asks of
 * its backend (file, LVM and RBD have nothing to change); the volume goes back to where it was
 * with the new type, the old type's quota is released, `volume.retype` is sent. On failure (or a
 * driver that cannot do it in place) the volume goes back with its old type and the reason, and
 * the new type's reservation is released.
 */
export function retypeVolumeOperation(
  ctx: OperationContext,
): (cast: VolumeRetypeVolume, delivery: Delivery) => Promise<void> {
  return async (cast, delivery) => {
    const volume = await getVolumeElevated(ctx.db, cast.volumeId);
    if (volume?.status !== "retyping") {
      await finishOperation(ctx.db, cast.operationId, "done");
      return;
    }
    const previousStatus = previousStatusOf(cast);
    const ids = { volume_id: volume.id, operation_id: cast.operationId, new_type_id: cast.newTypeId };
    const [oldType, newType] = await Promise.all([
      volume.volumeTypeId ? getVolumeTypeBy(ctx.db, { id: volume.volumeTypeId }) : undefined,
      getVolumeTypeBy(ctx.db, { id: cast.newTypeId }),
    ]);
    let failure: Failure | undefined;
    if (!newType) {
      failure = { reason: "the new volume type was deleted", detail: `volume type ${cast.newTypeId} is gone` };
    } else {
      try {
        const diff = await typeDiff(ctx.db, oldType, newType);
        const handled = await ctx
          .driverFor(volume.host)
          .retype(
            { id: volume.id, sizeGb: volume.sizeGb },
            { id: newType.id, name: newType.name, extraSpecs: newType.extraSpecs },
            diff,
          );
        if (!handled) {
          failure = {
            reason: "the volume's backend cannot change it to the new type in place",
            detail: `the driver of ${volume.host} declined to retype the volume to ${newType.name}`,
          };
        }
      } catch (error) {
        failure = ctx.finalFailure(error, delivery, "retype", "the storage backend failed to retype the volume");
      }
    }
    if (failure || !newType) {
      const failed = failure ?? { reason: "", detail: "" };
      await recordRetypeFailure(ctx, volume.id, cast.operationId, {
        previousStatus,
        newType: { id: cast.newTypeId, name: newType?.name ?? "" },
        ...failed,
      });
      ctx.log({ ...ids, ...failed }, "volume retype failed", true);
      return;
    }
    await ctx.record(async (tx, outcome) => {
      const [row] = await Promise.all([
        finishRetype(tx, volume.id, {
          previousStatus,
          newType: { id: newType.id, name: newType.name },
          oldTypeName: volume.volumeType,
        }),
        finishOperation(tx, cast.operationId, "done"),
      ]);
      if (!row) return;
      await outcome.announce(
        "INFO",
        "volume.retype",
        { ...volumeUsage(row), old_volume_type: volume.volumeType, new_volume_type: newType.name },
        cast.operationId,
      );
      outcome.changed("volume", volume.id);
    });
    ctx.log(ids, "volume retyped");
  };
}
