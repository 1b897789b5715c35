import type { ServiceRow } from "@cinderblock/db";
import { type Pool, poolsOf } from "@cinderblock/domain";
import { describe, expect, it } from "vitest";
import {
  availabilityZoneFilter,
  canonicalUuid,
  capabilitiesFilter,
  capacityFilter,
  capacityProblem,
  differentBackendFilter,
  type FilterContext,
  pickBackend,
  retryFilter,
  type ScheduleRequest,
  sameBackendFilter,
  serviceStateFilter,
} from "./filters.js";

function service(
  host: string,
  capabilities: Record<string, unknown>,
  availabilityZone = "nova",
  state: Partial<Pick<ServiceRow, "disabled" | "disabledReason" | "frozen">> & { up?: boolean } = {},
): ServiceRow & { up: boolean } {
  const now = new Date();
  return {
    host,
    hostName: host.split("@")[0] ?? host,
    backend: host.split("@")[1] ?? "",
    availabilityZone,
    disabled: false,
    disabledReason: "",
    frozen: false,
    heartbeatAt: now,
    capabilities,
    grpcAddress: "",
    createdAt: now,
    updatedAt: now,
    up: true,
    ...state,
  };
}

/** A pool with capabilities under Cinder's names (as Cinder's FakeBackendState takes them). */
function pool(host: string, capabilities: Record<string, unknown>, extra: Partial<Pool> = {}): Pool {
  const [backendHost = host, poolName = ""] = host.split("#");
  const row = service(backendHost, {});
  return {
    host,
    backendHost,
    hostName: backendHost.split("@")[0] ?? backendHost,
    backend: backendHost.split("@")[1] ?? "",
    pool: poolName,
    availabilityZone: "nova",
    disabled: false,
    disabledReason: "",
    frozen: false,
    up: true,
    capabilities,
    service: row,
    ...extra,
  };
}

const request = (extra: Partial<ScheduleRequest> = {}): ScheduleRequest => ({
  sizeGb: 1,
  availabilityZone: "",
  extraSpecs: {},
  hints: {},
  ...extra,
});

const noVolumes: FilterContext = { volumeHost: () => undefined };

