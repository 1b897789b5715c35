import type { ServiceRow } from "@cinderblock/db";
import { capabilitiesProblem, type Pool, poolsOf } from "@cinderblock/domain";
import { capacityFactors, capacityOf, DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO, isThinRequest } from "./capacity.js";
import { DEFAULT_WEIGHER_MULTIPLIERS, type WeighedPool, type WeigherMultipliers, weighPools } from "./weighers.js";

/** What a new volume asks of the scheduler. */
export interface ScheduleRequest {
  sizeGb: number;
  /** Empty: any zone. */
  availabilityZone: string;
  /** The volume type's extra specs (empty without a type). */
  extraSpecs: Readonly<Record<string, string>>;
  /** Cinder's scheduler hints `same_host` / `different_host`: volume ids. */
  hints: { sameHost?: readonly string[]; differentHost?: readonly string[] };
  /** Pools (`host@backend#pool`) or backends (`host@backend`) already tried for this volume. */
  excludeHosts?: readonly string[];
}

/** What the filters need besides the pool and the request. */
export interface FilterContext {
  /**
   * Where a volume lives (`host@backend`, `host@backend#pool`), or undefined when there is no such
   * volume (never created, deleted). The caller looks the hinted volumes up beforehand.
   */
  volumeHost(volumeId: string): string | undefined;
  /** The ratio of a thin pool that reports none (Cinder's max_over_subscription_ratio, 20). */
  defaultMaxOverSubscriptionRatio?: number;
}

/** A filter: why it rejects the pool, or undefined when the pool passes. */
export type PoolFilter = (pool: Pool, request: ScheduleRequest, context: FilterContext) => string | undefined;

const gib = (n: number): string => `${Number.isInteger(n) ? n : n.toFixed(2)} GiB`;

/** Disabled, frozen and silent backends take no new volumes (Cinder's host manager leaves them out). */
export const serviceStateFilter: PoolFilter = (pool) => {
  if (pool.disabled) return `disabled${pool.disabledReason ? `: ${pool.disabledReason}` : ""}`;
  if (pool.frozen) return "frozen";
  if (!pool.up) return "down (no recent heartbeat)";
  return undefined;
};

/** Cinder's IgnoreAttemptedHostsFilter: a retry goes elsewhere. */
export const retryFilter: PoolFilter = (pool, request) =>
  request.excludeHosts?.some((h) => h === pool.host || h === pool.backendHost)
    ? "already tried for this volume"
    : undefined;

/** Cinder's AvailabilityZoneFilter: the pool's service is in the requested zone (any zone when none is asked). */
export const availabilityZoneFilter: PoolFilter = (pool, request) =>
  request.availabilityZone && pool.availabilityZone !== request.availabilityZone
    ? `in availability zone ${pool.availabilityZone}, not ${request.availabilityZone}`
    : undefined;

/**
 * Whether the pool has reported itself up with its capacity. NOTE: a volume host's first report
 * may say `backendState: "down"` with 0 GiB while its storage is still coming up (Ceph not yet
 * listing the pool); the scheduler waits for such a backend rather than judge its capacity.
 */
function reportedUp(pool: Pool): boolean {
  const c = capacityOf(pool.capabilities);
  return (
    pool.capabilities.backend_state !== "down" && c.totalCapacityGb !== undefined && c.freeCapacityGb !== undefined
  );
}

/** Rejects a pool that has not reported up yet (see {@link reportedUp}). */
const reportedUpFilter: PoolFilter = (pool) => {
  if (pool.capabilities.backend_state === "down") return "has not reported up (its backend reports down)";
  return reportedUp(pool) ? undefined : "has not reported its capacity";
};

/**
 * Cinder's CapacityFilter, with its arithmetic (cinder/scheduler/filters/capacity_filter.py and
 * sched_utils.calculate_capacity_factors). A 0 GiB request, or an `infinite`/`unknown` free
 * capacity, passes. A thin request (unless `provisioning:type=thick`) on a thin pool must keep
 * (provisioned + size) / ((total − floor(total × reserved%)) × ratio) within the ratio, and fit in
 * the virtual free capacity; a thick one must fit in min(free, total − reserved − provisioned).
 */
