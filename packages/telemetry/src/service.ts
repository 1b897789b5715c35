import {
  createLifecycle,
  createLogger,
  type Lifecycle,
  type Logger,
  type ObservabilityConfig,
} from "@cinderblock/config";
import { startTelemetry, type Telemetry } from "./telemetry.js";

/** The settings every service has that {@link startServiceRuntime} reads. */
export interface RuntimeConfig extends ObservabilityConfig {
  LOG_LEVEL: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  CINDERBLOCK_SHUTDOWN_GRACE: number;
  CINDERBLOCK_HEALTH_INTERVAL: number;
}

/** What a service's main starts with. */
export interface ServiceRuntime {
  logger: Logger;
  telemetry: Telemetry;
  lifecycle: Lifecycle;
}

/**
 * The first steps of every service's main: its logger, telemetry (/metrics and tracing) and the
 * lifecycle (readiness, drain on SIGTERM). Telemetry is the lifecycle's first close step, so it is
 * closed last and the final spans and metrics still go out.
 */
export async function startServiceRuntime(service: string, config: RuntimeConfig): Promise<ServiceRuntime> {
  const logger = createLogger({ service, level: config.LOG_LEVEL });
  const telemetry = await startTelemetry({
    service,
    config,
    onWarning: (message) => logger.warn({ detail: message }, "telemetry trouble"),
  });
  if (telemetry.metricsAddress) logger.info({ address: telemetry.metricsAddress }, "metrics listening");
  const lifecycle = createLifecycle({
    logger,
    graceMs: config.CINDERBLOCK_SHUTDOWN_GRACE * 1000,
    checkIntervalMs: config.CINDERBLOCK_HEALTH_INTERVAL * 1000,
  });
  lifecycle.onClose("telemetry", () => telemetry.close());
  return { logger, telemetry, lifecycle };
}
