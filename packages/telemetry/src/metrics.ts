import { createServer, type Server } from "node:http";
import {
  Counter,
  type CounterConfiguration,
  collectDefaultMetrics,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  Registry,
} from "prom-client";

export type { Counter, Gauge, Histogram };

/**
 * The one registry every Cinderblock metric lives in (not prom-client's global one, so nothing a
 * dependency registers leaks into `/metrics`). Packages define their metrics at module level with
 * {@link counter}, {@link gauge} and {@link histogram}; recording one is an in-memory update.
 */
const registry = new Registry();

/** A counter in the Cinderblock registry. */
export function counter<L extends string>(config: Omit<CounterConfiguration<L>, "registers">): Counter<L> {
  return new Counter({ ...config, registers: [registry] });
}

/** A gauge in the Cinderblock registry; `collect` may sample its value when `/metrics` is scraped. */
export function gauge<L extends string>(config: Omit<GaugeConfiguration<L>, "registers">): Gauge<L> {
  return new Gauge({ ...config, registers: [registry] });
}

/** A histogram in the Cinderblock registry. */
export function histogram<L extends string>(config: Omit<HistogramConfiguration<L>, "registers">): Histogram<L> {
  return new Histogram({ ...config, registers: [registry] });
}

/** A running `/metrics` endpoint. */
export interface MetricsServer {
  /** The bound `host:port` (port 0 in the listen address is replaced by the chosen one). */
  address: string;
  port: number;
  close(): Promise<void>;
}

let defaultsCollected = false;

/**
 * Serves `GET /metrics` (Prometheus text format 0.0.4) on `host:port` and starts collecting the
 * process's default metrics (CPU, memory, event-loop lag, GC, handles). Anything else is 404.
 */
export async function startMetricsServer(listen: string): Promise<MetricsServer> {
  if (!defaultsCollected) {
    collectDefaultMetrics({ register: registry });
    defaultsCollected = true;
  }
  const cut = listen.lastIndexOf(":");
  const host = listen.slice(0, cut).replace(/^\[(.*)\]$/, "$1");
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" || path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(listen.slice(cut + 1)), host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address();
  const port = typeof bound === "object" && bound ? bound.port : 0;
  return {
    address: `${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