describe("capacityFilter, Cinder's CapacityFilterTestCase", () => {
  const passes = (caps: Record<string, unknown>, sizeGb: number, extraSpecs: Record<string, string> = {}) =>
    capacityFilter(pool("host1@b#p", caps), request({ sizeGb, extraSpecs }), noVolumes) === undefined;

  it("passes a thick backend with room, fails one whose free space is short (test_filter_passes, test_filter_fails)", () => {
    expect(passes({ total_capacity_gb: 500, free_capacity_gb: 200 }, 100)).toBe(true);
    // floor(200 × 20%) = 40 reserved; min(free 120, 200 − 40 − 0) = 120 < 121.
    expect(passes({ total_capacity_gb: 200, free_capacity_gb: 120, reserved_percentage: 20 }, 121)).toBe(false);
    expect(passes({ total_capacity_gb: 200, free_capacity_gb: 120, reserved_percentage: 20 }, 120)).toBe(true);
  });

  it("fails without a free capacity, passes 0 GiB (test_filter_fails_free_capacity_None, test_filter_with_size_0)", () => {
    expect(passes({ total_capacity_gb: 500 }, 100)).toBe(false);
    const thin = {
      total_capacity_gb: 500,
      free_capacity_gb: 200,
      provisioned_capacity_gb: 1500,
      max_over_subscription_ratio: 2.0,
      reserved_percentage: 5,
      thin_provisioning_support: true,
    };
    expect(passes(thin, 0)).toBe(true);
  });

  it("trusts infinite and unknown free capacity; an unknown total only without a reserve (test_filter_passes_infinite ... test_filter_fails_total_unknown)", () => {
    expect(passes({ free_capacity_gb: "infinite" }, 100)).toBe(true);
    expect(passes({ free_capacity_gb: "unknown" }, 100)).toBe(true);
    expect(passes({ free_capacity_gb: 100, total_capacity_gb: "infinite", reserved_percentage: 0 }, 100)).toBe(true);
    expect(passes({ free_capacity_gb: 100, total_capacity_gb: "unknown", reserved_percentage: 0 }, 100)).toBe(true);
    expect(passes({ free_capacity_gb: 100, total_capacity_gb: "infinite", reserved_percentage: 5 }, 100)).toBe(false);
    expect(passes({ free_capacity_gb: 100, total_capacity_gb: "unknown", reserved_percentage: 5 }, 100)).toBe(false);
  });

  it("fails a zero total (test_filter_fails_total_zero)", () => {
    expect(passes({ total_capacity_gb: 0, free_capacity_gb: 0, reserved_percentage: 5 }, 100)).toBe(false);
  });

  // [Cinder's test, size, total, free, provisioned, max_over_subscription_ratio, reserved %, thin support, passes]
  const cases: [string, number, number, number, number, number, number, boolean, boolean][] = [
    ["test_filter_thin_true_passes", 100, 500, 200, 500, 2.0, 5, true, true],
    ["test_filter_thin_true_passes2", 2400, 500, 200, 7000, 20, 5, true, true],
    ["test_filter_thin_false_passes", 100, 500, 200, 300, 1.0, 5, false, true],
    ["test_filter_over_subscription_less_than_1", 200, 500, 100, 400, 0.8, 0, true, false],
    ["test_filter_over_subscription_equal_to_1", 150, 500, 200, 400, 1.0, 0, true, false],
    ["test_filter_over_subscription_fails", 100, 500, 200, 700, 1.5, 5, true, false],
    ["test_filter_over_subscription_fails2", 2000, 500, 30, 9000, 20, 0, true, false],
    ["test_filter_reserved_thin_true_fails", 100, 500, 100, 1000, 2.0, 5, true, false],
    ["test_filter_reserved_thin_false_fails", 100, 500, 100, 400, 1.0, 5, false, false],
    ["test_filter_reserved_thin_thick_true_fails", 151, 500, 0, 800, 2.0, 5, true, false],
    ["test_filter_reserved_thin_thick_true_passes", 100, 500, 125, 400, 2.0, 5, true, true],
    ["test_filter_reserved_thin_true_passes", 100, 500, 80, 600, 2.0, 5, true, true],
    ["test_filter_reserved_thin_thick_true_fails2", 100, 500, 99, 1000, 2.0, 5, true, false],
    ["test_filter_reserved_thin_thick_true_passes2", 100, 500, 100, 400, 2.0, 0, true, true],
  ];
  it.each(cases)("%s", (_name, size, total, free, provisioned, ratio, reserved, thin, expected) => {
    const caps = {
      total_capacity_gb: total,
      free_capacity_gb: free,
      provisioned_capacity_gb: provisioned,
      max_over_subscription_ratio: ratio,
      reserved_percentage: reserved,
      thin_provisioning_support: thin,
      thick_provisioning_support: !thin,
    };
    expect(passes(caps, size)).toBe(expected);
  });

  it("passes whatever the provisioning type when both fit (test_filter_provisioning_type)", () => {
    const caps = {
      total_capacity_gb: 500,
      free_capacity_gb: 100,
      provisioned_capacity_gb: 400,
      max_over_subscription_ratio: 2.0,
      reserved_percentage: 0,
      thin_provisioning_support: true,
      thick_provisioning_support: true,
    };
    for (const type of ["thick", "thin", undefined]) {
      expect(passes(caps, 100, type ? { "provisioning:type": type } : {})).toBe(true);
    }
  });

  it("judges a thick request on a thin pool by its real free space", () => {
    // Thin: (500 × 2) − 400 = 600 virtual GiB free. Thick: min(free 100, 500 − 400) = 100.
    const caps = {
      total_capacity_gb: 500,
      free_capacity_gb: 100,
      provisioned_capacity_gb: 400,
      max_over_subscription_ratio: 2.0,
      thin_provisioning_support: true,
    };
    expect(passes(caps, 300)).toBe(true);
    expect(passes(caps, 300, { "provisioning:type": "thick" })).toBe(false);
  });

  it("takes a string ratio, `auto`, and the default 20 when none is reported (calculate_max_over_subscription_ratio)", () => {
    const thin = { total_capacity_gb: 100, free_capacity_gb: 100, thin_provisioning_support: true };
    expect(passes({ ...thin, max_over_subscription_ratio: "1.5" }, 150)).toBe(true);
    expect(passes({ ...thin, max_over_subscription_ratio: "1.5" }, 151)).toBe(false);
    expect(passes(thin, 2000)).toBe(true);
    expect(passes(thin, 2001)).toBe(false);
    // auto with 90 GiB provisioned, 10 GiB used: ratio 1 + 90 / 11 = 9.18, virtual free 100 × 9.18 − 90 = 828.18.
    const auto = { ...thin, free_capacity_gb: 90, provisioned_capacity_gb: 90, max_over_subscription_ratio: "auto" };
    expect(passes(auto, 828)).toBe(true);
    expect(passes(auto, 829)).toBe(false);
  });

  it("says why", () => {
    const reason = (caps: Record<string, unknown>, sizeGb: number) =>
      capacityFilter(pool("h@b#p", caps), request({ sizeGb }), noVolumes);
    expect(reason({ total_capacity_gb: 100, free_capacity_gb: 30, reserved_percentage: 10 }, 31)).toBe(
      "has 30 GiB free, 31 GiB needed",
    );
    expect(
      reason(
        {
          total_capacity_gb: 100,
          free_capacity_gb: 50,
          provisioned_capacity_gb: 1900,
          thin_provisioning_support: true,
        },
        101,
      ),
    ).toBe("has 100 GiB of virtual free capacity, 101 GiB needed");
    // NOTE: Cinder divides by the over-subscribed capacity and compares with the ratio again, so
    // this check only bites far past the virtual free capacity (kept as Cinder has it).
    expect(
      reason(
        {
          total_capacity_gb: 100,
          free_capacity_gb: 50,
          provisioned_capacity_gb: 50000,
          thin_provisioning_support: true,
        },
        1,
      ),
    ).toBe("would pass its over-subscription ratio: (50000 GiB provisioned + 1 GiB) / 2000 GiB = 25.00 > 20");
    expect(reason({ total_capacity_gb: 0, free_capacity_gb: 0 }, 1)).toBe("has a total capacity of 0 GiB");
  });
});

