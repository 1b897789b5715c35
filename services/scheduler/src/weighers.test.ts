import type { ServiceRow } from "@cinderblock/db";
import type { Pool } from "@cinderblock/domain";
import { describe, expect, it } from "vitest";
import { allocatedCapacityWeights, capacityWeights, normalize, weighPools } from "./weighers.js";

function pool(host: string, capabilities: Record<string, unknown>): Pool {
  const backendHost = host.split("#")[0] ?? host;
  return {
    host,
    backendHost,
    hostName: backendHost.split("@")[0] ?? backendHost,
    backend: backendHost.split("@")[1] ?? "",
    pool: host.split("#")[1] ?? "",
    availabilityZone: "nova",
    disabled: false,
    disabledReason: "",
    frozen: false,
    up: true,
    capabilities,
    service: {} as ServiceRow,
  };
}

/** Cinder's fake hosts (cinder/tests/unit/scheduler/fakes.py, FakeHostManager.service_states). */
const cinderHosts: Record<string, Record<string, unknown>> = {
  host1: {
    total_capacity_gb: 1024,
    free_capacity_gb: 1024,
    allocated_capacity_gb: 0,
    provisioned_capacity_gb: 0,
    max_over_subscription_ratio: "1.0",
    thin_provisioning_support: false,
    thick_provisioning_support: true,
    reserved_percentage: 10,
  },
  host2: {
    total_capacity_gb: 2048,
    free_capacity_gb: 300,
    allocated_capacity_gb: 1748,
    provisioned_capacity_gb: 1748,
    max_over_subscription_ratio: "1.5",
    thin_provisioning_support: true,
    thick_provisioning_support: false,
    reserved_percentage: 10,
  },
  host3: {
    total_capacity_gb: 512,
    free_capacity_gb: 256,
    allocated_capacity_gb: 256,
    provisioned_capacity_gb: 256,
    max_over_subscription_ratio: "2.0",
    thin_provisioning_support: false,
    thick_provisioning_support: true,
    reserved_percentage: 0,
  },
  host4: {
    total_capacity_gb: 2048,
    free_capacity_gb: 200,
    allocated_capacity_gb: 1848,
    provisioned_capacity_gb: 2047,
    max_over_subscription_ratio: "1.0",
    thin_provisioning_support: true,
    thick_provisioning_support: false,
    reserved_percentage: 5,
  },
  host5: {
    total_capacity_gb: "infinite",
    free_capacity_gb: "unknown",
    allocated_capacity_gb: 1548,
    provisioned_capacity_gb: 1548,
    max_over_subscription_ratio: "1.0",
    thin_provisioning_support: true,
    thick_provisioning_support: false,
    reserved_percentage: 5,
  },
};

const hosts = (states = cinderHosts) => Object.entries(states).map(([name, caps]) => pool(`${name}@lvm#lvm`, caps));
const short = (host: string) => host.split("@")[0];
const noType = { extraSpecs: {} };
const thickType = { extraSpecs: { "provisioning:type": "thick" } };

describe("CapacityWeigher, Cinder's CapacityWeigherTestCase", () => {
  const best = (multiplier: number, request = noType, states = cinderHosts) => {
    const [first] = weighPools(hosts(states), request, { capacity: multiplier, allocatedCapacity: 0 });
    return { host: first && short(first.pool.host), weight: first?.weight };
  };

  it("spreads by default: the most virtual free capacity wins (test_default_of_spreading_first)", () => {
    // Virtual free: host1 922 (thick), host2 (2048 − 204) × 1.5 − 1748 = 1018, host3 256, host4 −101, host5 −1.
    expect(capacityWeights(hosts(), noType, 1).map((w) => w.toFixed(4))).toEqual(
      [(922 + 101) / 1119, 1, (256 + 101) / 1119, 0, 100 / 1119].map((w) => w.toFixed(4)),
    );
    expect(best(1)).toEqual({ host: "host2", weight: 1 });
    expect(best(1, { extraSpecs: { "provisioning:type": "thin" } })).toEqual({ host: "host2", weight: 1 });
    // Thick: host2 counts min(free 300, 1844 − 1748) = 96, so host1 wins.
    expect(best(1, thickType)).toEqual({ host: "host1", weight: 1 });
  });

  it("stacks with a negative multiplier; an unknown capacity is the worst (test_capacity_weight_multiplier1)", () => {
    expect(best(-1)).toEqual({ host: "host4", weight: 0 });
    expect(best(-1, thickType)).toEqual({ host: "host4", weight: 0 });
    const weighed = weighPools(hosts(), noType, { capacity: -1, allocatedCapacity: 0 });
    expect(weighed.at(-1)).toMatchObject({ weight: -1 });
    expect(short(weighed.at(-1)?.pool.host ?? "")).toBe("host5");
  });

  it("scales with the multiplier (test_capacity_weight_multiplier2)", () => {
    expect(best(2)).toEqual({ host: "host2", weight: 2 });
    expect(best(2, thickType)).toEqual({ host: "host1", weight: 2 });
  });

  it("without unknown or infinite capacity, stacking ranks host4 first and host2 last (test_capacity_weight_no_unknown_or_infinite)", () => {
    const { host5: _, ...four } = cinderHosts;
    const weighed = weighPools(hosts(four), noType, { capacity: -1, allocatedCapacity: 0 });
    expect(weighed.map((w) => [short(w.pool.host), Number(w.weight.toFixed(4))])).toEqual([
      ["host4", 0],
      ["host3", Number((-(256 + 101) / 1119).toFixed(4))],
      ["host1", Number((-(922 + 101) / 1119).toFixed(4))],
      ["host2", -1],
    ]);
  });

  it("puts a backend with an unknown free or total capacity last when stacking (test_capacity_weight_free_unknown, _cap_unknown)", () => {
    const common = {
      allocated_capacity_gb: 1548,
      provisioned_capacity_gb: 1548,
      max_over_subscription_ratio: 1.0,
      thin_provisioning_support: true,
      reserved_percentage: 5,
    };
    for (const host5 of [
      { ...common, total_capacity_gb: 3000, free_capacity_gb: "unknown" },
      { ...common, total_capacity_gb: "unknown", free_capacity_gb: 3000 },
      { ...common, total_capacity_gb: 3000, free_capacity_gb: "infinite" },
    ]) {
      const weighed = weighPools(hosts({ ...cinderHosts, host5 }), noType, { capacity: -1, allocatedCapacity: 0 });
      expect([short(weighed[0]?.pool.host ?? ""), weighed[0]?.weight]).toEqual(["host4", 0]);
      expect([short(weighed.at(-1)?.pool.host ?? ""), weighed.at(-1)?.weight]).toEqual(["host5", -1]);
    }
  });

  it("replaces an infinite weight by the largest finite one plus 100 × their spread, or + 10000 without spread", () => {
    // −1 stacking: host5 weighs +∞; finite ones 922, 1018, 256, −101; max 1018 + 100 × 1119.
    const max = 1018 + 1119 * 100;
    expect(capacityWeights(hosts(), noType, -1)[3]).toBe(0);
    expect(capacityWeights(hosts(), noType, -1)[1]).toBeCloseTo((1018 + 101) / (max + 101), 12);
    const same = { total_capacity_gb: 100, free_capacity_gb: 100 };
    const unknown = { total_capacity_gb: "unknown", free_capacity_gb: 100 };
    const weights = capacityWeights([pool("a@b#b", same), pool("c@b#b", unknown)], noType, -1);
    // Both finite weights equal (100): the infinite one becomes 100 + 10000, normalised to 1.
    expect(weights).toEqual([0, 1]);
    expect(capacityWeights([pool("c@b#b", unknown), pool("d@b#b", unknown)], noType, -1)).toEqual([0, 0]);
  });
});

