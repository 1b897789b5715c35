import { type Logger, pino } from "pino";
import { boundLine, boundStrings, serializeBoundedError, truncate } from "./log-bounds.js";
import { REDACTED, redactSecrets, scrubUrlPasswords } from "./secrets.js";

export type { Logger };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** The service name, logged as `service` on every line. */
  service: string;
  level: string;
  /** Where lines go (default stdout); tests pass a stream to read them. */
  destination?: pino.DestinationStream;
}

/**
 * Fields that hold a secret wherever a component logs them (top level or one object down),
 * besides the `*_PASSWORD`/`*_TOKEN`-named ones {@link redactSecrets} finds.
 */
const REDACT_PATHS = [
  "password",
  "token",
  "authorization",
  '["x-auth-token"]',
  "*.password",
  "*.pass",
  "*.token",
  "*.authorization",
  '*["x-auth-token"]',
];

/**
 * An error with its causes (see serializeBoundedError), with every URL password in its message, stack
 * and fields replaced by `***` (a driver's error may quote the URL it was given) and secret-named
 * fields redacted; a failed query's parameters dropped and its SQL bounded (see log-bounds.ts). A
 * string (an error already described) is scrubbed the same way.
 */
function serializeError(error: unknown): unknown {
  if (typeof error === "string") return scrubUrlPasswords(truncate(error));
  if (!(error instanceof Error)) return redactSecrets(boundStrings(error));
  return redactSecrets(serializeBoundedError(error), 8);
}

/**
 * The structured JSON logger every service injects into its components. Secrets never reach a
 * line: known secret fields are `[redacted]`, and URL passwords (`postgres://user:***@host`) are
 * scrubbed from errors, the message and every other field. Lines are bounded: no SQL parameters,
 * strings cut at 2 KiB and a line at 16 KiB, each cut said in the line.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { service: options.service, pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      serializers: { err: serializeError, error: serializeError },
      formatters: {
        log: (object) => redactSecrets(boundStrings(object)) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          method.apply(
            this,
            args.map((arg) => (typeof arg === "string" ? scrubUrlPasswords(truncate(arg)) : arg)) as Parameters<
              typeof method
            >,
          );
        },
        streamWrite: boundLine,
      },
    },
    options.destination,
  );
}
