import type { ServiceRow } from "@cinderblock/db";

/**
 * Cinder's name for each field our volume hosts report (camelCase JSON, the driver's BackendStats
 * in services/volume/src/drivers/driver.ts, stored as the service row's `capabilities`). Extra specs
 * and the filters use Cinder's names, so a type written for Cinder (`thin_provisioning_support='<is>
 * True'`) works here. What each driver reports today:
 *
 * | reported (camelCase)       | Cinder's name                | file  | lvm              | rbd   |
 * | -------------------------- | ---------------------------- | ----- | ---------------- | ----- |
 * | `totalCapacityGb`          | `total_capacity_gb`          | yes   | yes (VG or pool) | yes   |
 * | `freeCapacityGb`           | `free_capacity_gb`           | yes   | yes              | yes   |
 * | `provisionedCapacityGb`    | `provisioned_capacity_gb`    | yes   | yes              | yes   |
 * | `thinProvisioning`         | `thin_provisioning_support`  | true  | thin pool or not | true  |
 * | `maxOverSubscriptionRatio` | `max_over_subscription_ratio`| yes   | 1 when thick     | yes   |
 * | `reservedPercentage`       | `reserved_percentage`        | yes   | yes              | yes   |
 * | `totalVolumes`             | `total_volumes`              | yes   | yes              | yes   |
 * | `backendState`             | `backend_state`              | yes   | yes              | yes   |
 * | `driver`                   | `driver`                     | file  | lvm              | rbd   |
 * | `storageProtocol`          | `storage_protocol`           | file  | iSCSI            | ceph  |
 * | `multiattach`              | `multiattach`                | true  | true             | true  |
 *
 * Filled in when not reported: `volume_backend_name` (the service's backend name, as Cinder's
 * drivers report their volume_backend_name option), `pool_name`, `thick_provisioning_support`
 * (not thin), `allocated_capacity_gb` (the provisioned capacity: our drivers count only their own
 * volumes, which is what Cinder's volume manager counts as allocated), `multiattach` and
 * `QoS_support` (false). Not reported by any driver yet, mapped when one does:
 * `vendorName`, `driverVersion`, `qosSupport`, `onlineExtendSupport`, `thickProvisioningSupport`,
 * `allocatedCapacityGb`, `volumeBackendName`. Any other camelCase key is renamed to snake_case.
 */
const CINDER_CAPABILITY_NAMES: Readonly<Record<string, string>> = {
  totalCapacityGb: "total_capacity_gb",
  freeCapacityGb: "free_capacity_gb",
  provisionedCapacityGb: "provisioned_capacity_gb",
  allocatedCapacityGb: "allocated_capacity_gb",
  thinProvisioning: "thin_provisioning_support",
  thinProvisioningSupport: "thin_provisioning_support",
  thickProvisioningSupport: "thick_provisioning_support",
  maxOverSubscriptionRatio: "max_over_subscription_ratio",
  reservedPercentage: "reserved_percentage",
  totalVolumes: "total_volumes",
  backendState: "backend_state",
  volumeBackendName: "volume_backend_name",
  storageProtocol: "storage_protocol",
  vendorName: "vendor_name",
  driverVersion: "driver_version",
  multiattach: "multiattach",
  qosSupport: "QoS_support",
  onlineExtendSupport: "online_extend_support",
  poolName: "pool_name",
};

/** Per-pool quantities: a pool reports its own, never its backend's. */
const POOL_QUANTITIES = new Set([
  "total_capacity_gb",
  "free_capacity_gb",
  "provisioned_capacity_gb",
  "allocated_capacity_gb",
  "total_volumes",
]);

/** A reported capability's name as Cinder spells it. */
export function cinderCapabilityName(key: string): string {
  return CINDER_CAPABILITY_NAMES[key] ?? key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The reported capabilities under Cinder's names (one level: nested objects keep their keys). */
function toCinderCapabilities(reported: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(reported)) {
    const name = cinderCapabilityName(key);
    // NOTE: `thinProvisioningSupport` wins over the drivers' `thinProvisioning` when both come.
    if (name in out && key === "thinProvisioning") continue;
    out[name] = value;
  }
  return out;
}

/**
 * One place a volume can go: a pool of a backend (Cinder's PoolState). A backend that reports no
 * `pools` list is one pool named after the backend, as Cinder makes one for drivers without pools.
 */
export interface Pool {
  /** `<host>@<backend>#<pool>`, Cinder's pool-level host. */
  host: string;
  /** The service's `<host>@<backend>`. */
  backendHost: string;
  /** The volume host's name (the part before `@`). */
  hostName: string;
  backend: string;
  pool: string;
  availabilityZone: string;
  disabled: boolean;
  disabledReason: string;
  frozen: boolean;
  /** Whether the service's heartbeat is recent. */
  up: boolean;
  /** The pool's capabilities under Cinder's names, the backend's filled in (see {@link CINDER_CAPABILITY_NAMES}). */
  capabilities: Readonly<Record<string, unknown>>;
  /** The service row the pool belongs to. */
  service: ServiceRow;
}

function withDefaults(caps: Record<string, unknown>, backend: string, pool: string): Record<string, unknown> {
  const thin = caps.thin_provisioning_support === true;
  return {
    volume_backend_name: backend,
    thick_provisioning_support: !thin,
    multiattach: false,
    QoS_support: false,
    ...caps,
    pool_name: pool,
    thin_provisioning_support: thin,
    // Cinder defaults provisioned to allocated; ours report provisioned (their own volumes' sizes).
    allocated_capacity_gb: caps.allocated_capacity_gb ?? caps.provisioned_capacity_gb ?? 0,
  };
}

/**
 * The pools a service's report describes. The report may carry `pools: [{ poolName, ...capacity }]`;
 * each pool then inherits the backend's other capabilities (thin provisioning, ratio, reserved
 * percentage, backend state...) unless it reports its own, but never the backend's capacity
 * figures. `up` is the heartbeat's freshness when the caller knows it (default: up).
 */
export function poolsOf(service: ServiceRow & { up?: boolean }): Pool[] {
  const { pools: reportedPools, ...rest } = service.capabilities as { pools?: unknown } & Record<string, unknown>;
  const backendCaps = toCinderCapabilities(rest);
  const base = {
    backendHost: service.host,
    hostName: service.hostName,
    backend: service.backend,
    availabilityZone: service.availabilityZone,
    disabled: service.disabled,
    disabledReason: service.disabledReason,
    frozen: service.frozen,
    up: service.up ?? true,
    service,
  };
  const listed = Array.isArray(reportedPools)
    ? reportedPools.filter(
        (p): p is Record<string, unknown> & { poolName: string } =>
          typeof p === "object" && p !== null && typeof (p as { poolName?: unknown }).poolName === "string",
      )
    : [];
  if (listed.length === 0) {
    // A backend of one pool names it (`poolName`: its VG, Ceph pool, directory), else it is the backend.
    const name = typeof rest.poolName === "string" && rest.poolName !== "" ? rest.poolName : service.backend;
    return [
      {
        ...base,
        host: `${service.host}#${name}`,
        pool: name,
        capabilities: withDefaults(backendCaps, service.backend, name),
      },
    ];
  }
  const inherited = Object.fromEntries(Object.entries(backendCaps).filter(([k]) => !POOL_QUANTITIES.has(k)));
  return listed.map((reported) => {
    const caps = { ...inherited, ...toCinderCapabilities(reported) };
    return {
      ...base,
      host: `${service.host}#${reported.poolName}`,
      pool: reported.poolName,
      capabilities: withDefaults(caps, service.backend, reported.poolName),
    };
  });
}
