import type { ServiceRow } from "@cinderblock/db";

/** The capacity figures a backend reports (a subset of the driver's stats). */
interface Capacity {
  totalCapacityGb: number;
  freeCapacityGb: number;
  provisionedCapacityGb: number;
  thinProvisioning: boolean;
  maxOverSubscriptionRatio: number;
  reservedPercentage: number;
}

function capacityOf(service: ServiceRow): Capacity | undefined {
  const c = service.capabilities as Partial<Capacity>;
  if (typeof c.totalCapacityGb !== "number" || typeof c.freeCapacityGb !== "number") return undefined;
  return {
    totalCapacityGb: c.totalCapacityGb,
    freeCapacityGb: c.freeCapacityGb,
    provisionedCapacityGb: c.provisionedCapacityGb ?? 0,
    thinProvisioning: c.thinProvisioning ?? false,
    maxOverSubscriptionRatio: c.maxOverSubscriptionRatio ?? 1,
    reservedPercentage: c.reservedPercentage ?? 0,
  };
}

/**
 * Cinder's CapacityFilter: the backend has reported capabilities, keeps its reserved share free
 * after `sizeGb`, and on thin backends stays within the over-subscription ratio. Returns why not,
 * or undefined when it has room.
 */
export function capacityProblem(service: ServiceRow, sizeGb: number): string | undefined {
  const c = capacityOf(service);
  if (!c) return `backend ${service.host} has not reported its capacity`;
  const reserved = (c.totalCapacityGb * c.reservedPercentage) / 100;
  const usable = c.freeCapacityGb - reserved;
  if (c.thinProvisioning) {
    const ceiling = c.totalCapacityGb * c.maxOverSubscriptionRatio;
    if (c.provisionedCapacityGb + sizeGb > ceiling) {
      return `backend ${service.host} would pass its over-subscription limit (${c.provisionedCapacityGb} + ${sizeGb} GiB provisioned > ${ceiling} GiB)`;
    }
    if (usable <= 0) return `backend ${service.host} has no free capacity`;
    return undefined;
  }
  if (usable < sizeGb) return `backend ${service.host} has ${usable.toFixed(2)} GiB free, ${sizeGb} GiB needed`;
  return undefined;
}

/**
 * Whether a backend has reported itself up, with its capacity. NOTE: a volume host's first report
 * may say `backendState: "down"` with 0 GiB while its storage is still coming up (Ceph not yet
 * listing the pool); the scheduler waits for such a backend rather than judge its capacity.
 */
function reportedUp(service: ServiceRow): boolean {
  const state = (service.capabilities as { backendState?: unknown }).backendState;
  return state !== "down" && capacityOf(service) !== undefined;
}

/** Cinder's CapacityWeigher: more free capacity first. */
function freeCapacity(service: ServiceRow): number {
  return capacityOf(service)?.freeCapacityGb ?? 0;
}

/**
 * Picks the backend for a new volume: filters (availability zone, reported up, capacity), then the
 * weigher. `waitable` is true when nothing was picked only because no backend has reported up yet:
 * none in the zone has, and either one there is still coming up or none anywhere is up (a cold
 * start). A later report may then change the answer; a zone nobody serves, or backends that are
 * up but full, will not.
 */
export function pickBackend(
  candidates: ServiceRow[],
  request: { sizeGb: number; availabilityZone: string },
): { host?: ServiceRow; reasons: string[]; waitable: boolean } {
  const reasons: string[] = [];
  let upInZone = false;
  let comingUpInZone = false;
  const passing = candidates.filter((s) => {
    if (request.availabilityZone && s.availabilityZone !== request.availabilityZone) {
      reasons.push(`backend ${s.host} is in availability zone ${s.availabilityZone}`);
      return false;
    }
    if (!reportedUp(s)) {
      comingUpInZone = true;
      reasons.push(`backend ${s.host} has not reported up`);
      return false;
    }
    upInZone = true;
    const problem = capacityProblem(s, request.sizeGb);
    if (problem) reasons.push(problem);
    return !problem;
  });
  passing.sort((a, b) => freeCapacity(b) - freeCapacity(a) || a.host.localeCompare(b.host));
  const waitable = !passing[0] && !upInZone && (comingUpInZone || !candidates.some(reportedUp));
  return { host: passing[0], reasons, waitable };
}
