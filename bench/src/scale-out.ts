/**
 * What scaling out costs (issue 18): the same end-to-end load, 64 callers each snapshotting its own
 * volume and waiting for `snapshot.create.end`, on two topologies in one run, one after the other,
 * on one private PostgreSQL:
 *   - single: one api, one scheduler, one volume host, on one nats-server (streams of 1 replica);
 *   - scaled out: two api (callers alternate between them), two schedulers, vol1 and a 2-member
 *     active-active volume cluster, on a 3-node JetStream cluster with streams of 3 replicas.
 * On 2 cores the second cannot be faster; the counts per snapshot (statements, commits, WAL, NATS
 * messages with the routes' replication, CPU per service) show what the extra hops cost.
 *
 * Usage (after a build; alone on the machine): node bench/dist/scale-out.js [snapshots per topology=3000]
 */

import { CreateSnapshotRequest, QuotasServiceClient, SnapshotsServiceClient } from "@cinderblock/proto";
import {
  availableVolumes,
  call,
  findNatsServer,
  findPostgresBin,
  NO_RATE_LIMITS,
  type Stack,
  startPrivateNats,
  startPrivateNatsCluster,
  startPrivatePostgres,
  startStack,
} from "@cinderblock/testing";
import { credentials } from "@grpc/grpc-js";
import postgres from "postgres";
import { type Counts, type Meter, measure } from "./counts.js";
import { callerMetadata, closedLoop, percentiles, round, table, trackCompletions } from "./lib.js";

const CALLERS = 64;
const LIMITS = { snapshots: 10_000_000, gigabytes: 100_000_000, volumes: 1_000 };

interface Result {
  topology: string;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  failed: number;
  counts: Counts;
}

/** Runs the load on a started stack whose api addresses are `apis`; the first is the stack's own. */
async function run(
  topology: string,
  stack: Stack,
  apis: string[],
  meter: Omit<Meter, "nc">,
  pids: Record<string, number | undefined>,
  count: number,
): Promise<Result> {
  const projectId = "bench";
  const md = callerMetadata(projectId);
  const quotas = new QuotasServiceClient(stack.address, credentials.createInsecure());
  const clients = apis.map((a) => new SnapshotsServiceClient(a, credentials.createInsecure()));
  try {
    await call((done) => quotas.updateQuotas({ projectId, limits: LIMITS }, callerMetadata(projectId, true), done));
    const volumeIds = await availableVolumes(stack.volumes, md, CALLERS, "bench");
    const tracker = trackCompletions(stack.nc, stack.prefix);
    const load = (total: number) => async () => {
      let failed = 0;
      const { latencies, seconds } = await closedLoop(CALLERS, total, async (worker, seq) => {
        const t0 = performance.now();
        const client = clients[worker % clients.length] as SnapshotsServiceClient;
        const res = await call<{ snapshot?: { id: string } }>((done) =>
          client.createSnapshot(
            CreateSnapshotRequest.fromPartial({ volumeId: volumeIds[worker], name: `scale-${seq}` }),
            md,
            done,
          ),
        );
        const completion = await tracker.wait(res.snapshot?.id ?? "");
        if (!completion.ok) failed++;
        return completion.at - t0;
      });
      return { count: latencies.length, latencies, seconds, failed };
    };
    // Warm every connection and JIT path at full concurrency first, as the main bench does.
    await load(CALLERS * 4)();
    const scope = { database: stack.database.name, streamPrefix: `${stack.prefix.toUpperCase()}_`, pids };
    const measured = await measure({ ...meter, nc: stack.nc }, scope, load(count));
    tracker.close();
    const p = percentiles(measured.latencies);
    return {
      topology,
      perSecond: round(measured.count / measured.seconds, 1),
      p50: round(p.p50),
      p95: round(p.p95),
      p99: round(p.p99),
      failed: measured.failed,
      counts: measured.counts,
    };
  } finally {
    quotas.close();
    for (const c of clients) c.close();
  }
}

