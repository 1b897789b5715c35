import {
  type Context,
  context,
  DiagLogLevel,
  diag,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter as OTLPJsonTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as OTLPProtobufTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter, TracerProvider } from "@opentelemetry/sdk-trace";
import { type SamplerName, samplerFor } from "./sampling.js";

export type { Context, Span };
export { SpanStatusCode };

/** Options for {@link startTracing}. */
export interface TracingOptions {
  /** `none` turns tracing off: spans cost nothing and no context is written to messages. */
  exporter: "none" | "otlp" | "console";
  /** Where OTLP spans are POSTed, e.g. `http://collector:4318/v1/traces`. */
  url: string;
  /** The OTLP/HTTP body encoding. */
  protocol: "http/protobuf" | "http/json";
  /** `service.name` of every span, e.g. `cinderblock-api`. */
  serviceName: string;
  sampler: SamplerName;
  /** The ratio of the `traceidratio` samplers (0..1). */
  samplerRatio: number;
  /** Whether a remote parent's sampled flag decides (see {@link samplerFor}); default false. */
  trustRemoteParent?: boolean;
  /** Milliseconds between two batch exports. */
  scheduleDelayMs: number;
  /** Told about export failures and other SDK trouble (the service's logger). */
  onWarning?(message: string): void;
}

/** A running tracer provider; `shutdown` exports what is still buffered. */
export interface Tracing {
  shutdown(): Promise<void>;
}

/** What kind of span: a gRPC server call, a message published or processed, internal work. */
export type SpanKindName = "server" | "client" | "producer" | "consumer" | "internal";

const KINDS: Record<SpanKindName, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  internal: SpanKind.INTERNAL,
};

let enabled = false;
const tracer = trace.getTracer("cinderblock");
const propagator = new W3CTraceContextPropagator();

/**
 * Registers the global tracer provider (W3C trace context, async-local context), exporting spans in
 * batches to OTLP/HTTP (protobuf or JSON) or the console. With `exporter: "none"` it does nothing.
 */
export function startTracing(options: TracingOptions): Tracing {
  if (options.exporter === "none") return { shutdown: async () => {} };
  let exporter: SpanExporter = new ConsoleSpanExporter();
  if (options.exporter === "otlp") {
    exporter =
      options.protocol === "http/json"
        ? new OTLPJsonTraceExporter({ url: options.url })
        : new OTLPProtobufTraceExporter({ url: options.url });
  }
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": options.serviceName }),
    sampler: samplerFor(options.sampler, options.samplerRatio, options.trustRemoteParent ?? false),
    spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: options.scheduleDelayMs })],
  });
  const warn = options.onWarning;
  if (warn) {
    const log = (message: string, ...args: unknown[]) => warn([message, ...args.map(String)].join(" "));
    diag.setLogger({ error: log, warn: log, info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);
  }
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(propagator);
  trace.setGlobalTracerProvider(provider);
  enabled = true;
  return {
    async shutdown() {
      enabled = false;
      await provider.shutdown();
    },
  };
}

/** Options for {@link withSpan}. */
export interface SpanOptions {
  kind: SpanKindName;
  /** The parent (default: the active context). */
  parent?: Context;
  attributes?: Record<string, string | number | boolean>;
}

const NOOP_SPAN = trace.wrapSpanContext({ traceId: "0".repeat(32), spanId: "0".repeat(16), traceFlags: 0 });

/**
 * Runs `work` in a new span made current for everything it awaits; a throw marks the span as an
 * error and is rethrown. Without tracing `work` runs as is, with a span that records nothing.
 */
export async function withSpan<T>(name: string, options: SpanOptions, work: (span: Span) => Promise<T>): Promise<T> {
  if (!enabled) return work(NOOP_SPAN);
  const parent = options.parent ?? context.active();
  const span = tracer.startSpan(
    name,
    { kind: KINDS[options.kind], ...(options.attributes ? { attributes: options.attributes } : {}) },
    parent,
  );
  return context.with(trace.setSpan(parent, span), async () => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}

/**
 * The active trace context as W3C headers (`traceparent`, maybe `tracestate`), to store with an
 * outbox row or send in message headers / gRPC metadata; undefined without tracing or a span.
 */
export function traceCarrier(): Record<string, string> | undefined {
  if (!enabled) return undefined;
  const carrier: Record<string, string> = {};
  propagator.inject(context.active(), carrier, {
    set: (c, key, value) => {
      c[key] = value;
    },
  });
  return carrier.traceparent ? carrier : undefined;
}

/**
 * The remote context that a carrier's `traceparent`/`tracestate` describe (an outbox row's stored
 * context, message headers, gRPC metadata), read through `get`; the root context when it holds
 * none or tracing is off.
 */
export function contextFrom(get: (key: string) => string | undefined): Context {
  if (!enabled) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, null, {
    get: (_carrier, key) => get(key),
    keys: () => ["traceparent", "tracestate"],
  });
}