export const capacityFilter: PoolFilter = (pool, request, context) => {
  const size = request.sizeGb;
  if (size === 0) return undefined;
  const c = capacityOf(
    pool.capabilities,
    context.defaultMaxOverSubscriptionRatio ?? DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO,
  );
  const { freeCapacityGb: free, totalCapacityGb: total } = c;
  if (free === undefined) return "has not reported its free capacity";
  if (free === "infinite" || free === "unknown") return undefined;
  if (total === undefined) return "has not reported its total capacity";
  if (total === "infinite" || total === "unknown") {
    if (c.reservedPercentage === 0) return undefined;
    return `cannot reserve ${c.reservedPercentage}% of a total capacity reported as ${total}`;
  }
  if (total <= 0) return `has a total capacity of ${gib(total)}`;
  const thin = isThinRequest(request.extraSpecs);
  const ratio = c.thinProvisioningSupport ? c.maxOverSubscriptionRatio : 1;
  const factors = capacityFactors(
    total,
    free,
    c.provisionedCapacityGb,
    c.thinProvisioningSupport,
    ratio,
    c.reservedPercentage,
    thin,
  );
  const virtualFree = factors.virtualFreeCapacity;
  if (thin && c.thinProvisioningSupport) {
    if (c.maxOverSubscriptionRatio < 1) {
      return `has an invalid max_over_subscription_ratio ${c.maxOverSubscriptionRatio} (at least 1.0)`;
    }
    const provisionedRatio = (c.provisionedCapacityGb + size) / factors.totalAvailableCapacity;
    if (provisionedRatio > c.maxOverSubscriptionRatio) {
      return (
        `would pass its over-subscription ratio: (${gib(c.provisionedCapacityGb)} provisioned + ${gib(size)}) / ` +
        `${gib(factors.totalAvailableCapacity)} = ${provisionedRatio.toFixed(2)} > ${c.maxOverSubscriptionRatio}`
      );
    }
    return virtualFree >= size ? undefined : `has ${gib(virtualFree)} of virtual free capacity, ${gib(size)} needed`;
  }
  return virtualFree < size ? `has ${gib(virtualFree)} free, ${gib(size)} needed` : undefined;
};

/**
 * Cinder's CapabilitiesFilter: the type's extra specs against the pool's capabilities (see
 * capabilitiesProblem in @cinderblock/domain, which get_pools's type filter shares).
 */
export const capabilitiesFilter: PoolFilter = (pool, request) =>
  capabilitiesProblem(pool.capabilities, request.extraSpecs);

/**
 * A volume id in its canonical form (`8-4-4-4-12` lower-case hex), or undefined when it is not
 * UUID-like as Cinder's uuidutils.is_uuid_like says: 32 hex digits once `urn:`, `uuid:`, braces
 * and hyphens are dropped.
 */
export function canonicalUuid(value: string): string | undefined {
  const hex = value
    .toLowerCase()
    .replace(/^urn:/, "")
    .replace(/^uuid:/, "")
    .replace(/^\{|\}$/g, "")
    .replaceAll("-", "");
  const m = /^([0-9a-f]{8})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{12})$/.exec(hex);
  return m ? m.slice(1).join("-") : undefined;
}

/**
 * Whether a volume's host is this pool. NOTE: Cinder matches at the candidate's level (a pool
 * `h@b#p` only matches volumes recorded on `h@b#p`); we match at the volume's level, because our
 * volumes record their backend (`h@b`), not yet their pool: such a volume is on every pool of `h@b`.
 */
function livesOn(volumeHost: string, pool: Pool): boolean {
  if (volumeHost.includes("#")) return volumeHost === pool.host;
  if (volumeHost.includes("@")) return volumeHost === pool.backendHost;
  return volumeHost === pool.hostName;
}

function affinityFilter(hint: "same_host" | "different_host", same: boolean): PoolFilter {
  return (pool, request, context) => {
    const ids = (same ? request.hints.sameHost : request.hints.differentHost) ?? [];
    if (ids.length === 0) return undefined;
    // Cinder fails the request rather than serve it wrong when a hint is not a volume id.
    const bad = ids.find((id) => canonicalUuid(id) === undefined);
    if (bad !== undefined) return `scheduler hint ${hint} holds ${JSON.stringify(bad)}, not a volume id`;
    const here = ids.filter((id) => {
      const host = context.volumeHost(id);
      return host !== undefined && livesOn(host, pool);
    });
    if (same && here.length === 0) return `holds none of the volumes of scheduler hint same_host (${ids.join(", ")})`;
    if (!same && here.length > 0) return `holds volume ${here.join(", ")} of scheduler hint different_host`;
    return undefined;
  };
}

/** Cinder's SameBackendFilter: the pool holds at least one of the `same_host` volumes (none that exist: no pool). */
export const sameBackendFilter: PoolFilter = affinityFilter("same_host", true);

/** Cinder's DifferentBackendFilter: the pool holds none of the `different_host` volumes (gone ones are ignored). */
export const differentBackendFilter: PoolFilter = affinityFilter("different_host", false);

