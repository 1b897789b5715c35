/**
 * The benchmark suite: starts api, scheduler and a file-backed volume host (packages/testing
 * startStack) on the real PostgreSQL and NATS and measures, in one run:
 *   1. api: CreateSnapshot call latency and throughput at 1, 16 and 64 closed-loop grpc-js callers;
 *   2. end to end: snapshots from the request to `available` (seen through the
 *      `snapshot.create.end` notification, no polling), unloaded (1 caller) and 5,000 at 64 callers;
 *   3. floor: the same end-to-end load on the plain pipeline of floor.ts, and ours / floor;
 *   4. list: ListSnapshots pages of 100 in a project of 100,000 snapshots, with and without
 *      filters, and deep in the list through a page token;
 *   5. memory: RSS of each service idle and right after scenario 2;
 *   6. backends: LVM and RBD, stack versus raw (lvm.ts, rbd.ts), with --backends where they can run.
 * Then it checks the guarantees on the run's own data: every snapshot `available`, none lost or
 * stuck, and the project's quota usage equal to its snapshots. Prints a table, writes JSON.
 * For the end-to-end loads of ours and the floor it also prints what one snapshot costs in counts
 * (counts.ts): CPU per process, PostgreSQL statements, commits and WAL, JetStream messages. For
 * those to count only the run's work it runs on a PostgreSQL (durable as the machine's: fsync and
 * full_page_writes on, pg_stat_statements loaded) and a nats-server of its own; --shared-servers
 * runs on the machine's (CINDERBLOCK_TEST_DATABASE_URL, CINDERBLOCK_TEST_NATS_URL) as before.
 * Usage: node bench/dist/main.js [--quick] [--out FILE] [--backends] [--scale F] [--profile DIR] [--shared-servers]
 * (--scale: multiplies the full run's counts)
 * (--profile: each service writes a CPU profile into DIR when it stops, node --cpu-prof)
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { runMigrations } from "@cinderblock/db";
import {
  CreateSnapshotRequest,
  ListSnapshotsRequest,
  type ListSnapshotsResponse,
  QuotasServiceClient,
  type Snapshot,
  SnapshotStatus,
  SnapshotsServiceClient,
} from "@cinderblock/proto";
import {
  availableVolumes,
  backendUnavailable,
  call,
  createTestDatabase,
  findNatsServer,
  findPostgresBin,
  NO_RATE_LIMITS,
  type PrivateNats,
  type PrivatePostgres,
  type Stack,
  startPrivateNats,
  startPrivatePostgres,
  startStack,
  TEST_NATS_URL,
  TEST_SERVER_URL,
} from "@cinderblock/testing";
import { credentials, type Metadata } from "@grpc/grpc-js";
import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import postgres from "postgres";
import { type Counts, type Meter, measure, type StatementCount } from "./counts.js";
import { floorNames } from "./floor.js";
import {
  type CompletionTracker,
  callerMetadata,
  closedLoop,
  memoryParts,
  type Percentiles,
  percentiles,
  round,
  rssMiB,
  table,
  trackCompletions,
} from "./lib.js";

const execFileAsync = promisify(execFile);
const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");

interface Options {
  quick: boolean;
  out: string;
  backends: boolean;
  /** Multiplies the full run's counts (e.g. 0.2 for a shorter run while profiling). */
  scale: number;
  /** Where the services write CPU profiles (node --cpu-prof), if anywhere. */
  profile?: string;
  /** Run on the machine's PostgreSQL and NATS instead of servers of the run's own. */
  sharedServers: boolean;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    scale: 1,
    quick: false,
    out: join(BENCH_DIR, "results", "latest.json"),
    backends: false,
    sharedServers: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--quick") options.quick = true;
    else if (arg === "--backends") options.backends = true;
    else if (arg === "--out") options.out = resolve(argv[++i] ?? "");
    else if (arg?.startsWith("--out=")) options.out = resolve(arg.slice(6));
    else if (arg === "--scale") options.scale = Number(argv[++i]);
    else if (arg === "--profile") options.profile = resolve(argv[++i] ?? "");
    else if (arg === "--shared-servers") options.sharedServers = true;
    else
      throw new Error(
        `unknown argument ${arg}; usage: [--quick] [--out FILE] [--backends] [--scale F] [--profile DIR] [--shared-servers]`,
      );
  }
  return options;
}

