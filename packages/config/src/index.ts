export type { ApiConfig, SchedulerConfig, VolumeConfig } from "./config.js";
export { ConfigError, loadApiConfig, loadSchedulerConfig, loadVolumeConfig } from "./config.js";
export type { Logger, LoggerOptions } from "./logger.js";
export { createLogger } from "./logger.js";
export type { ObservabilityConfig } from "./observability.js";
export { onShutdown } from "./shutdown.js";
