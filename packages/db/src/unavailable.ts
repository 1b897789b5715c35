/**
 * Node socket errors that mean PostgreSQL could not be reached, or the connection to it broke.
 * NOTE: postgres.js hands these through as they are (ECONNREFUSED on connect, ECONNRESET mid-query).
 */
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
]);

/** postgres.js's own connection errors: closed by the server, ended or destroyed pool, connect timeout. */
const DRIVER_CODES = new Set(["CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT"]);

/**
 * SQLSTATEs of a server that is going away or turning connections down: admin_shutdown,
 * crash_shutdown, cannot_connect_now (starting up or in recovery), too_many_connections; and
 * read_only_sql_transaction, a write on a server that is (now) a standby: a demoted primary, or a
 * host that answered before the failover made another one the primary.
 * All of class 08 (connection exception) counts too.
 */
const SQLSTATES = new Set(["57P01", "57P02", "57P03", "53300", "25006"]);

function unavailableCode(code: unknown): boolean {
  if (typeof code !== "string") return false;
  return SOCKET_CODES.has(code) || DRIVER_CODES.has(code) || SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code);
}

/**
 * True when `error` (or an error in its `cause` chain, e.g. under drizzle's DrizzleQueryError, or
 * inside an AggregateError) says PostgreSQL is unreachable, shutting down or refusing connections:
 * a failure the same request may not meet a moment later, unlike a bug or a constraint violation.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  while (pending.length > 0) {
    const e = pending.pop();
    if (!e || typeof e !== "object" || seen.has(e)) continue;
    seen.add(e);
    if (unavailableCode((e as { code?: unknown }).code)) return true;
    pending.push((e as { cause?: unknown }).cause);
    if (e instanceof AggregateError) pending.push(...e.errors);
  }
  return false;
}

/**
 * True when `error` (or one in its `cause` chain) is PostgreSQL cancelling a statement
 * (SQLSTATE 57014 query_canceled): its `statement_timeout` passed, or someone cancelled it.
 */
export function isStatementTimeout(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && typeof e === "object" && depth < 8; depth++) {
    if ((e as { code?: unknown }).code === "57014") return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
