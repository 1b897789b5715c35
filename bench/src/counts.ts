/**
 * What one snapshot costs, in counts that the machine's load can't move: CPU time per process, and
 * the PostgreSQL statements, commits and WAL, the JetStream messages and the NATS traffic a load
 * caused, divided by its snapshots. Counted only for the run's own work when the bench runs its
 * own PostgreSQL and nats-server (the default): statements and commits of one database
 * (pg_stat_statements, pg_stat_database), WAL and CPU of that server only, JetStream messages of
 * the load's own streams (by name prefix). On the machine's shared servers (--shared-servers) what
 * can't be told apart from others' work is NaN.
 */

import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type postgres from "postgres";
import { machineCpu, round, treeCpuSeconds } from "./lib.js";

/** Where the counts come from: the servers of the run and their processes. */
export interface Meter {
  /** A superuser connection to the PostgreSQL server (any database of it). */
  admin: postgres.Sql;
  /** The server is the run's own: its WAL and CPU are ours, and pg_stat_statements is loaded. */
  privatePostgres: boolean;
  postgresPid?: number;
  /** The nats-server's process, or each of a cluster's: their CPU is counted together as `nats`. */
  natsPids?: readonly (number | undefined)[];
  /** The nats-servers' monitoring endpoints, when they are the run's own (a cluster's: summed, routes included). */
  natsMonitorUrls?: readonly string[];
  nc: NatsConnection;
}

/** One load's pipeline: its database, its streams' name prefix and its processes. */
export interface Scope {
  database: string;
  /** Streams whose name starts with this (upper case) are the load's. */
  streamPrefix: string;
  pids: Record<string, number | undefined>;
}

/** A statement as pg_stat_statements saw it during a load, per snapshot. */
export interface StatementCount {
  query: string;
  calls: number;
  rows: number;
  walBytes: number;
}

/** Per snapshot of one load. */
export interface Counts {
  /** CPU ms of each process (api, scheduler, volume, postgres, nats, client) and the machine's busy time. */
  cpuMs: Record<string, number>;
  /** Statements our clients sent our database (pg_stat_statements calls, top level: BEGIN and COMMIT too). */
  statements: number;
  /** Statements those ran inside (foreign key checks, functions): pg_stat_statements calls, not top level. */
  nestedStatements: number;
  /** Transactions committed in our database (pg_stat_database.xact_commit). */
  commits: number;
  /** WAL the server wrote (pg_current_wal_lsn), checkpoints' full pages included. */
  walBytes: number;
  /** WAL our database's statements wrote (pg_stat_statements wal_bytes). */
  statementWalBytes: number;
  /** Messages stored in the load's streams (their last sequence numbers). */
  jsMessages: number;
  /** Their size: subject, headers and payload of the messages published on the streams' subjects. */
  jsBytes: number;
  /** Every message (and its bytes) clients sent the nats-server (/varz in_msgs, in_bytes): JetStream's API and acks too. */
  natsInMsgs: number;
  natsInBytes: number;
}

interface Sample {
  cpu: Record<string, number>;
  commits: number;
  walLsn: number;
  jsSequences: number;
  natsIn: { msgs: number; bytes: number };
}

/**
 * The run's NATS traffic: `/varz` of its own servers, else NaN. NOTE: on a cluster a message that
 * a route carries to another node counts there again: replication and interest show up here.
 */
async function natsIn(meter: Meter): Promise<{ msgs: number; bytes: number }> {
  if (!meter.natsMonitorUrls?.length) return { msgs: Number.NaN, bytes: Number.NaN };
  const total = { msgs: 0, bytes: 0 };
  for (const url of meter.natsMonitorUrls) {
    const varz = (await (await fetch(`${url}/varz`)).json()) as { in_msgs: number; in_bytes: number };
    total.msgs += varz.in_msgs;
    total.bytes += varz.in_bytes;
  }
  return total;
}

async function streams(meter: Meter, prefix: string) {
  const jsm = await jetstreamManager(meter.nc);
  const found = [];
  for await (const info of jsm.streams.list()) if (info.config.name.startsWith(prefix)) found.push(info);
  return found;
}

async function sample(meter: Meter, scope: Scope): Promise<Sample> {
  const cpu: Record<string, number> = await treeCpuSeconds({
    ...scope.pids,
    postgres: meter.privatePostgres ? meter.postgresPid : undefined,
  });
  const natsPids = meter.natsMonitorUrls?.length ? (meter.natsPids ?? []) : [];
  cpu.nats = natsPids.length
    ? Object.values(await treeCpuSeconds(Object.fromEntries(natsPids.map((pid, i) => [`n${i}`, pid])))).reduce(
        (a, b) => a + b,
        0,
      )
    : Number.NaN;
  const [db] = await meter.admin<{ commits: string }[]>`
    select xact_commit as commits from pg_stat_database where datname = ${scope.database}`;
  const [wal] = await meter.admin<{ lsn: string }[]>`select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') as lsn`;
  const jsSequences = (await streams(meter, scope.streamPrefix)).reduce((n, s) => n + s.state.last_seq, 0);
  return {
    cpu,
    commits: Number(db?.commits ?? Number.NaN),
    walLsn: meter.privatePostgres ? Number(wal?.lsn) : Number.NaN,
    jsSequences,
    natsIn: await natsIn(meter),
  };
}

