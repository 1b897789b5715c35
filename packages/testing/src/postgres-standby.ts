import postgres from "postgres";
import { sleep } from "./net.js";
import { type PrivatePostgres, startPrivatePostgres } from "./private-servers.js";

/** A private PostgreSQL primary with a streaming standby, for failover tests. */
export interface PostgresPair {
  primary: PrivatePostgres;
  standby: PrivatePostgres;
  /** Superuser URL of the primary's `postgres` database. */
  readonly primaryUrl: string;
  /** Superuser URL of the standby's `postgres` database. */
  readonly standbyUrl: string;
  /**
   * `postgres://postgres@127.0.0.1:<primary>,127.0.0.1:<standby>/<database>?target_session_attrs=read-write`:
   * a client tries both and keeps the one that takes writes (database `postgres` by default).
   */
  multiHostUrl(database?: string): string;
  /** Crashes the primary (`pg_ctl stop -m immediate`): its clients' connections break mid-flight. */
  killPrimary(): Promise<void>;
  /** Promotes the standby, resolving once it takes writes (`pg_is_in_recovery()` is false). */
  promoteStandby(): Promise<void>;
  /** Stops both and removes their directories. */
  stop(): Promise<void>;
}

/**
 * Starts a primary set up to lose no acknowledged commit to a failover (`synchronous_standby_names
 * = '*'`, `synchronous_commit = on`: a COMMIT returns only once the standby has the WAL), then a
 * standby made with `pg_basebackup -R` of it, streaming from it, on another free port.
 *
 * NOTE: with the standby down the primary's commits wait for it, for ever: no commit is
 * acknowledged that only one server has. The promoted standby has no such setting (there is no
 * server left to wait for), so it takes writes alone.
 */
export async function startPostgresPair(binDir: string): Promise<PostgresPair> {
  const primary = await startPrivatePostgres(binDir, {
    settings: {
      synchronous_standby_names: "'*'",
      synchronous_commit: "on",
      wal_level: "replica",
      max_wal_senders: "5",
    },
  });
  let standby: PrivatePostgres;
  try {
    standby = await startPrivatePostgres(binDir, { standbyOf: primary });
    await waitForStreaming(primary.url);
  } catch (error) {
    await primary.stop();
    throw error;
  }
  const multiHostUrl = (database = "postgres") =>
    `postgres://postgres@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/${database}?target_session_attrs=read-write`;
  return {
    primary,
    standby,
    primaryUrl: primary.url,
    standbyUrl: standby.url,
    multiHostUrl,
    killPrimary: () => primary.kill(),
    async promoteStandby() {
      await standby.promote();
      const sql = postgres(standby.url, { max: 1, onnotice: () => {} });
      try {
        for (let i = 0; ; i++) {
          const [row] = await sql<{ recovering: boolean }[]>`select pg_is_in_recovery() as recovering`;
          if (row && !row.recovering) return;
          if (i > 300) throw new Error("the standby is still in recovery 30 s after pg_ctl promote");
          await sleep(100);
        }
      } finally {
        await sql.end({ timeout: 1 });
      }
    },
    async stop() {
      await standby.stop();
      await primary.stop();
    },
  };
}

/** Resolves once the primary at `url` has a synchronous standby streaming from it. */
async function waitForStreaming(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    for (let i = 0; ; i++) {
      const rows = await sql`select 1 from pg_stat_replication where state = 'streaming' and sync_state = 'sync'`;
      if (rows.length > 0) return;
      if (i > 300) throw new Error("no synchronous standby streams from the primary after 30 s");
      await sleep(100);
    }
  } finally {
    await sql.end({ timeout: 1 });
  }
}
