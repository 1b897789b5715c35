export type { ApiConfig, SchedulerConfig, VolumeConfig } from "./config.js";
export { ConfigError, loadApiConfig, loadSchedulerConfig, loadVolumeConfig, SETTING_NAMES } from "./config.js";
export type { DependencyCheck, Lifecycle, LifecycleOptions, LifecycleProcess } from "./lifecycle.js";
export { createLifecycle } from "./lifecycle.js";
export type { Logger, LoggerOptions } from "./logger.js";
export { createLogger } from "./logger.js";
export type { ObservabilityConfig } from "./observability.js";
export type { TlsFiles } from "./tls-settings.js";
export { apiServerTls, hostClientTls, volumeServerTls } from "./tls-settings.js";