describe("capabilitiesFilter, Cinder's BasicFiltersTestCase", () => {
  const passes = (caps: Record<string, unknown>, extraSpecs: Record<string, string>) =>
    capabilitiesFilter(pool("host1@b#p", { enabled: true, ...caps }), request({ extraSpecs }), noVolumes) === undefined;

  // [Cinder's test, capabilities, extra specs, passes]
  const cases: [string, Record<string, unknown>, Record<string, string>, boolean][] = [
    ["passes_extra_specs_simple", { opt1: "1", opt2: "2" }, { opt1: "1", opt2: "2" }, true],
    ["fails_extra_specs_simple", { opt1: "1", opt2: "2" }, { opt1: "1", opt2: "222" }, false],
    ["passes_extra_specs_complex", { opt1: 10, opt2: 5 }, { opt1: ">= 2", opt2: "<= 8" }, true],
    ["fails_extra_specs_complex", { opt1: 10, opt2: 5 }, { opt1: ">= 2", opt2: ">= 8" }, false],
    ["passes_extra_specs_list_simple", { opt1: ["1", "2"], opt2: "2" }, { opt1: "1", opt2: "2" }, true],
    [
      "passes_extra_specs_list_complex (True)",
      { opt1: [true, false], opt2: ["1", "2"] },
      { opt1: "<is> True", opt2: "<= 8" },
      true,
    ],
    [
      "passes_extra_specs_list_complex (False)",
      { opt1: [true, false], opt2: ["1", "2"] },
      { opt1: "<is> False", opt2: "<= 8" },
      true,
    ],
    ["fails_extra_specs_list_simple", { opt1: ["1", "2"], opt2: ["2"] }, { opt1: "3", opt2: "2" }, false],
    [
      "fails_extra_specs_list_complex",
      { opt1: [true, false], opt2: ["1", "2"] },
      { opt1: "fake", opt2: "<= 8" },
      false,
    ],
    ["passes_scope_extra_specs", { scope_lv1: { opt1: 10 } }, { "capabilities:scope_lv1:opt1": ">= 2" }, true],
    [
      "passes_fakescope_extra_specs",
      { scope_lv1: { opt1: 10 }, opt2: 5 },
      { "scope_lv1:opt1": "= 2", opt2: ">= 3" },
      true,
    ],
    ["fails_scope_extra_specs", { scope_lv1: { opt1: 10 } }, { "capabilities:scope_lv1:opt1": "<= 2" }, false],
    [
      "passes_multi_level_scope_extra_specs",
      { scope_lv0: { scope_lv1: { scope_lv2: { opt1: 10 } } } },
      { "capabilities:scope_lv0:scope_lv1:scope_lv2:opt1": ">= 2" },
      true,
    ],
    [
      "fails_unenough_level_scope_extra_specs",
      { scope_lv0: { scope_lv1: null } },
      { "capabilities:scope_lv0:scope_lv1:scope_lv2:opt1": ">= 2" },
      false,
    ],
    ["fails_wrong_scope_extra_specs", { scope_lv0: { opt1: 10 } }, { "capabilities:scope_lv1:opt1": ">= 2" }, false],
    ["fails_none_caps", { scope_lv0: { opt1: null } }, { "capabilities:scope_lv0:opt1": "foo" }, false],
    [
      "passes_multi_level_scope_extra_specs_list",
      { scope_lv0: { scope_lv1: { scope_lv2: { opt1: [true, false] } } } },
      { "capabilities:scope_lv0:scope_lv1:scope_lv2:opt1": "<is> True" },
      true,
    ],
    [
      "fails_multi_level_scope_extra_specs_list",
      { scope_lv0: { scope_lv1: { scope_lv2: { opt1: [true, false], opt2: ["1", "2"] } } } },
      {
        "capabilities:scope_lv0:scope_lv1:scope_lv2:opt1": "<is> True",
        "capabilities:scope_lv0:scope_lv1:scope_lv2:opt2": "3",
      },
      false,
    ],
    [
      "fails_wrong_scope_extra_specs_list",
      { scope_lv0: { opt1: [true, false] } },
      { "capabilities:scope_lv1:opt1": "<is> True" },
      false,
    ],
  ];
  it.each(cases)("test_capability_filter_%s", (_name, caps, extraSpecs, expected) => {
    expect(passes(caps, extraSpecs)).toBe(expected);
  });

  it("passes a type without extra specs", () => {
    expect(passes({}, {})).toBe(true);
  });
});

