import { type Executor, type QuotaDelta, type QuotaRefusal, reserveQuota } from "@cinderblock/db";
import { CinderblockError } from "./errors.js";

/** Default hard limits (Cinder's defaults; a negative value means unlimited). */
export interface QuotaDefaults {
  volumes: number;
  snapshots: number;
  gigabytes: number;
}

/**
 * Cinder's per-volume-type quotas: a volume type `t` also counts against `volumes_t`,
 * `snapshots_t` and `gigabytes_t`, unlimited unless a project's limit says otherwise.
 */
function typed(deltas: QuotaDelta[], volumeType: string): QuotaDelta[] {
  if (!volumeType) return deltas;
  return [
    ...deltas,
    ...deltas.map((d) => ({ resource: `${d.resource}_${volumeType}`, delta: d.delta, defaultLimit: -1 })),
  ];
}

/** The deltas a new snapshot of a `sizeGb` volume of `volumeType` takes (and its delete gives back). */
export function snapshotQuotaDeltas(defaults: QuotaDefaults, sizeGb: number, volumeType = ""): QuotaDelta[] {
  return typed(
    [
      { resource: "snapshots", delta: 1, defaultLimit: defaults.snapshots },
      { resource: "gigabytes", delta: sizeGb, defaultLimit: defaults.gigabytes },
    ],
    volumeType,
  );
}

/** The deltas a new volume of `sizeGb` and `volumeType` takes (and its delete gives back). */
export function volumeQuotaDeltas(defaults: QuotaDefaults, sizeGb: number, volumeType = ""): QuotaDelta[] {
  return typed(
    [
      { resource: "volumes", delta: 1, defaultLimit: defaults.volumes },
      { resource: "gigabytes", delta: sizeGb, defaultLimit: defaults.gigabytes },
    ],
    volumeType,
  );
}

/** The deltas of growing a volume of `volumeType` by `deltaGb`. */
export function extendQuotaDeltas(defaults: QuotaDefaults, deltaGb: number, volumeType = ""): QuotaDelta[] {
  return typed([{ resource: "gigabytes", delta: deltaGb, defaultLimit: defaults.gigabytes }], volumeType);
}

/**
 * What a retype moves between per-type quotas (Cinder's retype reserves the new type's
 * `volumes_<type>` and `gigabytes_<type>` and gives the old type's back; the totals do not change):
 * the deltas a volume of `sizeGb` holds against `volumeType`'s own quotas. Reserve them for the
 * new type when the retype starts; release them for the old type when it is done, or for the new
 * one when it fails.
 */
export function retypeQuotaDeltas(sizeGb: number, volumeType: string): QuotaDelta[] {
  if (!volumeType) return [];
  return [
    { resource: `volumes_${volumeType}`, delta: 1, defaultLimit: -1 },
    { resource: `gigabytes_${volumeType}`, delta: sizeGb, defaultLimit: -1 },
  ];
}

/** What a snapshot row holds against its project's quota (released when the row goes). */
export function snapshotQuotaHeld(row: { volumeSizeGb: number; volumeType: string }): QuotaDelta[] {
  return snapshotQuotaDeltas({ volumes: -1, snapshots: -1, gigabytes: -1 }, row.volumeSizeGb, row.volumeType);
}

/** What a volume row holds against its project's quota (released when the row goes). */
export function volumeQuotaHeld(row: { sizeGb: number; volumeType: string }): QuotaDelta[] {
  return volumeQuotaDeltas({ volumes: -1, snapshots: -1, gigabytes: -1 }, row.sizeGb, row.volumeType);
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
