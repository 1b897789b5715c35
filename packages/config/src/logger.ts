import { type Logger, pino } from "pino";

export type { Logger };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** The service name, logged as `service` on every line. */
  service: string;
  level: string;
}

/** The structured JSON logger every service injects into its components. */
export function createLogger(options: LoggerOptions): Logger {
  return pino({ level: options.level, base: { service: options.service, pid: process.pid } });
}
