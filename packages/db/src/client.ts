import { setTimeout as sleep } from "node:timers/promises";
import { sql } from "drizzle-orm";
import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { currentCallCancelled, dropIfCancelledWhileQueued } from "./cancellation.js";
import { type ConnectionSecurity, postgresConnection } from "./connection.js";
import * as schema from "./schema.js";
import { isDatabaseUnavailable } from "./unavailable.js";

/** The drizzle database handle every repository function takes. */
export type Db = PostgresJsDatabase<typeof schema>;
/** A transaction handle; repository functions accept it wherever they accept {@link Db}. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
/** Either a database or a transaction. */
export type Executor = Db | Tx;

/** Options for {@link createDb}. */
export interface DbOptions extends ConnectionSecurity {
  /** The running services' role (DATABASE_URL): SELECT, INSERT, UPDATE and DELETE are all it needs. */
  url: string;
  /** Pool size (postgres.js `max`). */
  max?: number;
  /**
   * Run every query as a named prepared statement (default true). Off only behind a pooler that
   * cannot keep a session's prepared statements (PgBouncer in transaction mode before 1.21).
   */
  prepare?: boolean;
  /**
   * PostgreSQL `statement_timeout` of every connection, in milliseconds (0 or absent: none). A
   * statement past it is cancelled by the server (SQLSTATE 57014), which the boundary answers as
   * DEADLINE_EXCEEDED; a stuck statement then cannot hold a connection and a caller for ever.
   */
  statementTimeoutMs?: number;
  /** Told the SQL text of every statement sent (a statement counter; never the parameters). */
  onStatement?: (sql: string) => void;
}

/** A database handle plus the function that closes its pool. */
export interface DbHandle {
  db: Db;
  close(): Promise<void>;
}

/** Opens a postgres.js pool and wraps it in drizzle. */
export function createDb(options: DbOptions): DbHandle {
  const { url, ssl } = postgresConnection(options.url, options);
  const client = postgres(url, {
    max: options.max ?? 10,
    ssl,
    onnotice: () => {},
    // NOTE: timestamps stay strings/dates as drizzle maps them; no connection-level transforms.
    connection: {
      application_name: "cinderblock",
      ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    },
  });
  const db = drizzle(preparing(client, options.prepare !== false, options.onStatement), { schema });
  return { db, close: () => client.end({ timeout: 5 }) };
}

/**
 * The same client, but every query drizzle sends runs as a named prepared statement (unless
 * `prepare` is off), is told to `onStatement` and is dropped unsent if its call is cancelled
 * while it waits for a connection (see cancellation.ts), in transactions and savepoints too.
 *
 * NOTE: drizzle prepares only queries given a name (`.prepare("x")`) and sends the rest unnamed;
 * postgres.js then needs two round trips for each query with parameters (Parse/Describe to learn
 * the parameter types, then Bind/Execute) and PostgreSQL parses and plans it every time. Prepared,
 * a statement is described once per connection and afterwards costs one round trip and no parse.
 * Our SQL comes from a fixed set of query shapes, so each connection caches a bounded number.
 */
function preparing<T extends postgres.Sql>(client: T, prepare: boolean, onStatement?: (sql: string) => void): T {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === "unsafe") {
        return (query: string, params?: unknown[], options?: object) => {
          onStatement?.(query);
          const pending = target.unsafe(query, params as never, prepare ? { ...options, prepare: true } : options);
          dropIfCancelledWhileQueued(pending);
          return pending;
        };
      }
      if (property === "begin" || property === "savepoint") {
        // The callback, always last, gets the transaction's own client: wrap that one too.
        return (...args: unknown[]) => {
          const work = args.pop() as (tx: postgres.Sql) => unknown;
          const start = Reflect.get(target, property) as (...a: unknown[]) => unknown;
          return start(...args, (tx: postgres.Sql) => work(preparing(tx, prepare, onStatement)));
        };
      }
      return Reflect.get(target, property, receiver);
    },
  });
}

/** Resolves when PostgreSQL answers a trivial query on the pool (a health check). */
export async function pingDatabase(db: Db): Promise<void> {
  await db.execute(sql`select 1`);
}

/** PostgreSQL errors after which the whole transaction may simply run again. */
const TRANSIENT = new Set(["40P01", "40001"]); // deadlock_detected, serialization_failure

