import { join } from "node:path";
import { formatPostgresUrl, type PostgresUrl, parsePostgresUrl } from "@cinderblock/config";
import postgres from "postgres";
import { LaunchError } from "./errors.js";
import { acquireLockFile } from "./lock-file.js";
import { startPgliteServer } from "./pglite-server.js";
import { canConnect } from "./tcp.js";

/** The database `npm start` uses when DATABASE_URL is not set. */
export const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cinderblock";

/** A PostgreSQL the services can use. */
export interface PostgresHandle {
  /** URL to hand to the services as DATABASE_URL. */
  url: string;
  /** True when we started an embedded PGlite because no server answered. */
  embedded: boolean;
  /** Stops what we started (nothing for an external server). Idempotent. */
  stop(): Promise<void>;
}

/** Options for {@link ensurePostgres}. */
export interface EnsurePostgresOptions {
  /** Server and database to use (default {@link DEFAULT_DATABASE_URL}). */
  url?: string;
  /** Where the embedded PGlite keeps its data, e.g. `<repo>/data/pglite`. */
  pgliteDir: string;
  /** How long a TCP connect may take before the server counts as unreachable (default 2 s). */
  connectTimeoutMs?: number;
  /** Progress messages (default console.log). */
  log?: (message: string) => void;
}

/** The TCP endpoints of a postgres URL (several for a multi-host URL), applying libpq's defaults. */
function endpointsOf(url: PostgresUrl): { host: string; port: number }[] {
  return url.hosts.length > 0 ? url.hosts : [{ host: "127.0.0.1", port: 5432 }];
}

/** The URL's database name; postgres.js, like libpq, defaults it to the user name. */
function databaseOf({ url }: PostgresUrl): string {
  const name = decodeURIComponent(url.pathname.replace(/^\//, ""));
  return name || decodeURIComponent(url.username) || "postgres";
}

/** Runs `select 1`, throwing the driver's error (with its SQLSTATE `code`) on failure. */
async function probe(url: string, timeoutSeconds: number): Promise<void> {
  const sql = postgres(url, { max: 1, connect_timeout: timeoutSeconds, onnotice: () => {} });
  try {
    await sql`select 1`;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Creates `database` on the server of `url`, through its maintenance database `postgres`. */
async function createDatabase(url: string, database: string, timeoutSeconds: number): Promise<void> {
  const admin = parsePostgresUrl(url);
  admin.url.pathname = "/postgres";
  const sql = postgres(formatPostgresUrl(admin), { max: 1, connect_timeout: timeoutSeconds, onnotice: () => {} });
  try {
    // CREATE DATABASE takes no bind parameters; sql(name) quotes the identifier instead.
    await sql`create database ${sql(database)}`;
  } catch (err) {
    // 42P04 duplicate_database: another process created it between our probe and now.
    if ((err as { code?: string }).code !== "42P04") throw err;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/**
 * Makes sure the services have a PostgreSQL:
 * - a server answers at `url` and the database exists: use it as is;
 * - a server answers but the database does not exist (3D000): create it, then use it;
 * - nothing accepts TCP connections at the URL's host and port within the timeout: start an
 *   embedded PGlite on `pgliteDir`, served on 127.0.0.1 with an OS-assigned port, and return its
 *   URL (database `postgres`, the only one PGlite has).
 * Any other failure (bad password, missing role, ...) is thrown: falling back to an empty
 * embedded database would hide a configuration mistake.
 */
export async function ensurePostgres(options: EnsurePostgresOptions): Promise<PostgresHandle> {
  const log = options.log ?? ((message: string) => console.log(message));
  const urlString = options.url ?? DEFAULT_DATABASE_URL;
  const url = parsePostgresUrl(urlString);
  const timeoutMs = options.connectTimeoutMs ?? 2000;
  const timeoutSeconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  const endpoints = endpointsOf(url);
  const [first] = endpoints;
  let endpoint = first as { host: string; port: number };

  // A plain TCP probe first: it tells "no server" apart from "server said no" without relying on
  // how a driver words its errors, and it bounds the wait on a firewalled host. Of several hosts,
  // the first that accepts a connection stands for them all.
  let reachable = false;
  for (const candidate of endpoints) {
    if (await canConnect(candidate, timeoutMs)) {
      endpoint = candidate;
      reachable = true;
      break;
    }
  }
  if (reachable) {
    try {
      try {
        await probe(urlString, timeoutSeconds);
      } catch (err) {
        if ((err as { code?: string }).code !== "3D000") throw err;
        const database = databaseOf(url);
        log(`PostgreSQL at ${endpoint.host}:${endpoint.port} has no database "${database}": creating it`);
        await createDatabase(urlString, database, timeoutSeconds);
        await probe(urlString, timeoutSeconds);
      }
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new LaunchError(
        `PostgreSQL at ${endpoint.host}:${endpoint.port} (DATABASE_URL) answers but can't be used: ${reason}`,
        {
          cause: err,
        },
      );
    }
    return { url: urlString, embedded: false, stop: async () => {} };
  }

  log(`no PostgreSQL at ${endpoint.host}:${endpoint.port}: starting embedded PGlite (${options.pgliteDir})`);
  const lock = acquireLockFile(join(options.pgliteDir, "..", "pglite.lock"), options.pgliteDir);
  try {
    const server = await startPgliteServer({ dataDir: options.pgliteDir, host: "127.0.0.1", port: 0 });
    return {
      url: server.url,
      embedded: true,
      stop: async () => {
        try {
          await server.stop();
        } finally {
          lock.release();
        }
      },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}