/** How much work each scenario does (the quick mode only proves the suite works). */
function sizes(quick: boolean, scale: number) {
  const n = (count: number) => Math.max(1, Math.round(count * scale));
  return quick
    ? { api: { 1: 20, 16: 64, 64: 128 }, unloaded: 20, loaded: 200, listRows: 2_000, listSamples: 10, deep: 1_000 }
    : {
        api: { 1: n(500), 16: n(4_000), 64: n(8_000) },
        unloaded: n(300),
        loaded: n(5_000),
        listRows: n(100_000),
        listSamples: n(200),
        deep: Math.min(n(50_000), n(100_000) - 1_000),
      };
}

const CLIENTS = [1, 16, 64] as const;
const LOADED_CLIENTS = 64;
/** Quotas for the bench's projects: finite, so every create really checks them. */
const BENCH_LIMITS = { snapshots: 10_000_000, gigabytes: 100_000_000, volumes: 1_000 };

interface LoadResult {
  clients: number;
  count: number;
  seconds: number;
  perSecond: number;
  latencyMs: Percentiles;
  failed: number;
  /** Where a snapshot's time went (p50 ms per stage), from the stamps on its notifications. */
  stagesMs?: Record<StageName, number>;
  /** What one snapshot of the load cost (counts.ts). */
  counts?: Counts;
  /** The statements the load ran most, per snapshot. */
  topStatements?: StatementCount[];
}

/**
 * The stages of one snapshot, from the clocks of this machine (all processes share it): the api
 * call until the create's statement began (the row's created_at), from there until the volume host
 * stamped `snapshot.create.start` (commit, outbox relay, scheduler, volume host picking it up), the
 * volume host's work until it stamped `snapshot.create.end` (driver, fsyncs, recording the outcome),
 * and from there until the client had the notification (commit, outbox relay, NATS).
 */
const STAGES = ["call", "to volume host", "volume host", "notified"] as const;
type StageName = (typeof STAGES)[number];

function loadResult(
  clients: number,
  latencies: number[],
  seconds: number,
  failed = 0,
  stages?: Record<StageName, number[]>,
): LoadResult {
  const p = percentiles(latencies);
  const complete = stages && STAGES.every((s) => stages[s].length > 0);
  return {
    clients,
    count: latencies.length,
    seconds: round(seconds, 2),
    perSecond: round(latencies.length / seconds, 1),
    latencyMs: { n: p.n, p50: round(p.p50), p95: round(p.p95), p99: round(p.p99), max: round(p.max) },
    failed,
    ...(complete
      ? {
          stagesMs: Object.fromEntries(STAGES.map((s) => [s, round(percentiles(stages[s]).p50, 1)])) as Record<
            StageName,
            number
          >,
        }
      : {}),
  };
}

/** The end-to-end load: each caller creates a snapshot of its own volume and waits for its notification. */
async function endToEnd(
  client: SnapshotsServiceClient,
  md: Metadata,
  tracker: CompletionTracker,
  volumeIds: string[],
  clients: number,
  count: number,
): Promise<LoadResult> {
  let failed = 0;
  const stages: Record<StageName, number[]> = {
    call: [],
    "to volume host": [],
    "volume host": [],
    notified: [],
  };
  const { latencies, seconds } = await closedLoop(clients, count, async (worker, seq) => {
    const t0 = performance.now();
    const sentEpochMs = Date.now();
    const res = await call<{ snapshot?: Snapshot }>((done) =>
      client.createSnapshot(
        CreateSnapshotRequest.fromPartial({ volumeId: volumeIds[worker % volumeIds.length], name: `e2e-${seq}` }),
        md,
        done,
      ),
    );
    const completion = await tracker.wait(res.snapshot?.id ?? "");
    if (!completion.ok) failed++;
    const createdEpochMs = res.snapshot?.createdAt?.getTime();
    if (completion.ok && completion.startedEpochMs !== undefined && createdEpochMs !== undefined) {
      stages.call.push(createdEpochMs - sentEpochMs);
      stages["to volume host"].push(completion.startedEpochMs - createdEpochMs);
      stages["volume host"].push(completion.stampedEpochMs - completion.startedEpochMs);
      stages.notified.push(completion.receivedEpochMs - completion.stampedEpochMs);
    }
    return completion.at - t0;
  });
  return loadResult(clients, latencies, seconds, failed, stages);
}