describe("capabilitiesFilter on what our volume hosts report", () => {
  const file = service("vol1@fast", {
    driver: "file",
    thinProvisioning: true,
    maxOverSubscriptionRatio: 20,
    reservedPercentage: 0,
    totalCapacityGb: 100,
    freeCapacityGb: 80,
    provisionedCapacityGb: 20,
    totalVolumes: 2,
    backendState: "up",
  });
  const lvm = service("vol2@slow", { ...file.capabilities, driver: "lvm", thinProvisioning: false });
  const [filePool] = poolsOf(file);
  const [lvmPool] = poolsOf(lvm);
  const reason = (p: Pool | undefined, extraSpecs: Record<string, string>) =>
    p && capabilitiesFilter(p, request({ extraSpecs }), noVolumes);

  it("matches Cinder's snake_case names against the camelCase report", () => {
    const thin = { thin_provisioning_support: "<is> True" };
    expect(reason(filePool, thin)).toBeUndefined();
    expect(reason(lvmPool, thin)).toBe(
      "reports thin_provisioning_support=false, extra spec thin_provisioning_support asks for '<is> True'",
    );
    expect(reason(lvmPool, { "capabilities:thick_provisioning_support": "<is> True" })).toBeUndefined();
    expect(reason(filePool, { volume_backend_name: "fast" })).toBeUndefined();
    expect(reason(lvmPool, { volume_backend_name: "fast" })).toBe(
      `reports volume_backend_name="slow", extra spec volume_backend_name asks for 'fast'`,
    );
    expect(reason(filePool, { driver: "<or> file <or> rbd", total_capacity_gb: ">= 100" })).toBeUndefined();
  });

  it("ignores keys of other scopes and names a capability the backend does not report", () => {
    expect(
      reason(filePool, {
        "qos:maxIOPS": "500",
        "provisioning:type": "thin",
        "vendor:feature": "x",
        multiattach: "<is> False",
      }),
    ).toBeUndefined();
    expect(reason(filePool, { storage_protocol: "iSCSI" })).toBe(
      "does not report capability storage_protocol (extra spec storage_protocol)",
    );
  });
});

