import { type Executor, type QuotaDelta, type QuotaRefusal, reserveQuota } from "@cinderblock/db";
import { CinderblockError } from "./errors.js";

/** Default hard limits (Cinder's defaults; a negative value means unlimited). */
export interface QuotaDefaults {
  volumes: number;
  snapshots: number;
  gigabytes: number;
}

/** The deltas a new snapshot of a `sizeGb` volume takes. */
export function snapshotQuotaDeltas(defaults: QuotaDefaults, sizeGb: number): QuotaDelta[] {
  return [
    { resource: "snapshots", delta: 1, defaultLimit: defaults.snapshots },
    { resource: "gigabytes", delta: sizeGb, defaultLimit: defaults.gigabytes },
  ];
}

/** The deltas a new volume of `sizeGb` takes. */
export function volumeQuotaDeltas(defaults: QuotaDefaults, sizeGb: number): QuotaDelta[] {
  return [
    { resource: "volumes", delta: 1, defaultLimit: defaults.volumes },
    { resource: "gigabytes", delta: sizeGb, defaultLimit: defaults.gigabytes },
  ];
}

/**
 * Reserves quota inside the caller's transaction; throws RESOURCE_EXHAUSTED naming the quota
 * when a limit would be passed (the caller's transaction then rolls back, writing nothing).
 */
export async function reserveOrThrow(tx: Executor, projectId: string, deltas: QuotaDelta[]): Promise<void> {
  const refusal = await reserveQuota(tx, projectId, deltas);
  if (refusal) throw quotaExceeded(refusal);
}

/** The RESOURCE_EXHAUSTED error for a refused reservation, naming the quota and its numbers. */
export function quotaExceeded(refusal: QuotaRefusal): CinderblockError {
  return new CinderblockError(
    "RESOURCE_EXHAUSTED",
    `quota exceeded for ${refusal.resource}: requested ${refusal.requested}, ${refusal.inUse} of ${refusal.limit} in use`,
  );
}
