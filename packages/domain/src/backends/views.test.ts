import type { ServiceRow } from "@cinderblock/db";
import { describe, expect, it } from "vitest";
import { activePools, availabilityZones, type ServiceWithState, serviceView } from "./views.js";

const heartbeat = new Date("2026-12-01T10:00:00Z");

function backend(host: string, overrides: Partial<ServiceWithState> = {}): ServiceWithState {
  const row: ServiceRow = {
    host,
    hostName: host.split("@")[0] ?? host,
    backend: host.split("@")[1] ?? "",
    availabilityZone: "nova",
    disabled: false,
    disabledReason: "",
    frozen: false,
    heartbeatAt: heartbeat,
    capabilities: {
      driver: "file",
      thinProvisioning: true,
      totalCapacityGb: 100,
      freeCapacityGb: 60,
      provisionedCapacityGb: 10,
      backendState: "up",
      storageProtocol: "file",
    },
    grpcAddress: "127.0.0.1:1",
    createdAt: heartbeat,
    updatedAt: heartbeat,
  };
  return { ...row, up: true, ...overrides };
}

describe("serviceView (os-services)", () => {
  it("shows a reporting backend as an enabled, up cinder-volume", () => {
    expect(serviceView(backend("vol1@file"))).toEqual({
      binary: "cinder-volume",
      host: "vol1@file",
      zone: "nova",
      status: "enabled",
      state: "up",
      disabledReason: "",
      frozen: false,
      updatedAt: heartbeat,
      heartbeatAt: heartbeat,
      backendState: "up",
    });
  });

  it("shows a silent, disabled, frozen backend as such, with the reason and the later of heartbeat and change", () => {
    const changed = new Date("2026-12-01T11:00:00Z");
    const view = serviceView(
      backend("vol1@file", {
        up: false,
        disabled: true,
        disabledReason: "disk swap",
        frozen: true,
        updatedAt: changed,
        capabilities: { backendState: "down" },
      }),
    );
    expect(view).toMatchObject({
      status: "disabled",
      state: "down",
      disabledReason: "disk swap",
      frozen: true,
      updatedAt: changed,
      heartbeatAt: heartbeat,
      backendState: "down",
    });
  });

  it("hides a stale reason once the backend is enabled", () => {
    expect(serviceView(backend("vol1@file", { disabledReason: "old" })).disabledReason).toBe("");
  });
});

describe("activePools (get_pools)", () => {
  it("lists each pool as host@backend#pool with Cinder-named capabilities", () => {
    const pools = activePools([backend("vol1@file")]);
    expect(pools.map((p) => p.name)).toEqual(["vol1@file#file"]);
    expect(pools[0]?.capabilities).toMatchObject({
      total_capacity_gb: 100,
      free_capacity_gb: 60,
      allocated_capacity_gb: 10,
      thin_provisioning_support: true,
      volume_backend_name: "file",
      storage_protocol: "file",
      pool_name: "file",
    });
  });

  it("leaves out the pools of backends that are down, disabled or frozen (Cinder's host manager does)", () => {
    const rows = [
      backend("a@file"),
      backend("b@file", { up: false }),
      backend("c@file", { disabled: true }),
      backend("d@file", { frozen: true }),
    ];
    expect(activePools(rows).map((p) => p.name)).toEqual(["a@file#file"]);
  });

  it("lists every reported pool of a backend, and filters by name", () => {
    const lvm = backend("vol2@lvm", {
      capabilities: {
        thinProvisioning: true,
        pools: [
          { poolName: "fast", totalCapacityGb: 10, freeCapacityGb: 5 },
          { poolName: "slow", totalCapacityGb: 100, freeCapacityGb: 90 },
        ],
      },
    });
    expect(activePools([lvm]).map((p) => p.name)).toEqual(["vol2@lvm#fast", "vol2@lvm#slow"]);
    expect(activePools([lvm], { name: "vol2@lvm#slow" }).map((p) => p.capabilities.free_capacity_gb)).toEqual([90]);
  });

  it("keeps only the pools a type's extra specs fit, as the scheduler's CapabilitiesFilter", () => {
    const rows = [backend("vol1@file"), backend("vol2@rbd", { capabilities: { thinProvisioning: false } })];
    expect(activePools(rows, { extraSpecs: { volume_backend_name: "rbd" } }).map((p) => p.name)).toEqual([
      "vol2@rbd#rbd",
    ]);
    expect(activePools(rows, { extraSpecs: { thin_provisioning_support: "<is> True" } }).map((p) => p.name)).toEqual([
      "vol1@file#file",
    ]);
    // Scoped keys that are not about capabilities do not filter.
    expect(activePools(rows, { extraSpecs: { "qos:total_iops_sec": "100" } })).toHaveLength(2);
    expect(activePools(rows, { extraSpecs: { volume_backend_name: "nowhere" } })).toEqual([]);
  });
});

describe("availabilityZones (os-availability-zone)", () => {
  it("is available when one of its backends is up and enabled", () => {
    const zones = availabilityZones([
      backend("a@file", { availabilityZone: "nova", disabled: true }),
      backend("b@file", { availabilityZone: "nova" }),
      backend("c@file", { availabilityZone: "east", up: false }),
      backend("d@file", { availabilityZone: "west", disabled: true }),
    ]);
    expect(zones).toEqual([
      { name: "east", available: false },
      { name: "nova", available: true },
      { name: "west", available: false },
    ]);
  });

  it("lists no zone without backends", () => {
    expect(availabilityZones([])).toEqual([]);
  });
});
