import type { ServiceRow } from "@cinderblock/db";
import { describe, expect, it } from "vitest";
import { cinderCapabilityName, poolsOf } from "./pools.js";

function service(host: string, capabilities: Record<string, unknown>): ServiceRow {
  const now = new Date();
  return {
    host,
    hostName: host.split("@")[0] ?? host,
    backend: host.split("@")[1] ?? "",
    availabilityZone: "nova",
    disabled: false,
    disabledReason: "",
    frozen: false,
    heartbeatAt: now,
    capabilities,
    grpcAddress: "",
    createdAt: now,
    updatedAt: now,
  };
}

/** What the file driver reports today (services/volume/src/drivers/file/file-driver.ts getStats). */
const fileStats = {
  driver: "file",
  thinProvisioning: true,
  maxOverSubscriptionRatio: 20,
  reservedPercentage: 5,
  totalCapacityGb: 100,
  freeCapacityGb: 60,
  provisionedCapacityGb: 300,
  totalVolumes: 12,
  backendState: "up",
};

describe("poolsOf", () => {
  it("makes a backend without pools one pool named after the backend, under Cinder's capability names", () => {
    const [pool, ...more] = poolsOf(service("vol1@fast", fileStats));
    expect(more).toEqual([]);
    expect(pool).toMatchObject({ host: "vol1@fast#fast", backendHost: "vol1@fast", pool: "fast", up: true });
    expect(pool?.capabilities).toEqual({
      driver: "file",
      thin_provisioning_support: true,
      thick_provisioning_support: false,
      max_over_subscription_ratio: 20,
      reserved_percentage: 5,
      total_capacity_gb: 100,
      free_capacity_gb: 60,
      provisioned_capacity_gb: 300,
      allocated_capacity_gb: 300,
      total_volumes: 12,
      backend_state: "up",
      volume_backend_name: "fast",
      pool_name: "fast",
      multiattach: false,
      QoS_support: false,
    });
  });

  it("names a one-pool backend's pool by the poolName it reports (its VG, Ceph pool or directory)", () => {
    const [pool, ...more] = poolsOf(service("vol1@lvm", { ...fileStats, driver: "lvm", poolName: "cinder-volumes" }));
    expect(more).toEqual([]);
    expect(pool).toMatchObject({ host: "vol1@lvm#cinder-volumes", pool: "cinder-volumes" });
    expect(pool?.capabilities).toMatchObject({ pool_name: "cinder-volumes", volume_backend_name: "lvm" });
  });

  it("says a thick LVM backend supports thick provisioning, and keeps what a backend reports itself", () => {
    const lvm = { ...fileStats, driver: "lvm", thinProvisioning: false, volumeBackendName: "lvm-1", multiattach: true };
    const [pool] = poolsOf(service("vol2@lvm", lvm));
    expect(pool?.capabilities).toMatchObject({
      thin_provisioning_support: false,
      thick_provisioning_support: true,
      volume_backend_name: "lvm-1",
      multiattach: true,
    });
  });

  it("lists each reported pool; a pool inherits its backend's settings but never its capacity", () => {
    const pools = poolsOf(
      service("vol3@rbd", {
        ...fileStats,
        storageProtocol: "ceph",
        pools: [
          { poolName: "volumes", totalCapacityGb: 1000, freeCapacityGb: 900 },
          { poolName: "ssd", totalCapacityGb: 50, freeCapacityGb: 10, maxOverSubscriptionRatio: 2, qosSupport: true },
          { name: "no poolName: skipped" },
        ],
      }),
    );
    expect(pools.map((p) => p.host)).toEqual(["vol3@rbd#volumes", "vol3@rbd#ssd"]);
    expect(pools[0]?.capabilities).toMatchObject({
      pool_name: "volumes",
      storage_protocol: "ceph",
      max_over_subscription_ratio: 20,
      reserved_percentage: 5,
      total_capacity_gb: 1000,
      free_capacity_gb: 900,
      volume_backend_name: "rbd",
    });
    expect(pools[0]?.capabilities.provisioned_capacity_gb).toBeUndefined();
    expect(pools[0]?.capabilities.allocated_capacity_gb).toBe(0);
    expect(pools[0]?.capabilities.total_volumes).toBeUndefined();
    expect(pools[1]?.capabilities).toMatchObject({ max_over_subscription_ratio: 2, QoS_support: true });
  });

  it("carries the service's state", () => {
    const row = { ...service("vol4@file", fileStats), disabled: true, disabledReason: "maintenance", up: false };
    expect(poolsOf(row)[0]).toMatchObject({ disabled: true, disabledReason: "maintenance", up: false, frozen: false });
  });
});

describe("cinderCapabilityName", () => {
  it("maps the reported names, and snake-cases any other", () => {
    expect(
      ["thinProvisioning", "qosSupport", "storageProtocol", "compressionSupport", "replication_enabled"].map(
        cinderCapabilityName,
      ),
    ).toEqual([
      "thin_provisioning_support",
      "QoS_support",
      "storage_protocol",
      "compression_support",
      "replication_enabled",
    ]);
  });
});
