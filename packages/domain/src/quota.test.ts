import { describe, expect, it } from "vitest";
import { quotaExceeded, snapshotQuotaDeltas, volumeQuotaDeltas } from "./quota.js";

const defaults = { volumes: 10, snapshots: 10, gigabytes: 1000 };

describe("quota", () => {
  it("charges a snapshot one snapshot and its volume's size in gigabytes", () => {
    expect(snapshotQuotaDeltas(defaults, 40)).toEqual([
      { resource: "snapshots", delta: 1, defaultLimit: 10 },
      { resource: "gigabytes", delta: 40, defaultLimit: 1000 },
    ]);
  });

  it("charges a volume one volume and its size in gigabytes (shared with snapshots, as in Cinder)", () => {
    expect(volumeQuotaDeltas(defaults, 5)).toEqual([
      { resource: "volumes", delta: 1, defaultLimit: 10 },
      { resource: "gigabytes", delta: 5, defaultLimit: 1000 },
    ]);
  });

  it("adds the volume type's own resources, unlimited by default", () => {
    expect(snapshotQuotaDeltas(defaults, 40, "gold")).toEqual([
      { resource: "snapshots", delta: 1, defaultLimit: 10 },
      { resource: "gigabytes", delta: 40, defaultLimit: 1000 },
      { resource: "snapshots_gold", delta: 1, defaultLimit: -1 },
      { resource: "gigabytes_gold", delta: 40, defaultLimit: -1 },
    ]);
  });

  it("refuses with RESOURCE_EXHAUSTED naming the quota, the request and the usage", () => {
    const error = quotaExceeded({ resource: "gigabytes", requested: 600, inUse: 600, limit: 1000 });
    expect(error.code).toBe("RESOURCE_EXHAUSTED");
    expect(error.message).toBe("quota exceeded for gigabytes: requested 600, 600 of 1000 in use");
  });
});
