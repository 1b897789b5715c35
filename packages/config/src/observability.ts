import { z } from "zod";
import { traceFields } from "./trace-settings.js";

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/;

const otlpProtocol = z.enum(["http/protobuf", "http/json"], {
  error: "expected http/protobuf or http/json (OTLP over HTTP, port 4318; grpc is not supported)",
});

/**
 * The observability settings every service shares: its `/metrics` endpoint and OpenTelemetry
 * tracing (the standard OTEL_* variables this project reads). `metricsPort` is the service's
 * default port (api 9464, scheduler 9465, volume 9466).
 */
export function observabilityFields(metricsPort: number) {
  return {
    /** `host:port` of the Prometheus `/metrics` endpoint; empty turns it off. */
    CINDERBLOCK_METRICS_LISTEN: z
      .string()
      .trim()
      .default(`127.0.0.1:${metricsPort}`)
      .refine(
        (v) => v === "" || (HOST_PORT.test(v) && Number(v.slice(v.lastIndexOf(":") + 1)) <= 65535),
        `expected host:port (e.g. 0.0.0.0:${metricsPort}; port 0 picks one), or empty to turn /metrics off`,
      ),
    /** `none` (default), `otlp` (OTLP over HTTP) or `console`. */
    OTEL_TRACES_EXPORTER: z
      .enum(["none", "otlp", "console"], { error: "expected none, otlp or console (one exporter)" })
      .default("none"),
    /** Base URL of the OTLP/HTTP receiver; spans go to `<endpoint>/v1/traces`. */
    OTEL_EXPORTER_OTLP_ENDPOINT: z
      .url({ protocol: /^https?$/, error: "expected an http(s) URL, e.g. http://collector:4318" })
      .default("http://localhost:4318"),
    /** Full URL for spans; wins over OTEL_EXPORTER_OTLP_ENDPOINT. */
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z
      .url({ protocol: /^https?$/, error: "expected an http(s) URL, e.g. http://collector:4318/v1/traces" })
      .optional(),
    /** OTLP over HTTP with protobuf (the standard default) or JSON bodies; gRPC is not built in. */
    OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol.default("http/protobuf"),
    /** Wins over OTEL_EXPORTER_OTLP_PROTOCOL for spans. */
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: otlpProtocol.optional(),
    /** `service.name` of the spans (default `cinderblock-<service>`). */
    OTEL_SERVICE_NAME: z.string().min(1).max(255).optional(),
    OTEL_TRACES_SAMPLER: z
      .enum(
        [
          "parentbased_always_on",
          "parentbased_always_off",
          "parentbased_traceidratio",
          "always_on",
          "always_off",
          "traceidratio",
        ],
        { error: "expected parentbased_always_on, parentbased_traceidratio, always_on, traceidratio, ..." },
      )
      .default("parentbased_always_on"),
    /** The ratio of the `traceidratio` samplers. */
    OTEL_TRACES_SAMPLER_ARG: z.coerce
      .number({ error: "expected a ratio from 0 to 1" })
      .min(0, "expected a ratio from 0 to 1")
      .max(1, "expected a ratio from 0 to 1")
      .default(1),
    /** Milliseconds between two batch exports of finished spans. */
    OTEL_BSP_SCHEDULE_DELAY: z.coerce.number().int().min(1).default(5000),
    ...traceFields,
  };
}

type Fields = ReturnType<typeof observabilityFields>;

/** The parsed observability settings (a part of every service's configuration). */
export type ObservabilityConfig = z.infer<z.ZodObject<Fields>>;
