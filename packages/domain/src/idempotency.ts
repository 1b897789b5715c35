import { createHash } from "node:crypto";
import { CinderblockError } from "./errors.js";

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}

/** A stable hash of a request body (map order does not matter), to compare retries with the first call. */
export function requestHash(body: object): string {
  return createHash("sha256")
    .update(JSON.stringify(canonical(body)))
    .digest("hex");
}

/**
 * The row a retried create returns: the first one, when the body is the same; otherwise the key
 * was reused for another request, which is ALREADY_EXISTS.
 */
export function replayOrConflict<T extends { requestHash: string | null }>(existing: T, hash: string, key: string): T {
  if (existing.requestHash === hash) return existing;
  throw new CinderblockError(
    "ALREADY_EXISTS",
    `client_request_id ${JSON.stringify(key)} was already used for a different request`,
  );
}

/** Whether an error is PostgreSQL's unique violation on the named index (a concurrent retry won). */
export function isUniqueViolation(error: unknown, constraint: string): boolean {
  for (let e: unknown = error; e && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    const pg = e as { code?: unknown; constraint_name?: unknown };
    if (pg.code === "23505" && pg.constraint_name === constraint) return true;
  }
  return false;
}
