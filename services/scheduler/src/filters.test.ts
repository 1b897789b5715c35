import type { ServiceRow } from "@cinderblock/db";
import { describe, expect, it } from "vitest";
import { capacityProblem, pickBackend } from "./filters.js";

function backend(host: string, capabilities: Record<string, unknown>, availabilityZone = "nova"): ServiceRow {
  const now = new Date();
  return {
    host,
    hostName: host.split("@")[0] ?? host,
    backend: "file",
    availabilityZone,
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

const thick = { totalCapacityGb: 100, freeCapacityGb: 30, reservedPercentage: 10, thinProvisioning: false };
const thin = {
  totalCapacityGb: 100,
  freeCapacityGb: 50,
  provisionedCapacityGb: 1900,
  maxOverSubscriptionRatio: 20,
  thinProvisioning: true,
};

describe("capacityProblem", () => {
  it("keeps the reserved share free on thick backends", () => {
    expect(capacityProblem(backend("a@file", thick), 20)).toBeUndefined();
    expect(capacityProblem(backend("a@file", thick), 21)).toBe("backend a@file has 20.00 GiB free, 21 GiB needed");
  });

  it("bounds thin backends by the over-subscription ratio", () => {
    expect(capacityProblem(backend("t@file", thin), 100)).toBeUndefined();
    expect(capacityProblem(backend("t@file", thin), 101)).toContain("over-subscription limit");
  });

  it("refuses a backend that never reported capacity", () => {
    expect(capacityProblem(backend("n@file", {}), 1)).toBe("backend n@file has not reported its capacity");
  });
});

describe("pickBackend", () => {
  it("filters by availability zone and capacity, then prefers the most free space", () => {
    const candidates = [
      backend("small@file", { ...thick, freeCapacityGb: 15 }),
      backend("big@file", { ...thick, freeCapacityGb: 80 }),
      backend("mid@file", { ...thick, freeCapacityGb: 50 }),
      backend("far@file", { ...thick, freeCapacityGb: 99 }, "az2"),
    ];
    expect(pickBackend(candidates, { sizeGb: 10, availabilityZone: "nova" }).host?.host).toBe("big@file");
    expect(pickBackend(candidates, { sizeGb: 10, availabilityZone: "az2" }).host?.host).toBe("far@file");
  });

  it("explains why no backend fits", () => {
    const choice = pickBackend([backend("a@file", thick)], { sizeGb: 500, availabilityZone: "nova" });
    expect(choice.host).toBeUndefined();
    expect(choice.reasons).toEqual(["backend a@file has 20.00 GiB free, 500 GiB needed"]);
    expect(choice.waitable).toBe(false);
  });

  it("skips a backend that reports itself down, and says a later report may help", () => {
    const down = backend("a@file", { ...thick, totalCapacityGb: 0, freeCapacityGb: 0, backendState: "down" });
    const choice = pickBackend([down], { sizeGb: 1, availabilityZone: "nova" });
    expect(choice).toEqual({ host: undefined, reasons: ["backend a@file has not reported up"], waitable: true });
    // A cold start: no backend has reported at all yet.
    expect(pickBackend([], { sizeGb: 1, availabilityZone: "nova" }).waitable).toBe(true);
  });

  it("does not call a zone nobody serves waitable while other backends are up", () => {
    const choice = pickBackend([backend("a@file", thick)], { sizeGb: 1, availabilityZone: "nowhere" });
    expect(choice.host).toBeUndefined();
    expect(choice.waitable).toBe(false);
  });
});
