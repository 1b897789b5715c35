import { changeServiceFlags, type Db, listServicesWithState, type ServiceRow } from "@cinderblock/db";
import type { RequestContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { findUsableType } from "../volume-types/resolve.js";
import {
  type AvailabilityZoneView,
  activePools,
  availabilityZones,
  type PoolView,
  type ServiceView,
  serviceView,
  VOLUME_BINARY,
} from "./views.js";

/** What the operator's use cases need. */
export interface BackendDependencies {
  db: Db;
  /** Seconds after the last heartbeat at which a backend counts as down (as the scheduler counts). */
  serviceDownTimeSeconds: number;
}

/** Which services a call names: a backend `<host>@<backend>`, or every backend of `<host>`. */
export interface ServiceSelector {
  host: string;
  /** Empty or "cinder-volume" (the only binary that reports itself). */
  binary: string;
}

/**
 * The operator's view of the backends (Cinder's os-services, scheduler-stats/get_pools and
 * os-availability-zone). Authorization is the api's policy (admin rules); these only validate.
 */
export interface BackendUseCases {
  listServices(ctx: RequestContext, filter: Partial<ServiceSelector>): Promise<ServiceView[]>;
  enableService(ctx: RequestContext, selector: ServiceSelector): Promise<ServiceView[]>;
  disableService(ctx: RequestContext, selector: ServiceSelector & { disabledReason: string }): Promise<ServiceView[]>;
  /** FAILED_PRECONDITION when every backend named is frozen already (Cinder: "no service could be changed"). */
  freezeHost(ctx: RequestContext, host: string): Promise<ServiceView[]>;
  thawHost(ctx: RequestContext, host: string): Promise<ServiceView[]>;
  /** `volumeType`: a type's id or name whose extra specs the pools must satisfy (NOT_FOUND when none). */
  listPools(ctx: RequestContext, filter: { volumeType: string; name: string }): Promise<PoolView[]>;
  listAvailabilityZones(ctx: RequestContext): Promise<AvailabilityZoneView[]>;
}

const HOST = /^[^@#\s]+(@[^@#\s]+)?$/;

function validateHost(host: string, required: boolean): string {
  if (!host && !required) return host;
  if (!host) throw new CinderblockError("INVALID_ARGUMENT", "host: is required (<host>@<backend> or <host>)");
  if (host.length > 255 || !HOST.test(host)) {
    throw new CinderblockError("INVALID_ARGUMENT", "host: must be <host>@<backend> or <host> (255 characters at most)");
  }
  return host;
}

function validateReason(reason: string): string {
  if (reason.length > 255) {
    throw new CinderblockError("INVALID_ARGUMENT", "disabled_reason: must be at most 255 characters");
  }
  return reason;
}

const notFound = (host: string, binary = VOLUME_BINARY) =>
  new CinderblockError("NOT_FOUND", `service ${binary} on host ${host} not found`);

/** Builds the operator's use cases. */
export function createBackendUseCases(deps: BackendDependencies): BackendUseCases {
  const { db, serviceDownTimeSeconds: downTimeSeconds } = deps;

  /** Sets flags on the named backends; NOT_FOUND when none is named `host`, else `refused` when none changed. */
  async function change(
    selector: ServiceSelector,
    flags: Partial<Pick<ServiceRow, "disabled" | "disabledReason" | "frozen">>,
    expectFrozen?: boolean,
  ): Promise<ServiceView[]> {
    const host = validateHost(selector.host, true);
    if (selector.binary && selector.binary !== VOLUME_BINARY) throw notFound(host, selector.binary);
    const changed = await changeServiceFlags(db, host, flags, { downTimeSeconds, expectFrozen });
    if (changed.length > 0) return changed.map(serviceView);
    if ((await listServicesWithState(db, downTimeSeconds, host)).length === 0) throw notFound(host);
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `host ${host}: no backend could be changed (${expectFrozen ? "not frozen" : "already frozen"})`,
    );
  }

  return {
    async listServices(_ctx, filter) {
      const host = validateHost(filter.host ?? "", false);
      if (filter.binary && filter.binary !== VOLUME_BINARY) return [];
      return (await listServicesWithState(db, downTimeSeconds, host || undefined)).map(serviceView);
    },
    enableService: (_ctx, selector) => change(selector, { disabled: false, disabledReason: "" }),
    disableService: (_ctx, selector) =>
      change(selector, { disabled: true, disabledReason: validateReason(selector.disabledReason) }),
    freezeHost: (_ctx, host) => change({ host, binary: "" }, { frozen: true }, false),
    thawHost: (_ctx, host) => change({ host, binary: "" }, { frozen: false }, true),
    async listPools(ctx, filter) {
      let extraSpecs: Record<string, string> | undefined;
      if (filter.volumeType) {
        const type = await findUsableType(db, ctx, filter.volumeType);
        if (!type) {
          throw new CinderblockError(
            "NOT_FOUND",
            `volume_type: volume type ${JSON.stringify(filter.volumeType)} not found`,
          );
        }
        extraSpecs = type.extraSpecs;
      }
      return activePools(await listServicesWithState(db, downTimeSeconds), { name: filter.name, extraSpecs });
    },
    async listAvailabilityZones() {
      return availabilityZones(await listServicesWithState(db, downTimeSeconds));
    },
  };
}