/**
 * A backend reports its counts to pg_stat_database at most once a second, and when idle within 10 s
 * (PostgreSQL 15's PGSTAT_IDLE_INTERVAL): the commits are read that long after the load.
 */
const STATS_FLUSH_MS = 11_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sums the bytes of what is published on the load's streams' subjects while it runs. */
async function watchStreamBytes(meter: Meter, prefix: string): Promise<{ bytes: () => number; stop: () => void }> {
  let bytes = 0;
  const subs: Subscription[] = [];
  for (const info of await streams(meter, prefix)) {
    for (const subject of info.config.subjects ?? []) {
      subs.push(
        meter.nc.subscribe(subject, {
          callback: (err, msg) => {
            if (err) return;
            const headers = msg.headers ? msg.headers.toString().length : 0;
            bytes += msg.subject.length + headers + msg.data.length;
          },
        }),
      );
    }
  }
  await meter.nc.flush();
  return {
    bytes: () => bytes,
    stop: () => {
      for (const s of subs) s.unsubscribe();
    },
  };
}

/**
 * Runs `load` and returns its result with what each of its snapshots cost (`count` of them), and
 * the statements it ran most (top `top` by calls, per snapshot).
 */
export async function measure<T extends { count: number }>(
  meter: Meter,
  scope: Scope,
  load: () => Promise<T>,
  top = 25,
): Promise<T & { counts: Counts; topStatements: StatementCount[] }> {
  const statementsAvailable = meter.privatePostgres;
  // What ran before the load (a warm-up, the previous load) reaches pg_stat_database first.
  await sleep(STATS_FLUSH_MS);
  if (statementsAvailable) await meter.admin`select pg_stat_statements_reset()`;
  const watcher = await watchStreamBytes(meter, scope.streamPrefix);
  const before = await sample(meter, scope);
  const machineBefore = await machineBusy();
  // NOTE: the client's CPU is this process's during the load alone, not its sampling of /proc.
  const clientBefore = process.cpuUsage();
  const result = await load();
  const client = process.cpuUsage(clientBefore);
  const after = await sample(meter, scope);
  const machineAfter = await machineBusy();
  await meter.nc.flush();
  watcher.stop();
  // NOTE: statements and commits over the same window, the load and the wait for its statistics
  // (the services' own background work in that wait is in both).
  await sleep(STATS_FLUSH_MS);
  let statements = Number.NaN;
  let nestedStatements = Number.NaN;
  let statementWalBytes = Number.NaN;
  let topStatements: StatementCount[] = [];
  if (statementsAvailable) {
    const [sum] = await meter.admin<{ calls: string; nested: string; wal: string }[]>`
      select coalesce(sum(calls) filter (where toplevel), 0) as calls,
             coalesce(sum(calls) filter (where not toplevel), 0) as nested,
             coalesce(sum(wal_bytes), 0) as wal
        from pg_stat_statements
       where dbid = (select oid from pg_database where datname = ${scope.database})`;
    statements = Number(sum?.calls);
    nestedStatements = Number(sum?.nested);
    statementWalBytes = Number(sum?.wal);
    const rows = await meter.admin<{ query: string; calls: string; rows: string; wal: string; toplevel: boolean }[]>`
      select query, calls, rows, wal_bytes as wal, toplevel from pg_stat_statements
       where dbid = (select oid from pg_database where datname = ${scope.database}) order by calls desc, query limit ${top}`;
    topStatements = rows.map((r) => ({
      query: `${r.toplevel ? "" : "(nested) "}${shorten(r.query)}`,
      calls: round(Number(r.calls) / result.count, 2),
      rows: round(Number(r.rows) / result.count, 2),
      walBytes: round(Number(r.wal) / result.count, 0),
    }));
  }
  const [db] = await meter.admin<{ commits: string }[]>`
    select xact_commit as commits from pg_stat_database where datname = ${scope.database}`;
  const per = (n: number, digits = 2) => round(n / result.count, digits);
  const cpuMs = Object.fromEntries(
    Object.entries(after.cpu).map(([k, v]) => [k, per((v - (before.cpu[k] ?? Number.NaN)) * 1000)]),
  );
  cpuMs.client = per((client.user + client.system) / 1000);
  cpuMs.machine = per((machineAfter - machineBefore) * 1000);
  const counts: Counts = {
    cpuMs,
    statements: per(statements),
    nestedStatements: per(nestedStatements),
    commits: per(Number(db?.commits) - before.commits),
    walBytes: per(after.walLsn - before.walLsn, 0),
    statementWalBytes: per(statementWalBytes, 0),
    jsMessages: per(after.jsSequences - before.jsSequences),
    jsBytes: per(watcher.bytes(), 0),
    natsInMsgs: per(after.natsIn.msgs - before.natsIn.msgs),
    natsInBytes: per(after.natsIn.bytes - before.natsIn.bytes, 0),
  };
  return { ...result, counts, topStatements };
}

async function machineBusy(): Promise<number> {
  return (await machineCpu()).busy;
}

/** A statement's text on one line, cut to `max` characters. */
function shorten(query: string, max = 110): string {
  const flat = query.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