describe("availabilityZoneFilter (Cinder's test_availability_zone_filter_*)", () => {
  const p = pool("host1@b#p", {}, { availabilityZone: "nova" });
  it("passes the same zone or no zone asked, rejects another", () => {
    expect(availabilityZoneFilter(p, request({ availabilityZone: "nova" }), noVolumes)).toBeUndefined();
    expect(availabilityZoneFilter(p, request({ availabilityZone: "" }), noVolumes)).toBeUndefined();
    expect(availabilityZoneFilter(p, request({ availabilityZone: "bad" }), noVolumes)).toBe(
      "in availability zone nova, not bad",
    );
  });
});

describe("serviceStateFilter and retryFilter", () => {
  it("rejects disabled (with the reason given), frozen and silent backends", () => {
    const reason = (extra: Partial<Pool>) => serviceStateFilter(pool("h@b#p", {}, extra), request(), noVolumes);
    expect(reason({})).toBeUndefined();
    expect(reason({ disabled: true, disabledReason: "disk swap" })).toBe("disabled: disk swap");
    expect(reason({ disabled: true })).toBe("disabled");
    expect(reason({ frozen: true })).toBe("frozen");
    expect(reason({ up: false })).toBe("down (no recent heartbeat)");
  });

  it("rejects pools already tried, by pool or by backend (Cinder's test_ignore_attempted_hosts_filter_*)", () => {
    const p = pool("host1@b#p", {});
    expect(retryFilter(p, request(), noVolumes)).toBeUndefined();
    expect(retryFilter(p, request({ excludeHosts: ["host2@b#p"] }), noVolumes)).toBeUndefined();
    expect(retryFilter(p, request({ excludeHosts: ["host1@b#p"] }), noVolumes)).toBe("already tried for this volume");
    expect(retryFilter(p, request({ excludeHosts: ["host1@b"] }), noVolumes)).toBe("already tried for this volume");
  });
});

