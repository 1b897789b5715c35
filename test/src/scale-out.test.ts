import {
  accountForLoad,
  type CallRecord,
  createProjectClient,
  describeViolations,
  findNatsServer,
  type PrivateNatsCluster,
  type ProjectClient,
  readNotifications,
  runMixedLoad,
  type ServiceProcess,
  type Stack,
  sleep,
  startPrivateNatsCluster,
  startStack,
  summarize,
  uniqueName,
  waitUntilSettled,
} from "@cinderblock/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Cinderblock scaled out on one machine: two api, two scheduler and three volume processes (vol1
// alone, vol-b and vol-c one active-active cluster on a shared directory) on a 3-node NATS
// JetStream cluster whose streams keep 3 replicas. Under mixed load from several projects, through
// both api replicas, the NATS node leading the casts stream is killed, then one replica of each
// service, the cluster member while snapshots are in flight on the cluster. Once everything has
// settled, every accepted call is accounted for, nothing is transitional, quota equals a fresh
// count, storage equals rows and each finished operation sent one `.end`.

/** Seconds of load (CINDERBLOCK_SCALE_OUT_LOAD_SECONDS). */
const LOAD_SECONDS = Number(process.env.CINDERBLOCK_SCALE_OUT_LOAD_SECONDS ?? 60);
const SETTLE_LIMIT_MS = 120_000;
const PROJECTS = 3;
const CLUSTER = "shared";
const SERVICE_ENV = {
  CINDERBLOCK_NATS_REPLICAS: "3",
  // A cast held by a killed scheduler or cluster member goes to another one after 6 s.
  CINDERBLOCK_CAST_ACK_WAIT: "6",
  CINDERBLOCK_OPERATION_TIMEOUT: "20",
  CINDERBLOCK_RECONCILE_INTERVAL: "2",
  CINDERBLOCK_REPORT_INTERVAL: "2",
  CINDERBLOCK_SHUTDOWN_GRACE: "3",
  CINDERBLOCK_HEALTH_INTERVAL: "2",
};

const natsServer = findNatsServer();
const missing = natsServer ? undefined : "no nats-server binary (apt-get install nats-server)";
if (missing) {
  if (process.env.CI === "true") throw new Error(`scale-out suite cannot run: ${missing}`);
  console.log(`[scale-out] SKIPPED: ${missing}`);
}

let nats: PrivateNatsCluster;
let stack: Stack;
let api2: ServiceProcess;
let scheduler2: ServiceProcess;

beforeAll(async () => {
  if (missing) return;
  nats = await startPrivateNatsCluster(natsServer as string);
  stack = await startStack({
    natsUrl: nats.url,
    env: SERVICE_ENV,
    volumeHosts: [
      { host: "vol-b", cluster: CLUSTER },
      { host: "vol-c", cluster: CLUSTER },
    ],
  });
  api2 = await stack.startReplica("api");
  scheduler2 = await stack.startReplica("scheduler");
}, 120_000);

afterAll(async () => {
  await stack?.stop().catch((e: unknown) => console.log(`[scale-out] stopping the stack: ${String(e)}`));
  await nats?.stop();
}, 120_000);

const castsStream = () => `${stack.prefix.toUpperCase()}_CASTS`;

/** The casts stream's replica set as JetStream reports it: leader and followers (current or not). */
async function castsReplicas(): Promise<{ replicas: number; leader?: string; current: number }> {
  const info = await (await jetstreamManager(stack.nc)).streams.info(castsStream());
  return {
    replicas: info.config.num_replicas,
    ...(info.cluster?.leader ? { leader: info.cluster.leader } : {}),
    current: (info.cluster?.replicas ?? []).filter((r) => r.current && !r.offline).length,
  };
}