/** The filters, in the order they run; a pool's reason is the first one's that rejects it. */
const FILTERS: readonly { name: string; filter: PoolFilter }[] = [
  { name: "ServiceState", filter: serviceStateFilter },
  { name: "AvailabilityZoneFilter", filter: availabilityZoneFilter },
  { name: "IgnoreAttemptedHostsFilter", filter: retryFilter },
  { name: "ReportedUp", filter: reportedUpFilter },
  { name: "CapacityFilter", filter: capacityFilter },
  { name: "CapabilitiesFilter", filter: capabilitiesFilter },
  { name: "SameBackendFilter", filter: sameBackendFilter },
  { name: "DifferentBackendFilter", filter: differentBackendFilter },
];

/** A pool the filters turned down. */
interface Rejection {
  host: string;
  filter: string;
  reason: string;
}

/** Options of {@link pickBackend}. */
export interface PickOptions {
  multipliers?: WeigherMultipliers;
  /** Where a hinted volume lives (see {@link FilterContext.volumeHost}); default: nowhere. */
  volumeHost?: (volumeId: string) => string | undefined;
  defaultMaxOverSubscriptionRatio?: number;
}

/** What {@link pickBackend} decided. */
export interface Choice {
  /** The winning pool, undefined when none passed. */
  pool?: Pool;
  /** The winning pool's service. */
  service?: ServiceRow;
  /** The pools that passed, best first. */
  weighed: WeighedPool[];
  rejected: Rejection[];
  /** One line per rejected pool: `<pool host>: <why>`. */
  reasons: string[];
  /**
   * True when nothing was picked only because no backend has reported up yet: none usable
   * (enabled, not frozen, heartbeat) in the zone has, and either one there is still coming up or
   * none anywhere is up (a cold start; not when a backend that reported up was disabled or frozen). A later report may then change the answer; a zone nobody
   * serves, or backends that are up but full, will not.
   */
  waitable: boolean;
}

/**
 * Cinder's filter scheduler for a new volume: every pool of every service through the
 * {@link FILTERS}, each rejected pool with its reason, then the passing pools weighed
 * ({@link weighPools}) and the best one picked.
 */
export function pickBackend(
  services: readonly (ServiceRow & { up?: boolean })[],
  request: ScheduleRequest,
  options: PickOptions = {},
): Choice {
  const context: FilterContext = {
    volumeHost: options.volumeHost ?? (() => undefined),
    defaultMaxOverSubscriptionRatio: options.defaultMaxOverSubscriptionRatio,
  };
  const pools = services.flatMap((s) => poolsOf(s));
  const rejected: Rejection[] = [];
  const passing = pools.filter((pool) => {
    for (const { name, filter } of FILTERS) {
      const reason = filter(pool, request, context);
      if (reason !== undefined) {
        rejected.push({ host: pool.host, filter: name, reason });
        return false;
      }
    }
    return true;
  });
  const weighed = weighPools(
    passing,
    request,
    options.multipliers ?? DEFAULT_WEIGHER_MULTIPLIERS,
    options.defaultMaxOverSubscriptionRatio,
  );
  const best = weighed[0]?.pool;
  const usable = pools.filter((p) => serviceStateFilter(p, request, context) === undefined);
  const usableInZone = usable.filter((p) => availabilityZoneFilter(p, request, context) === undefined);
  // NOTE: a backend that is up and has reported its storage up, but that an operator disabled or
  // froze, shows a running cloud, not one starting: nothing to wait for (the refusal names it).
  const refusedByOperator = pools.some((p) => p.up && (p.disabled || p.frozen) && reportedUp(p));
  const coldStart = !usable.some(reportedUp) && !refusedByOperator;
  const waitable = !best && !usableInZone.some(reportedUp) && (usableInZone.length > 0 || coldStart);
  return {
    pool: best,
    service: best?.service,
    weighed,
    rejected,
    reasons: rejected.map((r) => `${r.host}: ${r.reason}`),
    waitable,
  };
}

/**
 * Whether a backend can take `sizeGb` more (a snapshot of a volume there): Cinder's CapacityFilter
 * on the volume's pool. The pool is the one named in `volumeHost` (`host@backend#pool`); a volume
 * recorded without its pool fits when any pool of the backend has the room. Returns why not.
 */
export function capacityProblem(service: ServiceRow, sizeGb: number, volumeHost?: string): string | undefined {
  const poolName = volumeHost?.split("#")[1];
  const pools = poolsOf(service).filter((p) => poolName === undefined || p.pool === poolName);
  if (pools.length === 0) return `backend ${service.host} reports no pool ${poolName}`;
  const request: ScheduleRequest = { sizeGb, availabilityZone: "", extraSpecs: {}, hints: {} };
  const context: FilterContext = { volumeHost: () => undefined };
  const problems = pools.map((p) => {
    const reason = reportedUpFilter(p, request, context) ?? capacityFilter(p, request, context);
    return reason && `${p.host}: ${reason}`;
  });
  return problems.some((p) => p === undefined) ? undefined : problems[0];
}