describe("affinity filters, Cinder's AffinityFilterTestCase", () => {
  const ids = {
    a: "0b8b9d6e-86c1-4f3b-8b27-cc28a5c4f0a1",
    b: "1d2e6c6a-2b5d-4a4f-9a85-9bb0b2c7f3b2",
    gone: "2f7f3d4c-3e6a-4b1c-8d9e-0c1d2e3f4a5b",
  };
  const context = (hosts: Record<string, string>): FilterContext => ({ volumeHost: (id) => hosts[id] });
  const same = (p: Pool, sameHost: string[], hosts: Record<string, string>) =>
    sameBackendFilter(p, request({ hints: { sameHost } }), context(hosts)) === undefined;
  const different = (p: Pool, differentHost: string[], hosts: Record<string, string>) =>
    differentBackendFilter(p, request({ hints: { differentHost } }), context(hosts)) === undefined;
  const pool0 = pool("host1@b#pool0", {});

  it("different_host: passes another pool, fails its own (test_different_filter_passes, _fails)", () => {
    expect(different(pool0, [ids.a], { [ids.a]: "host1@b#pool1" })).toBe(true);
    expect(different(pool0, [ids.a], { [ids.a]: "host1@b#pool0" })).toBe(false);
    expect(
      differentBackendFilter(
        pool0,
        request({ hints: { differentHost: [ids.a] } }),
        context({ [ids.a]: "host1@b#pool0" }),
      ),
    ).toBe(`holds volume ${ids.a} of scheduler hint different_host`);
  });

  it("different_host: ignores a deleted volume and takes several (test_different_filter_handles_deleted_instance, _multiple_uuids)", () => {
    expect(different(pool0, [ids.gone], {})).toBe(true);
    expect(different(pool0, [ids.a, ids.b], { [ids.a]: "host1@b#pool1", [ids.b]: "host1@b#pool3" })).toBe(true);
    expect(different(pool0, [], {})).toBe(true);
  });

  it("refuses a hint that is no volume id (test_*_filter_fail_nonuuid_hint, test_different_filter_handles_invalid_uuids)", () => {
    expect(different(pool0, ["NOT-a-valid-UUID"], {})).toBe(false);
    expect(different(pool0, [ids.a, "NOT-a-valid-UUID"], { [ids.a]: "host2@b#p" })).toBe(false);
    expect(same(pool0, ["NOT-a-valid-UUID"], {})).toBe(false);
    expect(sameBackendFilter(pool0, request({ hints: { sameHost: ["x"] } }), noVolumes)).toBe(
      'scheduler hint same_host holds "x", not a volume id',
    );
  });

  it("same_host: passes its own pool, fails another or a deleted volume (test_same_filter_passes, _fails, _handles_deleted_instance)", () => {
    expect(same(pool0, [ids.a], { [ids.a]: "host1@b#pool0" })).toBe(true);
    expect(same(pool0, [ids.a], { [ids.a]: "host1@b#pool1" })).toBe(false);
    expect(same(pool0, [ids.gone], {})).toBe(false);
    expect(same(pool0, [], {})).toBe(true);
  });

  it("same_host: passes when any listed volume is here (test_same_filter_vol_list_pass)", () => {
    const p = pool("host1@b#b", {});
    expect(same(p, [ids.a, ids.b], { [ids.a]: "host1@b#b", [ids.b]: "host2@b#b" })).toBe(true);
  });

  it("same_host: a volume recorded without its pool is on every pool of its backend (unlike test_same_filter_legacy_vol_fails)", () => {
    expect(same(pool0, [ids.a], { [ids.a]: "host1@b" })).toBe(true);
    expect(same(pool0, [ids.a], { [ids.a]: "host1@c" })).toBe(false);
    expect(different(pool0, [ids.a], { [ids.a]: "host1@b" })).toBe(false);
  });

  it("reads UUIDs as Cinder's is_uuid_like does", () => {
    expect(canonicalUuid("0B8B9D6E86C14F3B8B27CC28A5C4F0A1")).toBe(ids.a);
    expect(canonicalUuid(`{${ids.a}}`)).toBe(ids.a);
    expect(canonicalUuid(`urn:uuid:${ids.a}`)).toBe(ids.a);
    expect(canonicalUuid(`${ids.a}0`)).toBeUndefined();
    expect(canonicalUuid("vol-1")).toBeUndefined();
  });
});

const thick = { totalCapacityGb: 100, freeCapacityGb: 30, reservedPercentage: 10, thinProvisioning: false };

