import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  type GetSnapshotResponse,
  type Snapshot,
  SnapshotStatus,
  type Volume,
  VolumeStatus,
} from "@cinderblock/proto";
import { call, createSettledVolume, identity, type Stack, startStack, uniqueName } from "@cinderblock/testing";
import { type Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Day-2 operations: every service's Prometheus /metrics, and one trace per CreateSnapshot across
// api → outbox → scheduler → volume, exported over OTLP/HTTP to a receiver run by this test.

/** One span as an OTLP/HTTP JSON export carries it, with the service that sent it. */
interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
}

const SPAN_KIND = { SERVER: 2, PRODUCER: 4, CONSUMER: 5, INTERNAL: 1 };

const spans: ReceivedSpan[] = [];
let receiver: Server;
let stack: Stack;

/** A minimal OTLP/HTTP receiver: POST /v1/traces with a JSON ExportTraceServiceRequest. */
function startReceiver(): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        resourceSpans?: Array<{
          resource?: { attributes?: Array<{ key: string; value: { stringValue?: string } }> };
          scopeSpans?: Array<{ spans?: Array<Omit<ReceivedSpan, "service">> }>;
        }>;
      };
      for (const rs of body.resourceSpans ?? []) {
        const service = rs.resource?.attributes?.find((a) => a.key === "service.name")?.value.stringValue ?? "";
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              service,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? "",
              name: s.name,
              kind: s.kind,
            });
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** One sample of the Prometheus text format: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] as string] = l[2] as string;
    }
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