/** Scenario 1: the CreateSnapshot call alone, at each concurrency; waits for the pipeline to settle after each. */
async function apiScenario(
  stack: Stack,
  md: Metadata,
  tracker: CompletionTracker,
  volumeIds: string[],
  counts: Record<number, number>,
): Promise<LoadResult[]> {
  const results: LoadResult[] = [];
  for (const clients of CLIENTS) {
    const ids: string[] = [];
    const { latencies, seconds } = await closedLoop(clients, counts[clients] ?? 0, async (worker, seq) => {
      const t0 = performance.now();
      const res = await call<{ snapshot?: Snapshot }>((done) =>
        stack.snapshots.createSnapshot(
          CreateSnapshotRequest.fromPartial({ volumeId: volumeIds[worker], name: `api-${clients}-${seq}` }),
          md,
          done,
        ),
      );
      const ms = performance.now() - t0;
      ids.push(res.snapshot?.id ?? "");
      return ms;
    });
    const outcomes = await Promise.all(ids.map((id) => tracker.wait(id)));
    results.push(loadResult(clients, latencies, seconds, outcomes.filter((o) => !o.ok).length));
  }
  return results;
}

interface ListCase {
  name: string;
  latencyMs: Percentiles;
  returned: number;
}

/** Scenario 4: 100,000 snapshots in one project (inserted with SQL), pages of 100 through ListSnapshots. */
async function listScenario(stack: Stack, rows: number, samples: number, deep: number): Promise<ListCase[]> {
  const projectId = "bench-list";
  const sql = postgres(stack.database.url, { max: 1, onnotice: () => {} });
  try {
    const volumeId = randomUUID();
    await sql`
      insert into volumes (id, project_id, user_id, name, status, size_gb, availability_zone, host)
      values (${volumeId}, ${projectId}, 'bench', 'list', 'available', 1, 'nova', ${`${stack.host}@file`})`;
    // NOTE: distinct created_at per row (1 ms apart), a tenth in `error`, a tenth tagged gold.
    await sql`
      insert into snapshots (id, project_id, user_id, volume_id, name, status, progress, volume_size_gb, metadata,
                             created_at, updated_at)
      select gen_random_uuid(), ${projectId}, 'bench', ${volumeId}, 'snap-' || i,
             case when i % 10 = 3 then 'error' else 'available' end, '100%', 1,
             case when i % 10 = 7 then '{"tier":"gold"}'::jsonb else '{"tier":"silver"}'::jsonb end,
             now() - make_interval(secs => i / 1000.0), now()
        from generate_series(1, ${rows}::int) as i`;
    await sql`analyze snapshots`;
  } finally {
    await sql.end();
  }
  const md = callerMetadata(projectId);
  const list = (req: Partial<ListSnapshotsRequest>) =>
    call<ListSnapshotsResponse>((done) =>
      stack.snapshots.listSnapshots(ListSnapshotsRequest.fromPartial(req), md, done),
    );
  // A token deep in the list: walk there in pages of 1000.
  let deepToken = "";
  for (let walked = 0; walked < deep; walked += 1000) {
    deepToken = (await list({ pageSize: 1000, pageToken: deepToken })).nextPageToken;
  }
  const cases: Array<[string, Partial<ListSnapshotsRequest>]> = [
    ["first page, no filter", { pageSize: 100 }],
    ["status = error", { pageSize: 100, status: SnapshotStatus.SNAPSHOT_STATUS_ERROR }],
    ["metadata tier = gold", { pageSize: 100, metadata: { tier: "gold" } }],
    ["name = snap-<n> (one match)", { pageSize: 100, name: `snap-${Math.floor(rows / 2)}` }],
    ["sorted by name", { pageSize: 100, sortKey: "name", sortDir: "asc" }],
    [`deep: page token after ${deep.toLocaleString("en")} rows`, { pageSize: 100, pageToken: deepToken }],
  ];
  const results: ListCase[] = [];
  for (const [name, req] of cases) {
    await list(req); // warm
    const times: number[] = [];
    let returned = 0;
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now();
      returned = (await list(req)).snapshots.length;
      times.push(performance.now() - t0);
    }
    const p = percentiles(times);
    results.push({
      name,
      returned,
      latencyMs: { ...p, p50: round(p.p50), p95: round(p.p95), p99: round(p.p99), max: round(p.max) },
    });
  }
  return results;
}

