import type { Pool } from "@cinderblock/domain";
import { capacityFactors, capacityOf, DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO, isThinRequest } from "./capacity.js";

/** The weighers' multipliers (Cinder's capacity_weight_multiplier, allocated_capacity_weight_multiplier). */
export interface WeigherMultipliers {
  /** Positive spreads volumes over the pools with the most virtual free capacity; negative stacks them. Default 1. */
  capacity: number;
  /** Negative (the default, -1) prefers the pools with the least allocated capacity; positive the most. */
  allocatedCapacity: number;
}

export const DEFAULT_WEIGHER_MULTIPLIERS: Readonly<WeigherMultipliers> = { capacity: 1, allocatedCapacity: -1 };

/** What the weighers see of a request. */
export interface WeighRequest {
  extraSpecs: Readonly<Record<string, string>>;
}

/** A pool with its combined weight (higher wins). */
export interface WeighedPool {
  pool: Pool;
  weight: number;
}

/** Raw weights of a list of pools, with the bounds normalisation uses (Cinder's BaseWeigher.minval/maxval). */
interface RawWeights {
  weights: number[];
  min: number;
  max: number;
}

/**
 * Cinder's normalize: each weight to 0..1 between the bounds; all 0 when the bounds are equal
 * (every pool weighs the same, so this weigher decides nothing).
 */
export function normalize({ weights, min, max }: RawWeights): number[] {
  if (min === max) return weights.map(() => 0);
  return weights.map((w) => (w - min) / (max - min));
}

function bounds(weights: number[]): RawWeights {
  return { weights, min: Math.min(...weights), max: Math.max(...weights) };
}

// NOTE: Cinder's OFFSET_MIN and OFFSET_MULT: an infinite weight becomes the largest finite one plus
// 100 times the finite spread (or plus 10000 when there is no spread), so it still normalises to 1.
const OFFSET_MIN = 10_000;
const OFFSET_MULT = 100;

/**
 * Cinder's CapacityWeigher: each pool's virtual free capacity (thin: (total − reserved) × ratio −
 * provisioned; thick: the lesser of free and total − reserved − provisioned). A pool whose capacity
 * is `infinite` or `unknown` weighs least: -1 under a positive multiplier, and under a negative one
 * (stacking) +∞, replaced by a finite value past the others so that it normalises to the worst.
 */
export function capacityWeights(
  pools: readonly Pool[],
  request: WeighRequest,
  multiplier: number,
  defaultMaxOverSubscriptionRatio = DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO,
): number[] {
  const thin = isThinRequest(request.extraSpecs);
  const raw = pools.map((pool) => {
    const c = capacityOf(pool.capabilities, defaultMaxOverSubscriptionRatio);
    const total = c.totalCapacityGb ?? 0;
    const free = c.freeCapacityGb ?? 0;
    if (typeof total !== "number" || typeof free !== "number") return multiplier > 0 ? -1 : Number.POSITIVE_INFINITY;
    return capacityFactors(
      total,
      free,
      c.provisionedCapacityGb,
      c.thinProvisioningSupport,
      c.maxOverSubscriptionRatio,
      c.reservedPercentage,
      thin,
    ).virtualFreeCapacity;
  });
  const b = bounds(raw);
  if (b.max === Number.POSITIVE_INFINITY) {
    const finite = raw.filter((w) => w !== Number.POSITIVE_INFINITY);
    // Every pool infinite: they all weigh the same.
    if (finite.length === 0) return raw.map(() => 0);
    const max = Math.max(...finite);
    const offset = (max - b.min) * OFFSET_MULT;
    const replaced = max + (offset === 0 ? OFFSET_MIN : offset);
    return normalize({
      weights: raw.map((w) => (w === Number.POSITIVE_INFINITY ? replaced : w)),
      min: b.min,
      max: replaced,
    });
  }
  return normalize(b);
}

/** Cinder's AllocatedCapacityWeigher: each pool's allocated capacity, normalised. */
export function allocatedCapacityWeights(pools: readonly Pool[]): number[] {
  return normalize(bounds(pools.map((pool) => capacityOf(pool.capabilities).allocatedCapacityGb)));
}

/**
 * Weighs the pools that passed the filters as Cinder's weight handler does: each weigher's
 * weights normalised to 0..1, times its multiplier, summed. Best first; equal weights in host
 * name order, so the same reports always give the same answer.
 */
export function weighPools(
  pools: readonly Pool[],
  request: WeighRequest,
  multipliers: WeigherMultipliers = DEFAULT_WEIGHER_MULTIPLIERS,
  defaultMaxOverSubscriptionRatio = DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO,
): WeighedPool[] {
  if (pools.length === 0) return [];
  const capacity = capacityWeights(pools, request, multipliers.capacity, defaultMaxOverSubscriptionRatio);
  const allocated = allocatedCapacityWeights(pools);
  return pools
    .map((pool, i) => ({
      pool,
      // `+ 0` turns a -0 (0 times a negative multiplier) into 0.
      weight: multipliers.capacity * (capacity[i] ?? 0) + multipliers.allocatedCapacity * (allocated[i] ?? 0) + 0,
    }))
    .sort((a, b) => b.weight - a.weight || (a.pool.host < b.pool.host ? -1 : a.pool.host > b.pool.host ? 1 : 0));
}