async function scrape(service: "api" | "scheduler" | "volume"): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`http://${await stack.metricsAddress(service)}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  const text = await res.text();
  return { text, samples: parseMetrics(text) };
}

/** The value of the one sample named `name` whose labels include `labels` (undefined if none). */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(hits.length).toBeLessThanOrEqual(1);
  return hits[0]?.value;
}

/** Scrapes until `check` holds (metrics recorded just after a reply may lag it by a moment). */
async function scrapeUntil(
  service: "api" | "scheduler" | "volume",
  check: (samples: Sample[]) => boolean,
): Promise<Sample[]> {
  for (let i = 0; ; i++) {
    const { samples } = await scrape(service);
    if (check(samples) || i >= 100) return samples;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function availableVolume(project: string): Promise<Volume> {
  return createSettledVolume(stack.volumes, identity(project), { name: "obs" });
}

async function availableSnapshot(project: string, volumeId: string, md: Metadata): Promise<Snapshot> {
  const created = await call<CreateSnapshotResponse>((done) =>
    stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: "obs" }), md, done),
  );
  const id = (created.snapshot as Snapshot).id;
  for (let i = 0; i < 300; i++) {
    const { snapshot } = await call<GetSnapshotResponse>((done) =>
      stack.snapshots.getSnapshot({ id }, identity(project), done),
    );
    if (snapshot?.status !== SnapshotStatus.SNAPSHOT_STATUS_CREATING) return snapshot as Snapshot;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`snapshot ${id} stayed creating`);
}

beforeAll(async () => {
  receiver = await startReceiver();
  const { port } = receiver.address() as AddressInfo;
  stack = await startStack({
    env: {
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_BSP_SCHEDULE_DELAY: "100",
    },
  });
});

afterAll(async () => {
  const codes = await stack?.stop();
  await new Promise((r) => receiver?.close(r));
  // Stopping flushes the span exporter and closes /metrics: every service still exits cleanly.
  expect(codes).toEqual({ api: 0, scheduler: 0, volume: 0 });
});

describe("/metrics", () => {
  it("counts and times CreateSnapshot, the casts and the driver call, and reports capacity", async () => {
    const project = uniqueName("obs-");
    const volume = await availableVolume(project);
    expect(volume.status).toBe(VolumeStatus.VOLUME_STATUS_AVAILABLE);
    const snapshot = await availableSnapshot(project, volume.id, identity(project));
    expect(snapshot.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);

    const createSnapshotOk = {
      grpc_service: "cinderblock.v1.SnapshotsService",
      grpc_method: "CreateSnapshot",
      grpc_type: "unary",
      grpc_code: "OK",
    };
    const api = await scrapeUntil(
      "api",
      (s) =>
        sampleValue(s, "grpc_server_handled_total", createSnapshotOk) === 1 &&
        sampleValue(s, "cinderblock_outbox_backlog_messages", {}) === 0,
    );
    expect(sampleValue(api, "grpc_server_handled_total", createSnapshotOk)).toBe(1);
    expect(sampleValue(api, "grpc_server_handling_seconds_count", createSnapshotOk)).toBe(1);
    expect(sampleValue(api, "grpc_server_handling_seconds_bucket", { ...createSnapshotOk, le: "+Inf" })).toBe(1);
    // A refused call is counted with its code.
    const missing = await call((done) =>
      stack.volumes.getVolume({ id: "00000000-0000-4000-8000-000000000000" }, identity(project), done),
    ).catch((e: { code?: number }) => e);
    expect(missing).toMatchObject({ code: status.NOT_FOUND });
    const notFound = { grpc_method: "GetVolume", grpc_code: "NOT_FOUND" };
    const afterRefusal = await scrapeUntil("api", (s) => sampleValue(s, "grpc_server_handled_total", notFound) === 1);
    expect(sampleValue(afterRefusal, "grpc_server_handled_total", notFound)).toBe(1);
    expect(sampleValue(api, "cinderblock_outbox_backlog_messages", {})).toBe(0);
    expect(sampleValue(api, "process_cpu_user_seconds_total", {})).toBeGreaterThan(0);

    const scheduler = await scrapeUntil(
      "scheduler",
      (s) =>
        sampleValue(s, "cinderblock_bus_message_handling_seconds_count", {
          consumer: "scheduler",
          operation: "create_snapshot",
          outcome: "ack",
        }) === 1,
    );
    expect(
      sampleValue(scheduler, "cinderblock_bus_message_handling_seconds_count", {
        consumer: "scheduler",
        operation: "create_snapshot",
        outcome: "ack",
      }),
    ).toBe(1);
    expect(
      sampleValue(scheduler, "cinderblock_jetstream_consumer_pending_messages", {
        stream: `${stack.prefix.toUpperCase()}_CASTS`,
        consumer: "scheduler",
      }),
    ).toBe(0);
    // The three relays (api's, scheduler's, volume host's) serve the same outbox: together they
    // published the two casts (create volume, create snapshot) and the volume host's two outcomes
    // (volume.create.end, snapshot.create.end), each once its transaction committed.
    let published = 0;
    for (let i = 0; i < 100 && published < 4; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 50));
      published = 0;
      for (const service of ["api", "scheduler", "volume"] as const) {
        published += sampleValue((await scrape(service)).samples, "cinderblock_outbox_published_total", {}) ?? 0;
      }
    }
    expect(published).toBe(4);

    const driverCreate = {
      operation: "create_snapshot",
      driver: "file",
      backend: `${stack.host}@file`,
      outcome: "success",
    };
    const volumeHost = await scrapeUntil(
      "volume",
      (s) => sampleValue(s, "cinderblock_volume_driver_operation_seconds_count", driverCreate) === 1,
    );
    expect(sampleValue(volumeHost, "cinderblock_volume_driver_operation_seconds_count", driverCreate)).toBe(1);
    expect(sampleValue(volumeHost, "cinderblock_volume_driver_operation_seconds_sum", driverCreate)).toBeGreaterThan(0);
    expect(
      sampleValue(volumeHost, "cinderblock_bus_message_handling_seconds_count", {
        consumer: `volume-${stack.host}`,
        operation: "create_snapshot",
        outcome: "ack",
      }),
    ).toBe(1);
    const backend = { backend: `${stack.host}@file`, driver: "file" };
    const total = sampleValue(volumeHost, "cinderblock_backend_total_capacity_gb", backend) ?? 0;
    const free = sampleValue(volumeHost, "cinderblock_backend_free_capacity_gb", backend) ?? -1;
    expect(total).toBeGreaterThan(0);
    expect(free).toBeGreaterThanOrEqual(0);
    expect(free).toBeLessThanOrEqual(total);
    expect(sampleValue(volumeHost, "cinderblock_backend_up", backend)).toBe(1);
    expect(sampleValue(volumeHost, "nodejs_eventloop_lag_seconds", {})).toBeGreaterThanOrEqual(0);

    // Anything but GET /metrics is 404.
    expect((await fetch(`http://${await stack.metricsAddress("api")}/`)).status).toBe(404);
  });
});