describe("AllocatedCapacityWeigher, Cinder's AllocatedCapacityWeigherTestCase", () => {
  const best = (multiplier: number) => {
    const [first] = weighPools(hosts(), noType, { capacity: 0, allocatedCapacity: multiplier });
    return { host: first && short(first.pool.host), weight: first?.weight };
  };

  it("prefers the least allocated by default (test_default_of_spreading_first)", () => {
    expect(allocatedCapacityWeights(hosts())).toEqual([0, 1748 / 1848, 256 / 1848, 1, 1548 / 1848]);
    expect(best(-1)).toEqual({ host: "host1", weight: 0 });
  });

  it("prefers the most allocated with a positive multiplier (test_capacity_weight_multiplier1)", () => {
    expect(best(1)).toEqual({ host: "host4", weight: 1 });
  });

  it("scales with the multiplier (test_capacity_weight_multiplier2)", () => {
    expect(best(-2)).toEqual({ host: "host1", weight: 0 });
    const weighed = weighPools(hosts(), noType, { capacity: 0, allocatedCapacity: -2 });
    expect([short(weighed.at(-1)?.pool.host ?? ""), weighed.at(-1)?.weight]).toEqual(["host4", -2]);
  });
});

describe("weighPools", () => {
  // Thick pools of 2000 GiB: virtual free = min(free, 2000 − provisioned).
  const thick = (free: number, allocated: number) => ({
    total_capacity_gb: 2000,
    free_capacity_gb: free,
    provisioned_capacity_gb: allocated,
    allocated_capacity_gb: allocated,
  });

  it("sums each weigher's normalised weight times its multiplier", () => {
    const pools = [pool("a@f#f", thick(100, 0)), pool("b@f#f", thick(300, 900)), pool("c@f#f", thick(200, 300))];
    // Capacity: a 0, b 1, c 0.5. Allocated: a 0, b 1, c 1/3. Sum with 1 and −1: a 0, b 0, c 1/6.
    const weighed = weighPools(pools, noType);
    expect(weighed.map((w) => w.pool.host)).toEqual(["c@f#f", "a@f#f", "b@f#f"]);
    expect(weighed[0]?.weight).toBeCloseTo(1 / 6, 12);
    expect(weighed.map((w) => w.weight).slice(1)).toEqual([0, 0]);
  });

  it("breaks ties by host name, whatever the input order", () => {
    const same = thick(100, 100);
    const pools = [pool("vol3@f#f", same), pool("vol1@f#f", same), pool("vol2@f#f", same)];
    expect(weighPools(pools, noType).map((w) => w.pool.host)).toEqual(["vol1@f#f", "vol2@f#f", "vol3@f#f"]);
    expect(weighPools([], noType)).toEqual([]);
  });

  it("normalises to 0..1, all 0 when every weight is equal (Cinder's normalize)", () => {
    expect(normalize({ weights: [5, 10, 7.5], min: 5, max: 10 })).toEqual([0, 1, 0.5]);
    expect(normalize({ weights: [3, 3], min: 3, max: 3 })).toEqual([0, 0]);
  });
});