/** Snapshots in `creating` on the cluster's backend right now. */
async function creatingOnCluster(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    select s.id::text from snapshots s join volumes v on v.id = s.volume_id
     where s.status = 'creating' and v.host like ${`${CLUSTER}@%`}`;
  return rows.map((r) => r.id);
}

const alive = (p: ServiceProcess) => p.child.exitCode === null && p.child.signalCode === null;

describe.skipIf(Boolean(missing))(
  "scaled out: service replicas, an active-active volume cluster, a NATS cluster",
  () => {
    it("keeps 3 replicas of each stream on the NATS cluster", async () => {
      const casts = await castsReplicas();
      expect(casts.replicas).toBe(3);
      expect(casts.leader).toMatch(/^n[123]$/);
      const info = await (await jetstreamManager(stack.nc)).streams.info(`${stack.prefix.toUpperCase()}_NOTIFICATIONS`);
      expect(info.config.num_replicas).toBe(3);
    });

    it(
      "loses nothing and leaves nothing stuck when a NATS node, a replica of each service and a cluster member die under load",
      async () => {
        const projects = Array.from({ length: PROJECTS }, () => uniqueName("scale-"));
        const api2Address = `127.0.0.1:${String((await api2.waitFor("api listening")).port)}`;
        // Each project calls through both api replicas: one worker on each.
        const clients: ProjectClient[][] = projects.map((p) => [
          createProjectClient(stack.address, p, { deadlineMs: 10_000 }),
          createProjectClient(api2Address, p, { deadlineMs: 10_000 }),
        ]);
        const calls: CallRecord[] = [];
        const log: string[] = [];
        const sql = postgres(stack.database.url, { max: 1, onnotice: () => {} });
        const startedAt = Date.now();
        const at = () => `${Math.round((Date.now() - startedAt) / 1000)}s`;
        const loadOver = () => Date.now() - startedAt > LOAD_SECONDS * 1000;
        const survivors = [api2, scheduler2, stack.volume, stack.volumeHosts.get("vol-c")?.process].filter(
          (p): p is ServiceProcess => p !== undefined,
        );
        const memberB = stack.volumeHosts.get("vol-b");
        let inFlightAtKill: string[] = [];
        let natsLeader = "";

        const faults = async () => {
          await sleep(LOAD_SECONDS * 100);
          // The NATS node leading the casts stream: its replicas elect another leader.
          natsLeader = (await castsReplicas()).leader ?? "";
          log.push(`${at()}: NATS node ${natsLeader} (casts stream leader) SIGKILLed`);
          await nats.node(natsLeader).kill();
          await sleep(LOAD_SECONDS * 150);
          log.push(`${at()}: api (one of two) SIGKILLed`);
          await stack.api.kill();
          await sleep(LOAD_SECONDS * 50);
          log.push(`${at()}: scheduler (one of two) SIGKILLed`);
          await stack.scheduler.kill();
          await sleep(LOAD_SECONDS * 50);
          // The cluster member, while snapshots are being made on the cluster.
          const lookUntil = Date.now() + 20_000;
          while (inFlightAtKill.length === 0 && Date.now() < lookUntil) {
            inFlightAtKill = await creatingOnCluster(sql);
            if (inFlightAtKill.length === 0) await sleep(5);
          }
          log.push(
            `${at()}: cluster member vol-b SIGKILLed with ${inFlightAtKill.length} snapshot(s) creating on ${CLUSTER}`,
          );
          await memberB?.process.kill();
          await sleep(LOAD_SECONDS * 150);
          log.push(`${at()}: NATS node ${natsLeader}, api, scheduler and vol-b started again`);
          await nats.node(natsLeader).start();
          await stack.restart("api");
          await stack.restart("scheduler");
          await stack.restart("volume", "vol-b");
        };
        await Promise.all([faults(), runMixedLoad(clients, calls, loadOver)]);

        const settleStart = Date.now();
        const settled = await waitUntilSettled(
          { databaseUrl: stack.database.url, dataDir: stack.dataDirs() },
          SETTLE_LIMIT_MS,
        );
        const settleMs = Date.now() - settleStart;
        const { violations, figures } = await accountForLoad({
          calls,
          projects,
          address: api2Address,
          databaseUrl: stack.database.url,
          dataDirs: stack.dataDirs(),
          nc: stack.nc,
          prefix: stack.prefix,
        });
        const onCluster = await sql<{ n: number }[]>`
        select count(*)::int as n from volumes where host like ${`${CLUSTER}@%`}`;
        await sql.end();
        const casts = await castsReplicas();
        // Each member of the cluster took a share of the casts: who published each `.end`.
        const endsBy = new Map<string, number>();
        for (const n of await readNotifications(stack.nc, stack.prefix)) {
          if (n.eventType.endsWith(".end")) endsBy.set(n.publisherId, (endsBy.get(n.publisherId) ?? 0) + 1);
        }
        const byMember = (host: string) =>
          [...endsBy].filter(([publisher]) => publisher.endsWith(`.${host}`)).reduce((sum, [, n]) => sum + n, 0);
        for (const pair of clients) for (const c of pair) c.close();
        console.log(
          [
            `[scale-out] ${LOAD_SECONDS}s of load from ${PROJECTS} projects through 2 api replicas: ${calls.length} calls`,
            ...figures.map((f) => `  ${f}`),
            ...log.map((l) => `  fault: ${l}`),
            `  volumes placed on the ${CLUSTER} cluster: ${onCluster[0]?.n ?? 0}; .end notifications published by vol1 ${byMember("vol1")}, vol-b ${byMember("vol-b")}, vol-c ${byMember("vol-c")}`,
            `  casts stream after: ${casts.replicas} replicas, leader ${casts.leader}, ${casts.current} current follower(s)`,
            `  settled: ${settled.settled ? "yes" : "NO"} in ${settleMs} ms after the faults stopped`,
            `  invariants after settling: ${summarize(settled.report)}`,
            `  ${describeViolations(violations).replaceAll("\n", "\n  ")}`,
          ].join("\n"),
        );

        // The survivors ran through it all: each reconnected on its own, none was restarted.
        for (const p of survivors) expect(alive(p), `${p.name} survived`).toBe(true);
        expect(calls.filter((c) => c.outcome === "accepted").length).toBeGreaterThan(20);
        expect(inFlightAtKill.length, "snapshots in flight on the cluster when vol-b died").toBeGreaterThan(0);
        expect(onCluster[0]?.n ?? 0).toBeGreaterThan(0);
        expect(byMember("vol-b"), "work done by vol-b").toBeGreaterThan(0);
        expect(byMember("vol-c"), "work done by vol-c").toBeGreaterThan(0);
        expect(settled.settled).toBe(true);
        expect(casts.leader).toBeDefined();
        for (const [category, list] of violations) expect.soft(list, category).toEqual([]);
      },
      (LOAD_SECONDS + SETTLE_LIMIT_MS / 1000 + 120) * 1000,
    );
  },
);
