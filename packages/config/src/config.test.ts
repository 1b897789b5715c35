import { describe, expect, it } from "vitest";
import { ConfigError, loadApiConfig, loadSchedulerConfig, loadVolumeConfig } from "./config.js";

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

describe("observability settings", () => {
  it("serve /metrics on a per-service loopback port and trace nothing by default", () => {
    expect(loadApiConfig({})).toMatchObject({
      CINDERBLOCK_METRICS_LISTEN: "127.0.0.1:9464",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://localhost:4318",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
      OTEL_TRACES_SAMPLER: "parentbased_always_on",
    });
    expect(loadSchedulerConfig({}).CINDERBLOCK_METRICS_LISTEN).toBe("127.0.0.1:9465");
    expect(loadVolumeConfig({}).CINDERBLOCK_METRICS_LISTEN).toBe("127.0.0.1:9466");
  });

  it("turn /metrics off with an empty address and accept IPv6 and port 0", () => {
    expect(loadApiConfig({ CINDERBLOCK_METRICS_LISTEN: "" }).CINDERBLOCK_METRICS_LISTEN).toBe("");
    expect(loadApiConfig({ CINDERBLOCK_METRICS_LISTEN: "[::]:9464" }).CINDERBLOCK_METRICS_LISTEN).toBe("[::]:9464");
    expect(loadApiConfig({ CINDERBLOCK_METRICS_LISTEN: "0.0.0.0:0" }).CINDERBLOCK_METRICS_LISTEN).toBe("0.0.0.0:0");
  });

  it("name the bad variable and say what is expected", () => {
    expect(() => loadApiConfig({ CINDERBLOCK_METRICS_LISTEN: "9464" })).toThrow(
      /CINDERBLOCK_METRICS_LISTEN="9464": expected host:port/,
    );
    expect(() => loadApiConfig({ CINDERBLOCK_METRICS_LISTEN: "0.0.0.0:70000" })).toThrow(/CINDERBLOCK_METRICS_LISTEN/);
    expect(() => loadVolumeConfig({ OTEL_TRACES_EXPORTER: "jaeger" })).toThrow(
      /OTEL_TRACES_EXPORTER="jaeger": expected none, otlp or console/,
    );
    expect(() => loadApiConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318": expected an http\(s\) URL/,
    );
    expect(() => loadApiConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL="grpc": expected http\/protobuf or http\/json/,
    );
    expect(() => loadSchedulerConfig({ OTEL_TRACES_SAMPLER_ARG: "2" })).toThrow(
      /OTEL_TRACES_SAMPLER_ARG="2": expected a ratio from 0 to 1/,
    );
  });
});
