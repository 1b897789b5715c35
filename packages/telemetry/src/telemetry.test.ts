import { describe, expect, it } from "vitest";
import { counter, startMetricsServer } from "./metrics.js";
import { contextFrom, traceCarrier, withSpan } from "./tracing.js";

describe("/metrics server", () => {
  it("answers GET /metrics with the registry in Prometheus text format, and 404 elsewhere", async () => {
    const hits = counter({ name: "telemetry_test_hits_total", help: "test counter", labelNames: ["kind"] as const });
    hits.inc({ kind: "a" }, 2);
    const server = await startMetricsServer("127.0.0.1:0");
    try {
      expect(server.address).toBe(`127.0.0.1:${server.port}`);
      const res = await fetch(`http://${server.address}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
      const text = await res.text();
      expect(text).toContain("# TYPE telemetry_test_hits_total counter");
      expect(text).toContain('telemetry_test_hits_total{kind="a"} 2');
      // The process's default metrics come along.
      expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
      expect((await fetch(`http://${server.address}/`)).status).toBe(404);
      expect((await fetch(`http://${server.address}/metrics`, { method: "POST" })).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it("refuses a port already taken", async () => {
    const first = await startMetricsServer("127.0.0.1:0");
    try {
      await expect(startMetricsServer(first.address)).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});

describe("tracing off (the default)", () => {
  it("runs work as is and writes no trace context anywhere", async () => {
    const result = await withSpan("work", { kind: "internal" }, async () => traceCarrier());
    expect(result).toBeUndefined();
    // An incoming traceparent is ignored rather than half-continued.
    const ctx = contextFrom(() => "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    expect(await withSpan("child", { kind: "consumer", parent: ctx }, async () => traceCarrier())).toBeUndefined();
    await expect(
      withSpan("failing", { kind: "internal" }, async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
  });
});
