import { contextFrom, counter, histogram, type Span, SpanStatusCode, withSpan } from "@cinderblock/telemetry";
import { type Metadata, status } from "@grpc/grpc-js";

const LABELS = ["grpc_service", "grpc_method", "grpc_type", "grpc_code"] as const;

/** Calls finished by this server (named as go-grpc-prometheus names them). */
const handled = counter({
  name: "grpc_server_handled_total",
  help: "gRPC calls completed by the server, by service, method, type (unary, server_stream) and status code",
  labelNames: LABELS,
});

/** Time from a call's arrival to its status (a server stream's whole life). */
const handling = histogram({
  name: "grpc_server_handling_seconds",
  help: "Seconds from a gRPC call's arrival to its status, by service, method, type and status code",
  labelNames: LABELS,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
});

/** Status codes a server span counts as its own failure (OpenTelemetry's gRPC conventions). */
const SERVER_ERRORS = new Set<number>([
  status.UNKNOWN,
  status.DEADLINE_EXCEEDED,
  status.UNIMPLEMENTED,
  status.INTERNAL,
  status.UNAVAILABLE,
  status.DATA_LOSS,
]);

/** What one call records when it ends. */
export type CallEnd = (code: status) => void;

/**
 * Runs one server call of `path` (`/package.Service/Method`) in a SERVER span whose parent is the
 * caller's `traceparent` metadata, and counts and times it when `work` calls its `end`.
 */
export function instrumentCall(
  path: string,
  type: "unary" | "server_stream",
  metadata: Metadata,
  work: (end: CallEnd) => Promise<void>,
): void {
  const started = performance.now();
  const cut = path.lastIndexOf("/");
  const service = path.slice(1, cut);
  const method = path.slice(cut + 1);
  const parent = contextFrom((key) => {
    const [value] = metadata.get(key);
    return typeof value === "string" ? value : undefined;
  });
  void withSpan(
    path.slice(1),
    { kind: "server", parent, attributes: { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method } },
    (span: Span) =>
      work((code) => {
        const labels = {
          grpc_service: service,
          grpc_method: method,
          grpc_type: type,
          grpc_code: status[code] ?? "UNKNOWN",
        };
        handled.inc(labels);
        handling.observe(labels, (performance.now() - started) / 1000);
        span.setAttribute("rpc.grpc.status_code", code);
        if (SERVER_ERRORS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: labels.grpc_code });
      }),
  );
}
