import { type BackendStats, DriverError } from "./driver.js";

/** One GiB in bytes; sizes are whole GiB, as in Cinder. */
export const GIB = 1024 ** 3;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Validates an id before it becomes part of a path, an LV or an image name (so `../` or a shell
 * word never reaches storage), lowercased so one id names one object.
 */
export function checkId(id: unknown, kind: "volume" | "snapshot"): string {
  if (typeof id !== "string" || !UUID.test(id)) {
    const shown = typeof id === "string" ? JSON.stringify(id.slice(0, 64)) : typeof id;
    throw new DriverError(`invalid ${kind} id ${shown}: expected a UUID`, { retryable: false, kind: "invalid" });
  }
  return id.toLowerCase();
}

/** Validates a size in whole GiB and returns it in bytes. */
export function checkSizeBytes(sizeGb: unknown): number {
  if (
    typeof sizeGb !== "number" ||
    !Number.isSafeInteger(sizeGb) ||
    sizeGb <= 0 ||
    sizeGb * GIB > Number.MAX_SAFE_INTEGER
  ) {
    throw new DriverError(`invalid volume size ${String(sizeGb)}: expected a positive whole number of GiB`, {
      retryable: false,
    });
  }
  return sizeGb * GIB;
}

/** Bytes as GiB with two decimals, rounded down (capacity is never overstated). */
export function toGb(bytes: number): number {
  return Math.floor((bytes / GIB) * 100) / 100;
}

/**
 * The stats of a backend that does not answer: no capacity at all, so the scheduler places
 * nothing there until it answers again.
 */
export function downStats(
  common: Pick<
    BackendStats,
    | "driver"
    | "poolName"
    | "storageProtocol"
    | "multiattach"
    | "thinProvisioning"
    | "maxOverSubscriptionRatio"
    | "reservedPercentage"
  >,
): BackendStats {
  return {
    ...common,
    totalCapacityGb: 0,
    freeCapacityGb: 0,
    provisionedCapacityGb: 0,
    totalVolumes: 0,
    backendState: "down",
  };
}
