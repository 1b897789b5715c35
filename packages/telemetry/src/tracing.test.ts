import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contextFrom, startTracing, type Tracing, traceCarrier, withSpan } from "./tracing.js";

// Tracing on (a file of its own: the tracer provider is process-global), exporting OTLP/HTTP with
// protobuf bodies, the standard default, to a receiver in this test.

const posts: Array<{ path: string; contentType: string; bytes: number }> = [];
let receiver: Server;
let tracing: Tracing;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let bytes = 0;
    req.on("data", (c: Buffer) => {
      bytes += c.length;
    });
    req.on("end", () => {
      posts.push({ path: req.url ?? "", contentType: req.headers["content-type"] ?? "", bytes });
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const { port } = receiver.address() as AddressInfo;
  tracing = startTracing({
    exporter: "otlp",
    url: `http://127.0.0.1:${port}/v1/traces`,
    protocol: "http/protobuf",
    serviceName: "cinderblock-test",
    sampler: "parentbased_always_on",
    samplerRatio: 1,
    scheduleDelayMs: 60_000,
  });
});

afterAll(async () => {
  await new Promise((r) => receiver?.close(r));
});

describe("tracing on", () => {
  it("continues a remote parent, makes spans current for awaited work, and exports them on shutdown", async () => {
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const parent = contextFrom((key) => (key === "traceparent" ? `00-${traceId}-b7ad6b7169203331-01` : undefined));
    const carriers = await withSpan("outer", { kind: "consumer", parent }, async (outer) => {
      const own = traceCarrier();
      await new Promise((r) => setTimeout(r, 1));
      const inner = await withSpan("inner", { kind: "producer" }, async (span) => ({
        carrier: traceCarrier(),
        spanId: span.spanContext().spanId,
      }));
      return { own, outerId: outer.spanContext().spanId, inner };
    });
    // The outer span is the remote parent's child; the inner one the outer's, after an await.
    expect(carriers.own?.traceparent).toBe(`00-${traceId}-${carriers.outerId}-01`);
    expect(carriers.inner.carrier?.traceparent).toBe(`00-${traceId}-${carriers.inner.spanId}-01`);
    // Outside any span there is nothing to carry.
    expect(traceCarrier()).toBeUndefined();

    await tracing.shutdown();
    expect(posts).toEqual([{ path: "/v1/traces", contentType: "application/x-protobuf", bytes: expect.any(Number) }]);
    expect(posts[0]?.bytes).toBeGreaterThan(0);
  });
});
