import { pythonFloat } from "@cinderblock/domain";

/** A capacity a backend reports: GiB, or Cinder's `infinite` / `unknown` for a backend that cannot say. */
type CapacityGb = number | "infinite" | "unknown";

/** Cinder's max_over_subscription_ratio default (a backend that reports none, or `auto` with nothing provisioned). */
export const DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO = 20;

/** The capacity figures of a pool, as Cinder's PoolState reads them from its capabilities. */
export interface PoolCapacity {
  /** Undefined when the pool never reported it. */
  totalCapacityGb: CapacityGb | undefined;
  freeCapacityGb: CapacityGb | undefined;
  provisionedCapacityGb: number;
  allocatedCapacityGb: number;
  thinProvisioningSupport: boolean;
  /** The effective ratio (Cinder's calculate_max_over_subscription_ratio): 1 without thin provisioning. */
  maxOverSubscriptionRatio: number;
  reservedPercentage: number;
}

const isInfiniteOrUnknown = (v: unknown): v is "infinite" | "unknown" => v === "infinite" || v === "unknown";

function capacityValue(v: unknown): CapacityGb | undefined {
  if (isInfiniteOrUnknown(v)) return v;
  return typeof v === "number" || typeof v === "string" ? pythonFloat(v) : undefined;
}

const numberOr = (v: unknown, fallback: number): number => pythonFloat(v) ?? fallback;

/**
 * Cinder's calculate_max_over_subscription_ratio: 1 for a pool without thin provisioning or whose
 * capacity is infinite/unknown; `auto` becomes 1 + provisioned / (used + 1) (20 while nothing is
 * provisioned); a missing ratio is the default.
 */
function maxOverSubscriptionRatio(caps: Readonly<Record<string, unknown>>, fallback: number): number {
  if (caps.thin_provisioning_support !== true) return 1;
  if (isInfiniteOrUnknown(caps.total_capacity_gb) || isInfiniteOrUnknown(caps.free_capacity_gb)) return 1;
  const allocated = numberOr(caps.allocated_capacity_gb, 0);
  const provisioned = numberOr(caps.provisioned_capacity_gb, allocated);
  const ratio = caps.max_over_subscription_ratio || fallback;
  if (ratio === "auto") {
    if (provisioned === 0) return DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO;
    const used = numberOr(caps.total_capacity_gb, 0) - numberOr(caps.free_capacity_gb, 0);
    return 1 + provisioned / (used + 1);
  }
  return numberOr(ratio, fallback);
}

/** A pool's capacity figures from its (Cinder-named) capabilities. */
export function capacityOf(
  caps: Readonly<Record<string, unknown>>,
  defaultMaxOverSubscriptionRatio = DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO,
): PoolCapacity {
  const allocated = numberOr(caps.allocated_capacity_gb, 0);
  return {
    totalCapacityGb: capacityValue(caps.total_capacity_gb),
    freeCapacityGb: capacityValue(caps.free_capacity_gb),
    allocatedCapacityGb: allocated,
    provisionedCapacityGb: numberOr(caps.provisioned_capacity_gb, allocated),
    thinProvisioningSupport: caps.thin_provisioning_support === true,
    maxOverSubscriptionRatio: maxOverSubscriptionRatio(caps, defaultMaxOverSubscriptionRatio),
    reservedPercentage: numberOr(caps.reserved_percentage, 0),
  };
}

/** Python's round(x, 2), near enough for GiB. */
const round2 = (x: number): number => Math.round(x * 100) / 100;

/** Cinder's capacity factors (sched_utils.calculate_capacity_factors), the ones the filter and weigher use. */
export interface CapacityFactors {
  reservedCapacity: number;
  totalAvailableCapacity: number;
  virtualFreeCapacity: number;
}

/**
 * Cinder's calculate_capacity_factors. The reserved share is floor(total × reserved%). For a thin
 * request on a thin pool, the available capacity is (total − reserved) × ratio and the virtual free
 * capacity that minus the provisioned capacity; otherwise the available capacity is total −
 * reserved, and the free capacity the lesser of (that − provisioned) and the reported free space.
 */
export function capacityFactors(
  total: number,
  free: number,
  provisioned: number,
  thinSupport: boolean,
  ratio: number,
  reservedPercentage: number,
  thin: boolean,
): CapacityFactors {
  // NOTE: total × (percent / 100), in Cinder's order: the floor can differ from (total × percent) / 100.
  const reservedCapacity = Math.floor(total * (reservedPercentage / 100));
  const totalReservedAvailable = total - reservedCapacity;
  let totalAvailable: number;
  let virtualFree: number;
  if (thin && thinSupport) {
    totalAvailable = totalReservedAvailable * ratio;
    virtualFree = totalAvailable - provisioned;
  } else {
    totalAvailable = totalReservedAvailable;
    virtualFree = Math.min(totalAvailable - provisioned, free);
  }
  return {
    reservedCapacity,
    totalAvailableCapacity: round2(totalAvailable),
    virtualFreeCapacity: round2(virtualFree),
  };
}

/** Whether a request is thin: unless its type's extra specs say `provisioning:type=thick` (Cinder's rule). */
export function isThinRequest(extraSpecs: Readonly<Record<string, string>>): boolean {
  return extraSpecs["provisioning:type"] !== "thick";
}
