export type { Counter, Gauge, Histogram } from "./metrics.js";
export { counter, gauge, histogram } from "./metrics.js";
export type { RuntimeConfig, ServiceRuntime } from "./service.js";
export { startServiceRuntime } from "./service.js";
export type { Telemetry, TelemetryOptions } from "./telemetry.js";
export { startTelemetry } from "./telemetry.js";
export type { Context, Span, SpanKindName, SpanOptions } from "./tracing.js";
export { contextFrom, SpanStatusCode, traceCarrier, withSpan } from "./tracing.js";
