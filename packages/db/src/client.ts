import { sql } from "drizzle-orm";
import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { dropIfCancelledWhileQueued } from "./cancellation.js";
import { type ConnectionSecurity, postgresConnection } from "./connection.js";
import * as schema from "./schema.js";

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
 * Runs `work` in a transaction, running it again (up to `attempts` times in all) when PostgreSQL
 * aborts it as a deadlock victim or a serialization failure: such an abort rolled everything back,
 * so a rerun is safe, and the caller sees a result instead of an internal error.
 */
export function transaction<T>(db: Db, work: (tx: Tx) => Promise<T>, attempts = 3): Promise<T> {
  return rerunIfTransient(() => db.transaction(work), attempts);
}

/**
 * Runs `work` (one transaction, or one statement that is its own) again, up to `attempts` times in
 * all, when PostgreSQL aborted it as a deadlock victim or a serialization failure.
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