describe("pickBackend", () => {
  it("filters by availability zone and capacity, then prefers the most free space", () => {
    const candidates = [
      service("small@file", { ...thick, freeCapacityGb: 15 }),
      service("big@file", { ...thick, freeCapacityGb: 80 }),
      service("mid@file", { ...thick, freeCapacityGb: 50 }),
      service("far@file", { ...thick, freeCapacityGb: 99 }, "az2"),
    ];
    const choice = pickBackend(candidates, request({ sizeGb: 20, availabilityZone: "nova" }));
    expect(choice.service?.host).toBe("big@file");
    expect(choice.pool?.host).toBe("big@file#file");
    expect(choice.weighed.map((w) => w.pool.host)).toEqual(["big@file#file", "mid@file#file"]);
    expect(choice.reasons).toEqual([
      "small@file#file: has 15 GiB free, 20 GiB needed",
      "far@file#file: in availability zone az2, not nova",
    ]);
    expect(pickBackend(candidates, request({ sizeGb: 10, availabilityZone: "az2" })).service?.host).toBe("far@file");
  });

  it("lists every backend and why it was rejected", () => {
    const type = { volume_backend_name: "gold" };
    const choice = pickBackend(
      [
        service("a@file", { ...thick, freeCapacityGb: 80 }),
        service("b@gold", thick),
        service("c@gold", thick, "nova", { disabled: true, disabledReason: "maintenance" }),
        service("d@gold", thick, "nova", { frozen: true }),
        service("e@gold", thick, "nova", { up: false }),
        service("f@gold", thick, "az2"),
      ],
      request({ sizeGb: 35, availabilityZone: "nova", extraSpecs: type }),
    );
    expect(choice.service).toBeUndefined();
    expect(choice.reasons).toEqual([
      `a@file#file: reports volume_backend_name="file", extra spec volume_backend_name asks for 'gold'`,
      // Cinder's thick arithmetic: min(free 30, total 100 − floor(10%) − provisioned 0) = 30.
      "b@gold#gold: has 30 GiB free, 35 GiB needed",
      "c@gold#gold: disabled: maintenance",
      "d@gold#gold: frozen",
      "e@gold#gold: down (no recent heartbeat)",
      "f@gold#gold: in availability zone az2, not nova",
    ]);
    expect(choice.rejected[1]).toEqual({
      host: "b@gold#gold",
      filter: "CapacityFilter",
      reason: "has 30 GiB free, 35 GiB needed",
    });
    expect(choice.waitable).toBe(false);
  });

  it("picks the backend a type's extra specs ask for, even with less room", () => {
    const candidates = [
      service("vol1@fast", {
        ...thick,
        freeCapacityGb: 40,
        provisionedCapacityGb: 60,
        thinProvisioning: true,
        maxOverSubscriptionRatio: 1,
      }),
      service("vol2@cheap", { ...thick, freeCapacityGb: 90 }),
    ];
    expect(pickBackend(candidates, request()).service?.host).toBe("vol2@cheap");
    const thin = request({ extraSpecs: { thin_provisioning_support: "<is> True" } });
    expect(pickBackend(candidates, thin).service?.host).toBe("vol1@fast");
    const named = request({ extraSpecs: { volume_backend_name: "fast" } });
    expect(pickBackend(candidates, named).service?.host).toBe("vol1@fast");
  });

  it("schedules per pool: the pool with room and the most free space wins", () => {
    const rbd = service("vol3@rbd", {
      ...thick,
      pools: [
        { poolName: "small", totalCapacityGb: 10, freeCapacityGb: 5 },
        { poolName: "big", totalCapacityGb: 1000, freeCapacityGb: 700 },
        { poolName: "mid", totalCapacityGb: 1000, freeCapacityGb: 300 },
      ],
    });
    const choice = pickBackend([rbd], request({ sizeGb: 20 }));
    expect(choice.pool?.host).toBe("vol3@rbd#big");
    expect(choice.service?.host).toBe("vol3@rbd");
    expect(choice.reasons).toEqual(["vol3@rbd#small: has 5 GiB free, 20 GiB needed"]);
  });

  it("retries elsewhere: a host already tried is skipped", () => {
    const candidates = [service("a@file", { ...thick, freeCapacityGb: 80 }), service("b@file", thick)];
    const choice = pickBackend(candidates, request({ excludeHosts: ["a@file"] }));
    expect(choice.service?.host).toBe("b@file");
    expect(choice.reasons).toEqual(["a@file#file: already tried for this volume"]);
  });

  it("follows affinity hints through the volumes' hosts", () => {
    const id = "0b8b9d6e-86c1-4f3b-8b27-cc28a5c4f0a1";
    const candidates = [service("a@file", { ...thick, freeCapacityGb: 80 }), service("b@file", thick)];
    const volumeHost = (v: string) => (v === id ? "b@file" : undefined);
    expect(pickBackend(candidates, request({ hints: { sameHost: [id] } }), { volumeHost }).service?.host).toBe(
      "b@file",
    );
    expect(pickBackend(candidates, request({ hints: { differentHost: [id] } }), { volumeHost }).service?.host).toBe(
      "a@file",
    );
  });

  it("weighs with the multipliers given: a negative capacity multiplier stacks", () => {
    const candidates = [service("a@file", { ...thick, freeCapacityGb: 80 }), service("b@file", thick)];
    expect(pickBackend(candidates, request()).service?.host).toBe("a@file");
    expect(
      pickBackend(candidates, request(), { multipliers: { capacity: -1, allocatedCapacity: 0 } }).service?.host,
    ).toBe("b@file");
  });

  it("skips a backend that reports itself down, and says a later report may help", () => {
    const down = service("a@file", { ...thick, totalCapacityGb: 0, freeCapacityGb: 0, backendState: "down" });
    const choice = pickBackend([down], request({ availabilityZone: "nova" }));
    expect(choice).toMatchObject({
      pool: undefined,
      reasons: ["a@file#file: has not reported up (its backend reports down)"],
      waitable: true,
    });
    // A cold start: no backend has reported at all yet.
    expect(pickBackend([], request({ availabilityZone: "nova" })).waitable).toBe(true);
  });

  it("does not call a zone nobody serves waitable while other backends are up", () => {
    const choice = pickBackend([service("a@file", thick)], request({ availabilityZone: "nowhere" }));
    expect(choice.service).toBeUndefined();
    expect(choice.waitable).toBe(false);
  });

  it("counts a disabled backend as absent (alone: a cold start), and does not wait when one in the zone is up but full", () => {
    const coming = { ...thick, backendState: "down" };
    expect(pickBackend([service("a@file", coming, "nova", { disabled: true })], request()).waitable).toBe(true);
    expect(
      pickBackend(
        [service("a@file", coming, "nova", { disabled: true }), service("b@file", thick)],
        request({ sizeGb: 500 }),
      ).waitable,
    ).toBe(false);
  });

  it("fails at once, naming the operator's reason, when the only backends that reported up are disabled or frozen", () => {
    const disabled = pickBackend(
      [service("a@file", thick, "nova", { disabled: true, disabledReason: "disk swap" })],
      request(),
    );
    expect(disabled).toMatchObject({ waitable: false, reasons: ["a@file#file: disabled: disk swap"] });
    const frozen = pickBackend([service("a@file", thick, "nova", { frozen: true })], request());
    expect(frozen).toMatchObject({ waitable: false, reasons: ["a@file#file: frozen"] });
  });
});