describe("tracing", () => {
  it("makes one CreateSnapshot one trace: api → outbox relay → scheduler → volume host → driver", async () => {
    const project = uniqueName("obs-");
    const volume = await availableVolume(project);
    // The caller's own span: the api's server span must continue it (traceparent metadata).
    const traceId = randomBytes(16).toString("hex");
    const callerSpanId = randomBytes(8).toString("hex");
    const md = identity(project);
    md.set("traceparent", `00-${traceId}-${callerSpanId}-01`);
    const snapshot = await availableSnapshot(project, volume.id, md);
    expect(snapshot.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);

    const schedulerSubject = `${stack.prefix}.v1.scheduler.create_snapshot`;
    const volumeSubject = `${stack.prefix}.v1.volume.${stack.host}.create_snapshot`;
    const expected = [
      "cinderblock.v1.SnapshotsService/CreateSnapshot",
      `publish ${schedulerSubject}`,
      `process ${schedulerSubject}`,
      `publish ${volumeSubject}`,
      `process ${volumeSubject}`,
      "driver create_snapshot",
    ];
    // Each process exports its finished spans in its own batches: wait until all have come in.
    const complete = () => expected.every((name) => spans.some((s) => s.traceId === traceId && s.name === name));
    for (let i = 0; i < 200 && !complete(); i++) await new Promise((r) => setTimeout(r, 50));
    const trace = spans.filter((s) => s.traceId === traceId);
    const one = (name: string) => {
      const hits = trace.filter((s) => s.name === name);
      expect(hits, `${name} in ${JSON.stringify(trace, null, 1)}`).toHaveLength(1);
      return hits[0] as ReceivedSpan;
    };

    const server = one("cinderblock.v1.SnapshotsService/CreateSnapshot");
    expect(server).toMatchObject({ service: "cinderblock-api", kind: SPAN_KIND.SERVER, parentSpanId: callerSpanId });
    // The relay that published the outbox row (whichever service's) continued the stored context.
    const relayed = one(`publish ${schedulerSubject}`);
    expect(relayed).toMatchObject({ kind: SPAN_KIND.PRODUCER, parentSpanId: server.spanId });
    expect(["cinderblock-api", "cinderblock-scheduler", "cinderblock-volume"]).toContain(relayed.service);
    const scheduled = one(`process ${schedulerSubject}`);
    expect(scheduled).toMatchObject({
      service: "cinderblock-scheduler",
      kind: SPAN_KIND.CONSUMER,
      parentSpanId: relayed.spanId,
    });
    const cast = one(`publish ${volumeSubject}`);
    expect(cast).toMatchObject({
      service: "cinderblock-scheduler",
      kind: SPAN_KIND.PRODUCER,
      parentSpanId: scheduled.spanId,
    });
    const handled = one(`process ${volumeSubject}`);
    expect(handled).toMatchObject({
      service: "cinderblock-volume",
      kind: SPAN_KIND.CONSUMER,
      parentSpanId: cast.spanId,
    });
    expect(one("driver create_snapshot")).toMatchObject({
      service: "cinderblock-volume",
      kind: SPAN_KIND.INTERNAL,
      parentSpanId: handled.spanId,
    });
  });
  it("carries the trace into the volume host's gRPC server (AttachVolume → InitializeConnection)", async () => {
    const project = uniqueName("obs-");
    const volume = await availableVolume(project);
    const traceId = randomBytes(16).toString("hex");
    const md = identity(project);
    md.set("traceparent", `00-${traceId}-${randomBytes(8).toString("hex")}-01`);
    await call((done) =>
      stack.volumes.attachVolume(
        { volumeId: volume.id, instanceId: randomUUID(), mountpoint: "/dev/vdb", connector: { host: "compute1" } },
        md,
        done,
      ),
    );
    const names = [
      "cinderblock.v1.VolumesService/AttachVolume",
      "cinderblock.internal.v1.VolumeHostService/InitializeConnection",
      "driver initialize_connection",
    ];
    const complete = () => names.every((name) => spans.some((s) => s.traceId === traceId && s.name === name));
    for (let i = 0; i < 200 && !complete(); i++) await new Promise((r) => setTimeout(r, 50));
    const attach = spans.find((s) => s.traceId === traceId && s.name === names[0]);
    const host = spans.find((s) => s.traceId === traceId && s.name === names[1]);
    expect(attach).toMatchObject({ service: "cinderblock-api", kind: SPAN_KIND.SERVER });
    expect(host).toMatchObject({ service: "cinderblock-volume", kind: SPAN_KIND.SERVER, parentSpanId: attach?.spanId });
    expect(spans.find((s) => s.traceId === traceId && s.name === names[2])).toMatchObject({
      service: "cinderblock-volume",
      parentSpanId: host?.spanId,
    });
  });
});