/** What the run's own data says about the guarantees. */
interface Integrity {
  snapshots: Record<string, number>;
  quotaSnapshotsInUse: number;
  quotaExact: boolean;
  outboxLeft: number;
  operationsPending: number;
}

async function integrity(stack: Stack, projectId: string): Promise<Integrity> {
  const sql = postgres(stack.database.url, { max: 1, onnotice: () => {} });
  try {
    const byStatus = await sql<{ status: string; n: string }[]>`
      select status, count(*) as n from snapshots where project_id = ${projectId} and not deleted group by status`;
    const snapshots = Object.fromEntries(byStatus.map((r) => [r.status, Number(r.n)]));
    const [usage] = await sql<{ in_use: number }[]>`
      select in_use from quota_usages where project_id = ${projectId} and resource = 'snapshots'`;
    const [outbox] = await sql<{ n: string }[]>`select count(*) as n from outbox`;
    const [pending] = await sql<{ n: string }[]>`select count(*) as n from operations where state = 'pending'`;
    const total = Object.values(snapshots).reduce((a, b) => a + b, 0);
    return {
      snapshots,
      quotaSnapshotsInUse: Number(usage?.in_use ?? 0),
      quotaExact: Number(usage?.in_use ?? 0) === total,
      outboxLeft: Number(outbox?.n ?? 0),
      operationsPending: Number(pending?.n ?? 0),
    };
  } finally {
    await sql.end();
  }
}

/** Starts one floor process and waits for its ready line. */
function startFloorProcess(role: string, env: Record<string, string>): Promise<{ child: ChildProcess; port?: number }> {
  const child = spawn(process.execPath, [join(BENCH_DIR, "dist", "floor.js"), role], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolvePromise, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`floor ${role} did not start:\n${out}`)), 30_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const ready = out.split("\n").find((l) => l.includes('"msg":"floor'));
      if (ready) {
        clearTimeout(timer);
        resolvePromise({ child, port: (JSON.parse(ready) as { port?: number }).port });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      process.stderr.write(`[floor ${role}] ${chunk.toString()}`);
    });
    child.once("exit", (code) => reject(new Error(`floor ${role} exited with ${code}:\n${out}`)));
  });
}

/**
 * Scenario 3: the floor pipeline on the same PostgreSQL and NATS servers, under the same loads; in
 * a database of its own (so its statements and commits are its own), migrated as ours.
 */
