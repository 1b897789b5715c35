import { type Executor, getVolumeTypeBy, releaseQuota, updateVolumeStatus, type VolumeRow } from "@cinderblock/db";
import { retypeQuotaDeltas } from "../quota.js";
import { VOLUME_OPERATIONS } from "../state-machine.js";

/**
 * How a retype ends, the same wherever it ends (the volume host, the scheduler, the reconciler):
 * the volume leaves `retyping` for the status it came from, and exactly one of the two per-type
 * reservations is given back, in the caller's transaction.
 */

/** Where the volume goes when a retype is done. */
export interface RetypeDone {
  previousStatus: "available" | "in-use";
  newType: { id: string; name: string };
  /** The name the old type's quota usage is kept under (the row's volume_type when the retype began). */
  oldTypeName: string;
  /** Set for a migration: the volume's new backend and its pool, and migration_status `success`. */
  host?: string;
  pool?: string;
}

/**
 * The retype is done: the volume (still `retyping`) takes the new type (and host), goes back to
 * its previous status, and the old type's `volumes_<type>`/`gigabytes_<type>` are released.
 * Undefined when the volume had already left `retyping` (someone else ended it): nothing changes.
 */
export async function finishRetype(tx: Executor, volumeId: string, done: RetypeDone): Promise<VolumeRow | undefined> {
  const { from } = VOLUME_OPERATIONS.retype.done;
  const row = await updateVolumeStatus(tx, volumeId, from, done.previousStatus, {
    volumeType: done.newType.name,
    volumeTypeId: done.newType.id,
    statusReason: "",
    ...(done.host && { host: done.host, pool: done.pool ?? null, migrationStatus: "success" }),
  });
  if (!row) return undefined;
  await releaseQuota(tx, row.projectId, retypeQuotaDeltas(row.sizeGb, done.oldTypeName));
  return row;
}

/** Why and how a retype failed. */
export interface RetypeFailed {
  previousStatus: "available" | "in-use";
  /** The new type (its current name keys the reservation to give back; `name` when it is gone). */
  newType: { id: string; name: string };
  reason: string;
  detail: string;
  /** A migration that failed: migration_status `error`. */
  migrated?: boolean;
}

/**
 * The retype failed: the volume (still `retyping`) goes back to its previous status with its old
 * type and the reason, and the new type's reservation is released. Undefined when the volume had
 * already left `retyping`: nothing changes.
 */
export async function failRetype(tx: Executor, volumeId: string, failed: RetypeFailed): Promise<VolumeRow | undefined> {
  const { from } = VOLUME_OPERATIONS.retype.failed;
  const row = await updateVolumeStatus(tx, volumeId, from, failed.previousStatus, {
    statusReason: failed.reason,
    statusDetail: failed.detail,
    ...(failed.migrated && { migrationStatus: "error" }),
  });
  if (!row) return undefined;
  // NOTE: a rename of the type meanwhile moved the reservation to its new name.
  const current = (await getVolumeTypeBy(tx, { id: failed.newType.id }))?.name ?? failed.newType.name;
  await releaseQuota(tx, row.projectId, retypeQuotaDeltas(row.sizeGb, current));
  return row;
}
