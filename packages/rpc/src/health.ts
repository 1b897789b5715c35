import {
  type Server,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import { service as healthServiceDefinition } from "grpc-health-check";

type ServingStatus = "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

/**
 * The service name a liveness probe asks for: SERVING whenever the process answers at all, even
 * while PostgreSQL or NATS are unreachable, so that Kubernetes restarts a hung process but not one
 * that is merely waiting for its dependencies (readiness, service "", says that).
 */
const LIVENESS_SERVICE = "liveness";

/** The health of a server, as grpc.health.v1.Health reports it. */
export interface Health {
  /** SERVING or NOT_SERVING for the whole server ("") and each of its services. */
  setServing(serving: boolean): void;
  /**
   * Ends every open Watch stream (after it has seen the last status), so that a draining server's
   * `tryShutdown` does not wait for watchers that never hang up.
   */
  endWatches(): void;
}

/**
 * Adds `grpc.health.v1.Health` (Check, Watch, List) to a server, NOT_SERVING until
 * `setServing(true)`, for "" and each name in `services`; {@link LIVENESS_SERVICE} is always SERVING. NOTE: grpc-health-check's own
 * implementation keeps its Watch streams private and open forever, so a draining server could never
 * finish its in-flight calls before the grace period ends; this one can end them.
 */
export function addHealth(server: Server, services: readonly string[]): Health {
  const names = ["", ...services];
  let current: ServingStatus = "NOT_SERVING";
  const watchers = new Map<ServerWritableStream<{ service: string }, { status: ServingStatus }>, string>();
  const statusOf = (name: string): ServingStatus | undefined =>
    name === LIVENESS_SERVICE ? "SERVING" : names.includes(name) ? current : undefined;

  server.addService(healthServiceDefinition, {
    check(call: ServerUnaryCall<{ service: string }, unknown>, callback: sendUnaryData<{ status: ServingStatus }>) {
      const value = statusOf(call.request.service);
      if (value) callback(null, { status: value });
      else callback({ code: status.NOT_FOUND, details: `health status unknown for service ${call.request.service}` });
    },
    watch(call: ServerWritableStream<{ service: string }, { status: ServingStatus }>) {
      watchers.set(call, call.request.service);
      call.on("cancelled", () => watchers.delete(call));
      call.write({ status: statusOf(call.request.service) ?? "SERVICE_UNKNOWN" });
    },
    list(_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) {
      const statuses = Object.fromEntries(names.map((name) => [name, { status: current }]));
      callback(null, { statuses: { ...statuses, [LIVENESS_SERVICE]: { status: "SERVING" } } });
    },
  });

  return {
    setServing(serving) {
      const next: ServingStatus = serving ? "SERVING" : "NOT_SERVING";
      if (next === current) return;
      current = next;
      for (const [call, name] of watchers) call.write({ status: statusOf(name) ?? "SERVICE_UNKNOWN" });
    },
    endWatches() {
      for (const call of watchers.keys()) call.end();
      watchers.clear();
    },
  };
}