async function floorScenario(
  stack: Stack,
  servers: Servers,
  meter: Meter,
  unloaded: number,
  loaded: number,
): Promise<LoadResult[]> {
  const prefix = `${stack.prefix}fl`;
  const names = floorNames(prefix);
  const projectId = "floor";
  const host = "floor@file";
  const dir = await mkdtemp(join(tmpdir(), "cinderblock-floor-"));
  const database = await createTestDatabase(runMigrations, servers.postgresUrl);
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  const jsm = await jetstreamManager(stack.nc);
  const children: ChildProcess[] = [];
  const volumeIds = Array.from({ length: LOADED_CLIENTS }, () => randomUUID());
  try {
    await sql`
      insert into services (host, host_name, backend, availability_zone, heartbeat_at)
      values (${host}, 'floor', 'file', 'nova', now() + interval '1 day')`;
    for (const id of volumeIds) {
      await sql`
        insert into volumes (id, project_id, user_id, name, status, size_gb, availability_zone, host)
        values (${id}, ${projectId}, 'bench', 'floor', 'available', 1, 'nova', ${host})`;
      await writeFile(join(dir, `volume-${id}.img`), "");
      await truncate(join(dir, `volume-${id}.img`), 1024 ** 3);
    }
    await sql`insert into quota_usages (project_id, resource, in_use) values (${projectId}, 'gigabytes', 0), (${projectId}, 'snapshots', 0)`;
    await sql`
      insert into quota_limits (project_id, resource, hard_limit)
      values (${projectId}, 'gigabytes', ${BENCH_LIMITS.gigabytes}), (${projectId}, 'snapshots', ${BENCH_LIMITS.snapshots})`;
    await jsm.streams.add({
      name: names.stream,
      subjects: [`${prefix}.floor.>`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: nanos(600_000),
    });
    await jsm.streams.add({
      name: names.notificationsStream,
      subjects: [`${prefix}.notifications.>`],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      storage: StorageType.File,
      duplicate_window: nanos(600_000),
    });
    const env = {
      FLOOR_DATABASE_URL: database.url,
      FLOOR_NATS_URL: servers.natsUrl,
      FLOOR_PREFIX: prefix,
      FLOOR_HOST: host,
      FLOOR_DIR: dir,
    };
    const pids: Record<string, number | undefined> = {};
    for (const role of ["scheduler", "volume"]) {
      const { child } = await startFloorProcess(role, env);
      children.push(child);
      pids[role] = child.pid;
    }
    const api = await startFloorProcess("api", env);
    children.push(api.child);
    const scope = {
      database: database.name,
      streamPrefix: prefix.toUpperCase(),
      pids: { api: api.child.pid, ...pids },
    };
    const client = new SnapshotsServiceClient(`127.0.0.1:${api.port}`, credentials.createInsecure());
    const tracker = trackCompletions(stack.nc, prefix);
    const md = callerMetadata(projectId);
    try {
      // NOTE: warm at 64 callers too, as scenario 1 warmed ours: every pooled connection open (each
      // one's first statements cost commits of their own: postgres.js's type query, and a Parse and
      // Describe that commit without a statement pg_stat_statements would see).
      await endToEnd(client, md, tracker, volumeIds, 1, Math.min(20, unloaded));
      await endToEnd(client, md, tracker, volumeIds, LOADED_CLIENTS, Math.min(2 * LOADED_CLIENTS, loaded));
      const results = [
        await measure(meter, scope, () => endToEnd(client, md, tracker, volumeIds, 1, unloaded)),
        await measure(meter, scope, () => endToEnd(client, md, tracker, volumeIds, LOADED_CLIENTS, loaded)),
      ];
      return results;
    } finally {
      tracker.close();
      client.close();
    }
  } finally {
    for (const child of children) {
      const exited = new Promise((r) => child.once("exit", r));
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    }
    for (const stream of [names.stream, names.notificationsStream]) await jsm.streams.delete(stream).catch(() => false);
    await sql.end();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The PostgreSQL and NATS servers of the run: its own, or the machine's with --shared-servers. */
interface Servers {
  postgresUrl: string;
  natsUrl: string;
  postgres?: PrivatePostgres;
  nats?: PrivateNats;
  stop(): Promise<void>;
}

async function startServers(shared: boolean): Promise<Servers> {
  if (shared) return { postgresUrl: TEST_SERVER_URL, natsUrl: TEST_NATS_URL, async stop() {} };
  const pgBin = findPostgresBin();
  const natsBin = findNatsServer();
  if (!pgBin || !natsBin) {
    throw new Error("no PostgreSQL server binaries or nats-server found: install them, or pass --shared-servers");
  }
  // NOTE: the machine's server's settings (fsync, full_page_writes, shared_buffers, no autovacuum),
  // so that times stay comparable with runs on it; plus pg_stat_statements for the counts.
  const pg = await startPrivatePostgres(pgBin, {
    durable: true,
    settings: {
      shared_buffers: "128MB",
      autovacuum: "off",
      shared_preload_libraries: "pg_stat_statements",
      "pg_stat_statements.track": "all",
      "pg_stat_statements.max": "10000",
    },
  });
  try {
    const nats = await startPrivateNats(natsBin, { monitor: true });
    return {
      postgresUrl: pg.url,
      natsUrl: nats.url,
      postgres: pg,
      nats,
      async stop() {
        await nats.stop();
        await pg.stop();
      },
    };
  } catch (err) {
    await pg.stop();
    throw err;
  }
}

interface BackendResult {
  name: string;
  status: "measured" | "skipped";
  detail: string;
}

/** Scenario 6: the LVM and RBD benches (lvm.js, rbd.js) where their backend can run and --backends asks. */
async function backendsScenario(run: boolean): Promise<BackendResult[]> {
  const results: BackendResult[] = [];
  for (const [name, backend, script, args] of [
    ["lvm (thin)", "lvm-guest", "lvm.js", ["20", "thin"]],
    ["rbd", "ceph", "rbd.js", ["30", "300"]],
  ] as const) {
    const why = await backendUnavailable(backend);
    if (why) {
      results.push({ name, status: "skipped", detail: `backend not available: ${why}` });
    } else if (!run) {
      results.push({ name, status: "skipped", detail: "available here; pass --backends to boot it and measure" });
    } else {
      const { stdout } = await execFileAsync(process.execPath, [join(BENCH_DIR, "dist", script), ...args], {
        maxBuffer: 16 * 1024 * 1024,
      });
      results.push({ name, status: "measured", detail: stdout.trim() });
    }
  }
  return results;
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  if (!(options.scale > 0)) throw new Error("--scale: must be a positive number");
  const size = sizes(options.quick, options.scale);
  const startedAt = new Date().toISOString();
  const servers = await startServers(options.sharedServers);
  const admin = postgres(servers.postgresUrl, { max: 1, onnotice: () => {} });
  if (servers.postgres) await admin`create extension if not exists pg_stat_statements`;
  const stack = await startStack({
    databaseServerUrl: servers.postgresUrl,
    natsUrl: servers.natsUrl,
    env: {
      CINDERBLOCK_QUOTA_VOLUMES: "1000",
      ...NO_RATE_LIMITS,
      ...(options.profile ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${options.profile}` } : {}),
    },
  });
  const quotas = new QuotasServiceClient(stack.address, credentials.createInsecure());
  const tracker = trackCompletions(stack.nc, stack.prefix);
  const projectId = "bench";
  const md = callerMetadata(projectId);
  const pids = { api: stack.api.child.pid, scheduler: stack.scheduler.child.pid, volume: stack.volume.child.pid };
  const meter: Meter = {
    admin,
    privatePostgres: servers.postgres !== undefined,
    postgresPid: await servers.postgres?.pid(),
    natsPids: [servers.nats?.pid],
    ...(servers.nats?.monitorUrl ? { natsMonitorUrls: [servers.nats.monitorUrl] } : {}),
    nc: stack.nc,
  };
  const scope = { database: stack.database.name, streamPrefix: `${stack.prefix.toUpperCase()}_`, pids };
  const rss = async () => ({
    api: await rssMiB(pids.api),
    scheduler: await rssMiB(pids.scheduler),
    volume: await rssMiB(pids.volume),
  });
  try {
    await call((done) =>
      quotas.updateQuotas({ projectId, limits: BENCH_LIMITS }, callerMetadata(projectId, true), done),
    );
    console.error("bench: stack up; making volumes");
    const volumeIds = await availableVolumes(stack.volumes, md, LOADED_CLIENTS, "bench");
    const idle = await rss();
    console.error("bench: scenario 1 (api)");
    const api = await apiScenario(stack, md, tracker, volumeIds, size.api);
    console.error("bench: scenario 2 (end to end)");
    const unloaded = await measure(meter, scope, () =>
      endToEnd(stack.snapshots, md, tracker, volumeIds, 1, size.unloaded),
    );
    const loaded = await measure(meter, scope, () =>
      endToEnd(stack.snapshots, md, tracker, volumeIds, LOADED_CLIENTS, size.loaded),
    );
    const afterLoad = await rss();
    // What the RSS is made of: the JavaScript heap (used, and what V8 holds for it) and the memory
    // outside it (Buffers: sockets, postgres.js, gRPC), from each service's own /metrics.
    const parts = async (name: "api" | "scheduler" | "volume") => memoryParts(await stack.metricsAddress(name));
    const afterLoadParts = {
      api: await parts("api"),
      scheduler: await parts("scheduler"),
      volume: await parts("volume"),
    };
    const check = await integrity(stack, projectId);
    console.error("bench: scenario 3 (floor)");
    const [floorUnloaded, floorLoaded] = await floorScenario(stack, servers, meter, size.unloaded, size.loaded);
    // Our services sat idle through the floor's loads: what V8 and malloc gave back by then.
    const afterIdle = await rss();
    console.error("bench: scenario 4 (list)");
    const list = await listScenario(stack, size.listRows, size.listSamples, size.deep);
    console.error("bench: scenario 6 (backends)");
    const backends = await backendsScenario(options.backends);

    const ratio = (ours: LoadResult, floor: LoadResult | undefined) => ({
      clients: ours.clients,
      throughput: floor ? round(ours.perSecond / floor.perSecond) : Number.NaN,
      p50: floor ? round(ours.latencyMs.p50 / floor.latencyMs.p50) : Number.NaN,
      p99: floor ? round(ours.latencyMs.p99 / floor.latencyMs.p99) : Number.NaN,
    });
    const report = {
      startedAt,
      quick: options.quick,
      node: process.versions.node,
      cpus: cpus().length,
      loadAverageAtEnd: loadavg().map((l) => round(l)),
      servers: options.sharedServers ? "shared" : "private",
      scenarios: {
        api,
        endToEnd: [unloaded, loaded],
        floor: [floorUnloaded, floorLoaded].filter((r) => r !== undefined),
        oursOverFloor: [ratio(unloaded, floorUnloaded), ratio(loaded, floorLoaded)],
        list: { rows: size.listRows, pageSize: 100, cases: list },
        memoryMiB: { idle, afterEndToEnd: afterLoad, afterEndToEndParts: afterLoadParts, afterFloor: afterIdle },
        backends,
      },
      integrity: check,
    };
    await mkdir(dirname(options.out), { recursive: true });
    await writeFile(options.out, `${JSON.stringify(report, null, 2)}\n`);

    const loadRows = (label: string, r: LoadResult) => [
      label,
      String(r.clients),
      String(r.count),
      fmt(r.perSecond),
      fmt(r.latencyMs.p50, 2),
      fmt(r.latencyMs.p95, 2),
      fmt(r.latencyMs.p99, 2),
    ];
    console.log(
      `Cinderblock bench${options.quick ? " (quick)" : ""}: Node ${process.versions.node}, ${cpus().length} CPUs, ${startedAt}`,
    );
    console.log(
      table([
        ["scenario", "clients", "count", "per s", "p50 ms", "p95 ms", "p99 ms"],
        ...api.map((r) => loadRows("1. CreateSnapshot call", r)),
        loadRows("2. request → available", unloaded),
        loadRows("2. request → available", loaded),
        ...(floorUnloaded ? [loadRows("3. floor: request → available", floorUnloaded)] : []),
        ...(floorLoaded ? [loadRows("3. floor: request → available", floorLoaded)] : []),
        ...list.map((c) => [
          `4. list: ${c.name}`,
          "1",
          String(c.latencyMs.n),
          "",
          fmt(c.latencyMs.p50, 2),
          fmt(c.latencyMs.p95, 2),
          fmt(c.latencyMs.p99, 2),
        ]),
      ]),
    );
    for (const r of [unloaded, loaded]) {
      if (!r.stagesMs) continue;
      const parts = STAGES.map((s) => `${s} ${fmt(r.stagesMs?.[s] ?? Number.NaN, 1)}`).join(", ");
      console.log(`2. stages at ${r.clients} client(s), p50 ms: ${parts}`);
    }
    console.log(
      `\nper snapshot (counts), request → available, on ${options.sharedServers ? "the machine's shared servers (what others' work blurs: -)" : "the run's own PostgreSQL and nats-server"}:`,
    );
    console.log(countsTable([unloaded, floorUnloaded], [loaded, floorLoaded]));
    for (const [who, r] of [
      ["ours", loaded],
      ["floor", floorLoaded],
    ] as const) {
      if (!r?.topStatements?.length) continue;
      console.log(`\n${who}, ${r.clients} clients: statements by calls per snapshot (pg_stat_statements)`);
      console.log(
        table([
          ["calls", "rows", "WAL B", "statement"],
          ...r.topStatements.map((t) => [fmt(t.calls, 2), fmt(t.rows, 2), fmt(t.walBytes, 0), t.query]),
        ]),
      );
    }
    for (const r of report.scenarios.oursOverFloor) {
      console.log(
        `3. ours / floor at ${r.clients} client(s): throughput ${fmt(r.throughput, 2)}, p50 ${fmt(r.p50, 2)}, p99 ${fmt(r.p99, 2)}`,
      );
    }
    console.log(
      `5. RSS MiB idle: api ${idle.api}, scheduler ${idle.scheduler}, volume ${idle.volume}; after scenario 2: api ${afterLoad.api}, scheduler ${afterLoad.scheduler}, volume ${afterLoad.volume}`,
    );
    console.log(
      `5. after scenario 2, MiB heap used / heap held / outside the heap: ${(["api", "scheduler", "volume"] as const)
        .map(
          (n) => `${n} ${afterLoadParts[n].heapUsed} / ${afterLoadParts[n].heapTotal} / ${afterLoadParts[n].external}`,
        )
        .join(
          ", ",
        )}; RSS once idle through scenario 3: api ${afterIdle.api}, scheduler ${afterIdle.scheduler}, volume ${afterIdle.volume}`,
    );
    for (const b of backends) console.log(`6. ${b.name}: ${b.status}: ${b.detail}`);
    console.log(
      `integrity: snapshots ${JSON.stringify(check.snapshots)}, quota in use ${check.quotaSnapshotsInUse} (${check.quotaExact ? "exact" : "DRIFTED"}), outbox left ${check.outboxLeft}, operations pending ${check.operationsPending}`,
    );
    console.log(`JSON: ${options.out}`);
  } finally {
    tracker.close();
    quotas.close();
    await stack.stop();
    await admin.end();
    await servers.stop();
  }
}

/** The counts of ours and the floor side by side, with ours / floor, for each pair of loads. */
function countsTable(...pairs: ReadonlyArray<readonly [LoadResult, LoadResult | undefined]>): string {
  const rows: Array<[string, (c: Counts) => number, number]> = [
    ...(["api", "scheduler", "volume", "postgres", "nats", "client", "machine"] as const).map(
      (p) =>
        [
          `CPU ms: ${p === "postgres" ? "PostgreSQL" : p === "nats" ? "NATS" : p}`,
          (c: Counts) => c.cpuMs[p] ?? Number.NaN,
          2,
        ] as [string, (c: Counts) => number, number],
    ),
    ["PostgreSQL statements", (c) => c.statements, 2],
    ["  and nested in them", (c) => c.nestedStatements, 2],
    ["PostgreSQL commits", (c) => c.commits, 2],
    ["WAL bytes (server)", (c) => c.walBytes, 0],
    ["WAL bytes (statements)", (c) => c.statementWalBytes, 0],
    ["JetStream messages", (c) => c.jsMessages, 2],
    ["JetStream bytes", (c) => c.jsBytes, 0],
    ["NATS messages in (all)", (c) => c.natsInMsgs, 2],
    ["NATS bytes in (all)", (c) => c.natsInBytes, 0],
  ];
  const header = ["per snapshot"];
  for (const [ours] of pairs) header.push(`ours ${ours.clients}`, `floor ${ours.clients}`, "ratio");
  return table([
    header,
    ...rows.map(([label, get, digits]) => {
      const cells = [label];
      for (const [ours, floor] of pairs) {
        const a = ours.counts ? get(ours.counts) : Number.NaN;
        const b = floor?.counts ? get(floor.counts) : Number.NaN;
        cells.push(fmt(a, digits), fmt(b, digits), b > 0 ? fmt(a / b, 2) : "-");
      }
      return cells;
    }),
  ]);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
