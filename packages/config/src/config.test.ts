import { describe, expect, it } from "vitest";
import { ConfigError, loadApiConfig, loadVolumeConfig } from "./config.js";

describe("configuration", () => {
  it("has working defaults for a local run", () => {
    const config = loadApiConfig({});
    expect(config).toMatchObject({
      DATABASE_URL: "postgres://postgres@127.0.0.1:5432/cinderblock",
      NATS_URL: "nats://127.0.0.1:4222",
      CINDERBLOCK_API_LISTEN: "127.0.0.1:50051",
      CINDERBLOCK_QUOTA_SNAPSHOTS: 10,
      CINDERBLOCK_QUOTA_GIGABYTES: 1000,
      CINDERBLOCK_AUTH_STRATEGY: "noauth",
    });
  });

  it("reads numbers from strings", () => {
    expect(loadApiConfig({ CINDERBLOCK_QUOTA_SNAPSHOTS: "25" }).CINDERBLOCK_QUOTA_SNAPSHOTS).toBe(25);
  });

  it("names every bad variable with its value", () => {
    let error: unknown;
    try {
      loadVolumeConfig({ CINDERBLOCK_HOST: "vol.1", CINDERBLOCK_REPORT_INTERVAL: "soon" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain('CINDERBLOCK_HOST="vol.1"');
    expect(message).toContain('CINDERBLOCK_REPORT_INTERVAL="soon"');
  });

  it("refuses an unknown auth strategy", () => {
    expect(() => loadApiConfig({ CINDERBLOCK_AUTH_STRATEGY: "keystone" })).toThrow(/CINDERBLOCK_AUTH_STRATEGY/);
  });
});
