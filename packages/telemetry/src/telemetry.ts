import type { ObservabilityConfig } from "@cinderblock/config";
import { startMetricsServer } from "./metrics.js";
import { startTracing } from "./tracing.js";

/** Options for {@link startTelemetry}. */
export interface TelemetryOptions {
  /** The service: `api`, `scheduler` or `volume`; spans carry `service.name` `cinderblock-<service>`. */
  service: string;
  config: ObservabilityConfig;
  /** Told about span export failures (the service's logger). */
  onWarning?(message: string): void;
}

/** A service's metrics endpoint and tracer provider. */
export interface Telemetry {
  /** The bound `/metrics` address, when the endpoint is on. */
  metricsAddress: string | undefined;
  /** Stops the endpoint and exports the spans still buffered. */
  close(): Promise<void>;
}

/**
 * Starts what the configuration asks for: the Prometheus `/metrics` endpoint
 * (CINDERBLOCK_METRICS_LISTEN) and OpenTelemetry tracing (OTEL_TRACES_EXPORTER). Call it first in
 * main.ts, before anything records a metric or starts a span.
 */
export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const { config } = options;
  const tracing = startTracing({
    exporter: config.OTEL_TRACES_EXPORTER,
    url:
      config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
      `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`,
    protocol: config.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? config.OTEL_EXPORTER_OTLP_PROTOCOL,
    serviceName: config.OTEL_SERVICE_NAME ?? `cinderblock-${options.service}`,
    sampler: config.OTEL_TRACES_SAMPLER,
    samplerRatio: config.OTEL_TRACES_SAMPLER_ARG,
    trustRemoteParent: config.CINDERBLOCK_TRACE_TRUST_PARENT,
    scheduleDelayMs: config.OTEL_BSP_SCHEDULE_DELAY,
    ...(options.onWarning ? { onWarning: options.onWarning } : {}),
  });
  const listen = config.CINDERBLOCK_METRICS_LISTEN;
  const metrics = listen
    ? await startMetricsServer(listen).catch((error: unknown) => {
        throw new Error(`CINDERBLOCK_METRICS_LISTEN=${listen}: cannot serve /metrics: ${String(error)}`, {
          cause: error,
        });
      })
    : undefined;
  return {
    metricsAddress: metrics?.address,
    async close() {
      await metrics?.close();
      await tracing.shutdown();
    },
  };
}
