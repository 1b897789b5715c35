/**
 * What a log line may carry, whatever a component hands the logger: no SQL parameters (a query's
 * values are user data, secrets included), a bounded piece of SQL text, and bounded strings and
 * lines. NOTE: one 4 MB request whose INSERT failed used to write 12.3 MB of log (drizzle's error
 * repeats its parameters in the message, the stack and a field).
 */

/** Longest string kept in a log field; the rest is cut and the cut is said. */
const MAX_LOG_STRING = 2048;
/** Longest SQL text kept from a failed query. */
const MAX_LOG_SQL = 512;
/** Longest log line written (bytes, JSON included); a longer one is replaced by a short notice. */
export const MAX_LOG_LINE = 16 * 1024;

/** Error fields that hold a query's parameter values (drizzle: `params`; postgres.js: `parameters`, `args`). */
const PARAMETER_FIELDS = ["params", "parameters", "args", "types"];

/** `text` cut to `max` characters, saying how much was cut. */
export function truncate(text: string, max = MAX_LOG_STRING): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}…[truncated ${text.length - max} of ${text.length} chars]`;
}

/** Drizzle's "Failed query: <sql>\nparams: <values>" message without the values and with bounded SQL. */
function withoutParameters(message: string): string {
  const match = /^Failed query: ([\s\S]*?)\nparams: [\s\S]*$/.exec(message);
  if (!match) return message;
  return `Failed query: ${truncate(match[1] ?? "", MAX_LOG_SQL)}\nparams: [omitted]`;
}

/**
 * An error as a log field (`type`, `message`, `stack`, its own fields, `cause` and
 * `aggregateErrors` serialized the same way): parameter fields dropped, SQL text bounded, the
 * message and stack freed of drizzle's parameter dump, every string bounded.
 *
 * NOTE: pino's own serializer folds the causes' messages into one message, where drizzle's
 * parameter dump cannot be told from the cause's words; each error keeps its own here.
 */
export function serializeBoundedError(error: Error, depth = 6): Record<string, unknown> {
  const original = String(error.message);
  const message = withoutParameters(original);
  const stack = typeof error.stack === "string" ? error.stack.split(original).join(message) : undefined;
  const out: Record<string, unknown> = {
    type: error.constructor?.name && error.constructor.name !== "Error" ? error.constructor.name : error.name,
    message: truncate(message),
    ...(stack === undefined ? {} : { stack: truncate(stack) }),
  };
  for (const [key, value] of Object.entries(error)) {
    if (key in out || key === "cause") continue;
    if (PARAMETER_FIELDS.includes(key)) out[key] = "[omitted]";
    else if (key === "query" && typeof value === "string") out[key] = truncate(value, MAX_LOG_SQL);
    else if (value instanceof Error) out[key] = depth > 0 ? serializeBoundedError(value, depth - 1) : String(value);
    else out[key] = boundStrings(value);
  }
  if (error.cause !== undefined && depth > 0) {
    out.cause =
      error.cause instanceof Error ? serializeBoundedError(error.cause, depth - 1) : boundStrings(error.cause);
  }
  if (error instanceof AggregateError && depth > 0) {
    out.aggregateErrors = error.errors
      .slice(0, 10)
      .map((e: unknown) => (e instanceof Error ? serializeBoundedError(e, depth - 1) : boundStrings(e)));
  }
  return out;
}

/** `value` with every string in it (plain objects and arrays, to `depth`) cut to {@link MAX_LOG_STRING}. */
export function boundStrings(value: unknown, depth = 6): unknown {
  if (typeof value === "string") return truncate(value);
  if (depth <= 0 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => boundStrings(v, depth - 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) out[key] = boundStrings(field, depth - 1);
  return out;
}

/**
 * The line as written, or, when it is longer than {@link MAX_LOG_LINE} bytes even with its strings
 * bounded (many fields, a long array), a short line in its place keeping the level, time, service,
 * message and ids, and saying how long the original was.
 */
export function boundLine(line: string): string {
  if (Buffer.byteLength(line) <= MAX_LOG_LINE) return line;
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(line) as Record<string, unknown>;
  } catch {
    // not JSON: nothing to keep but the fact
  }
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    const small = typeof value === "number" || typeof value === "boolean" || typeof value === "string";
    if (
      small &&
      (key === "msg" || key.endsWith("_id") || ["level", "time", "service", "pid", "method"].includes(key))
    ) {
      kept[key] = typeof value === "string" ? truncate(value, 512) : value;
    }
  }
  kept.log_truncated = true;
  kept.original_bytes = Buffer.byteLength(line);
  return `${JSON.stringify(kept)}\n`;
}