function isTransient(error: unknown): boolean {
  for (let e: unknown = error; e && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    if (TRANSIENT.has(String((e as { code?: unknown }).code))) return true;
  }
  return false;
}

/**
 * How long {@link transaction} keeps running a transaction again whose connection broke before its
 * COMMIT was sent: long enough to ride out a primary's failover (a standby promoted within a few
 * seconds), short enough that the caller's deadline usually has not passed.
 */
const RECONNECT_BUDGET_MS = 10_000;

/** Pauses between such re-runs: 100 ms doubling to 1 s, each with up to half again of jitter. */
function reconnectPause(rerun: number): number {
  const base = Math.min(1000, 100 * 2 ** (rerun - 1));
  return base + Math.random() * base * 0.5;
}

/** Why a transaction may not run again although it broke: our own pool is closing. */
function poolEnded(error: unknown): boolean {
  for (let e: unknown = error; e && typeof e === "object"; e = (e as { cause?: unknown }).cause) {
    if ((e as { code?: unknown }).code === "CONNECTION_ENDED") return true;
  }
  return false;
}

/**
 * Runs `work` in a transaction, and runs it again when that is safe:
 * - PostgreSQL aborted it as a deadlock victim or a serialization failure (up to `attempts` runs
 *   in all): everything was rolled back;
 * - its connection broke, or the server went away or turned out read-only (a failover: see
 *   {@link isDatabaseUnavailable}), before COMMIT was sent, i.e. in BEGIN or in one of `work`'s
 *   statements: PostgreSQL rolls back a transaction whose session ends uncommitted, so nothing of
 *   it was written. It runs again after a short pause, on a connection made anew (to whichever
 *   host is now the primary), for up to {@link RECONNECT_BUDGET_MS}; then, or when the call it
 *   serves was cancelled, the last error is thrown.
 * `work` must be safe to run more than once (it may be, as above): nothing it does outside the
 * transaction may count twice.
 *
 * NOTE: a failure at COMMIT itself is never run again: the server may have committed before the
 * connection broke, and a second run would do it all twice. That error (unavailable) reaches the
 * caller, who learns the outcome by reading, or by sending the request again with its
 * client_request_id.
 */
export async function transaction<T>(db: Db, work: (tx: Tx) => Promise<T>, attempts = 3): Promise<T> {
  const started = performance.now();
  for (let rerun = 1; ; rerun++) {
    let committing = false;
    try {
      return await rerunIfTransient(
        () =>
          db.transaction(async (tx) => {
            committing = false;
            const result = await work(tx);
            // postgres.js sends COMMIT as soon as this resolves.
            committing = true;
            return result;
          }),
        attempts,
      );
    } catch (error) {
      const cutBeforeCommit = !committing && isDatabaseUnavailable(error) && !poolEnded(error);
      const pause = reconnectPause(rerun);
      if (!cutBeforeCommit || currentCallCancelled() || performance.now() - started + pause > RECONNECT_BUDGET_MS) {
        throw error;
      }
      await sleep(pause);
    }
  }
}

/**
 * Runs `work` (one transaction, or one statement that is its own) again, up to `attempts` times in
 * all, when PostgreSQL aborted it as a deadlock victim or a serialization failure.
 * NOTE: not when the connection broke: a lone statement's outcome is then unknown (it may have
 * committed), so that is the caller's to decide.
 */
export async function rerunIfTransient<T>(work: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= attempts || !isTransient(error)) throw error;
    }
  }
}

/**
 * A query built once per database handle (or transaction) instead of at every call: `build` makes
 * drizzle's prepared form of it, with `sql.placeholder`s for the values.
 * NOTE: drizzle builds a query's SQL text anew each time one runs (walking its columns and
 * conditions); on the snapshot path that was about a sixth of the scheduler's and the volume
 * host's CPU. Only the hot, fixed-shape queries are worth this.
 */
export function builtOnce<T extends object>(build: (db: Executor) => T): (db: Executor) => T {
  const built = new WeakMap<Executor, T>();
  return (db) => {
    let query = built.get(db);
    if (!query) {
      query = build(db);
      built.set(db, query);
    }
    return query;
  };
}