/** CPU ms per snapshot of every process whose scope key starts with `service`. */
const cpuOf = (counts: Counts, service: string) =>
  round(
    Object.entries(counts.cpuMs)
      .filter(([k]) => k === service || k.startsWith(`${service}_`))
      .reduce((sum, [, v]) => sum + v, 0),
  );

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 3000);
  if (!Number.isInteger(count) || count < CALLERS) throw new Error(`count: must be an integer of at least ${CALLERS}`);
  const pgBin = findPostgresBin();
  const natsBin = findNatsServer();
  if (!pgBin || !natsBin) throw new Error("no PostgreSQL server binaries or nats-server found");
  // The main bench's PostgreSQL settings (fsync on, pg_stat_statements for the statement counts).
  const pg = await startPrivatePostgres(pgBin, {
    durable: true,
    settings: {
      shared_buffers: "128MB",
      autovacuum: "off",
      shared_preload_libraries: "pg_stat_statements",
      "pg_stat_statements.track": "all",
    },
  });
  const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
  await admin`create extension if not exists pg_stat_statements`;
  const env = { CINDERBLOCK_QUOTA_VOLUMES: "1000", ...NO_RATE_LIMITS };
  const results: Result[] = [];
  try {
    const single = await startPrivateNats(natsBin, { monitor: true });
    const stack = await startStack({ databaseServerUrl: pg.url, natsUrl: single.url, env });
    try {
      console.error("scale-out bench: single");
      results.push(
        await run(
          "single (1 api, 1 scheduler, 1 volume; 1 NATS)",
          stack,
          [stack.address],
          {
            admin,
            privatePostgres: true,
            postgresPid: await pg.pid(),
            natsPids: [single.pid],
            natsMonitorUrls: [single.monitorUrl as string],
          },
          { api: stack.api.child.pid, scheduler: stack.scheduler.child.pid, volume: stack.volume.child.pid },
          count,
        ),
      );
    } finally {
      await stack.stop();
      await single.stop();
    }

    const cluster = await startPrivateNatsCluster(natsBin, { monitor: true });
    const scaled = await startStack({
      databaseServerUrl: pg.url,
      natsUrl: cluster.url,
      env: { ...env, CINDERBLOCK_NATS_REPLICAS: "3" },
      volumeHosts: [
        { host: "vol-b", cluster: "shared" },
        { host: "vol-c", cluster: "shared" },
      ],
    });
    try {
      const api2 = await scaled.startReplica("api");
      const scheduler2 = await scaled.startReplica("scheduler");
      const api2Address = `127.0.0.1:${String((await api2.waitFor("api listening")).port)}`;
      console.error("scale-out bench: scaled out");
      results.push(
        await run(
          "scaled out (2 api, 2 scheduler, 3 volume; 3 NATS, R3)",
          scaled,
          [scaled.address, api2Address],
          {
            admin,
            privatePostgres: true,
            postgresPid: await pg.pid(),
            natsPids: cluster.nodes.map((n) => n.pid),
            natsMonitorUrls: cluster.nodes.map((n) => n.monitorUrl as string),
          },
          {
            api: scaled.api.child.pid,
            api_2: api2.child.pid,
            scheduler: scaled.scheduler.child.pid,
            scheduler_2: scheduler2.child.pid,
            volume: scaled.volume.child.pid,
            volume_b: scaled.volumeHosts.get("vol-b")?.process.child.pid,
            volume_c: scaled.volumeHosts.get("vol-c")?.process.child.pid,
          },
          count,
        ),
      );
    } finally {
      await scaled.stop();
      await cluster.stop();
    }
  } finally {
    await admin.end();
    await pg.stop();
  }

  console.log(`${count} snapshots per topology, ${CALLERS} callers, end to end (until snapshot.create.end)`);
  console.log(
    table([
      ["topology", "per s", "p50 ms", "p95 ms", "p99 ms", "failed"],
      ...results.map((r) => [r.topology, ...[r.perSecond, r.p50, r.p95, r.p99, r.failed].map(String)]),
    ]),
  );
  console.log("\nper snapshot");
  console.log(
    table([
      [
        "topology",
        "statements",
        "commits",
        "WAL B",
        "JS msgs",
        "NATS in msgs",
        "NATS in B",
        "CPU ms api",
        "scheduler",
        "volume",
        "postgres",
        "nats",
        "machine",
      ],
      ...results.map((r) => [
        r.topology.split(" (")[0] ?? r.topology,
        ...[
          r.counts.statements,
          r.counts.commits,
          r.counts.walBytes,
          r.counts.jsMessages,
          r.counts.natsInMsgs,
          r.counts.natsInBytes,
          cpuOf(r.counts, "api"),
          cpuOf(r.counts, "scheduler"),
          cpuOf(r.counts, "volume"),
          r.counts.cpuMs.postgres ?? Number.NaN,
          r.counts.cpuMs.nats ?? Number.NaN,
          r.counts.cpuMs.machine ?? Number.NaN,
        ].map(String),
      ]),
    ]),
  );
  const [a, b] = results;
  if (a && b) {
    console.log(
      `\nscaled out over single: throughput ${round(b.perSecond / a.perSecond)}, p50 ${round(b.p50 / a.p50)}, machine CPU per snapshot ${round((b.counts.cpuMs.machine ?? 0) / (a.counts.cpuMs.machine ?? 1))}`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