describe("capacityProblem (a snapshot on its volume's backend)", () => {
  const rbd = service("vol3@rbd", {
    ...thick,
    pools: [
      { poolName: "small", totalCapacityGb: 10, freeCapacityGb: 5 },
      { poolName: "big", totalCapacityGb: 1000, freeCapacityGb: 700 },
    ],
  });

  it("checks the volume's pool, or any pool when the volume does not record one", () => {
    expect(capacityProblem(rbd, 20, "vol3@rbd#big")).toBeUndefined();
    expect(capacityProblem(rbd, 20, "vol3@rbd#small")).toBe("vol3@rbd#small: has 5 GiB free, 20 GiB needed");
    expect(capacityProblem(rbd, 20, "vol3@rbd")).toBeUndefined();
    expect(capacityProblem(rbd, 2000, "vol3@rbd")).toBe("vol3@rbd#small: has 5 GiB free, 2000 GiB needed");
    expect(capacityProblem(rbd, 20, "vol3@rbd#gone")).toBe("backend vol3@rbd reports no pool gone");
  });

  it("fits a thick backend to min(free, total − reserved − provisioned), and refuses one that never reported", () => {
    expect(capacityProblem(service("a@file", thick), 30)).toBeUndefined();
    expect(capacityProblem(service("a@file", thick), 31)).toBe("a@file#file: has 30 GiB free, 31 GiB needed");
    expect(capacityProblem(service("n@file", {}), 1)).toBe("n@file#file: has not reported its capacity");
  });
});
