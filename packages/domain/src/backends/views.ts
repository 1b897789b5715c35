import type { ServiceRow } from "@cinderblock/db";
import { capabilitiesProblem } from "../placement/capabilities.js";
import { type Pool, poolsOf } from "../placement/pools.js";

/** The binary every listed service has: only volume hosts report themselves (see ListServices). */
export const VOLUME_BINARY = "cinder-volume";

/** A backend's row with whether its heartbeat is recent (as listServicesWithState reads it). */
export type ServiceWithState = ServiceRow & { up: boolean };

/** A service as os-services shows it. */
export interface ServiceView {
  binary: string;
  host: string;
  zone: string;
  status: "enabled" | "disabled";
  state: "up" | "down";
  disabledReason: string;
  frozen: boolean;
  /** The later of the last heartbeat and the last operator change (Cinder's updated_at). */
  updatedAt: Date;
  heartbeatAt: Date;
  /** What the backend reports about its storage ("up" unless it says "down"), as Cinder 3.49. */
  backendState: string;
}

/** A backend row as os-services (with os-extended-services) shows it. */
export function serviceView(row: ServiceWithState): ServiceView {
  const reported = row.capabilities.backendState;
  return {
    binary: VOLUME_BINARY,
    host: row.host,
    zone: row.availabilityZone,
    status: row.disabled ? "disabled" : "enabled",
    state: row.up ? "up" : "down",
    disabledReason: row.disabled ? row.disabledReason : "",
    frozen: row.frozen,
    updatedAt: new Date(Math.max(row.updatedAt.getTime(), row.heartbeatAt.getTime())),
    heartbeatAt: row.heartbeatAt,
    backendState: reported === "down" ? "down" : "up",
  };
}

/** A pool as get_pools shows it. */
export interface PoolView {
  /** `<host>@<backend>#<pool>`. */
  name: string;
  capabilities: Readonly<Record<string, unknown>>;
}

/**
 * Cinder's get_pools: the pools of the backends the scheduler may place in (up, enabled, not
 * frozen: Cinder's host manager keeps only those), those named `name` when given, and with
 * `extraSpecs` only those whose capabilities satisfy them (Cinder 3.35's volume_type filter,
 * the scheduler's CapabilitiesFilter: the two share capabilitiesProblem).
 */
export function activePools(
  rows: readonly ServiceWithState[],
  filter: { name?: string; extraSpecs?: Readonly<Record<string, string>> } = {},
): PoolView[] {
  return rows
    .filter((r) => r.up && !r.disabled && !r.frozen)
    .flatMap((r) => poolsOf(r))
    .filter((p: Pool) => !filter.name || p.host === filter.name)
    .filter((p) => !filter.extraSpecs || capabilitiesProblem(p.capabilities, filter.extraSpecs) === undefined)
    .map((p) => ({ name: p.host, capabilities: p.capabilities }));
}

/** An availability zone as os-availability-zone shows it. */
export interface AvailabilityZoneView {
  name: string;
  available: boolean;
}

/**
 * The zones of the volume backends, each available when one of its backends is up and enabled.
 * NOTE: Cinder looks only at `disabled` (a zone whose backends are all down still shows
 * available); a silent backend takes nothing here, so it does not make its zone available.
 */
export function availabilityZones(rows: readonly ServiceWithState[]): AvailabilityZoneView[] {
  const zones = new Map<string, boolean>();
  for (const r of rows) {
    zones.set(r.availabilityZone, (zones.get(r.availabilityZone) ?? false) || (r.up && !r.disabled));
  }
  return [...zones].sort(([a], [b]) => a.localeCompare(b)).map(([name, available]) => ({ name, available }));
}
