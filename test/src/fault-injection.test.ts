import {
  accountForLoad,
  type CallRecord,
  createProjectClient,
  describeViolations,
  findNatsServer,
  findPostgresBin,
  type PrivateNats,
  type PrivatePostgres,
  privatePostgresUnavailable,
  runMixedLoad,
  type ServiceName,
  type Stack,
  sleep,
  startPrivateNats,
  startPrivatePostgres,
  startStack,
  summarize,
  uniqueName,
  waitUntilSettled,
} from "@cinderblock/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The project's own fault-injection suite: mixed load from several projects (creates, deletes,
// clones, extends, cascades, snapshots) while each service is SIGKILLed and restarted at random
// intervals, a private PostgreSQL is crashed and restarted once and a private nats-server is
// killed and restarted once. Afterwards, once the reconciler has settled everything: every
// accepted call is accounted for (nothing lost, nothing half-made, nothing stuck), quota usage
// equals a fresh count, storage equals rows, and each finished operation sent exactly one `.end`.
// Calls that got no answer (UNAVAILABLE, DEADLINE_EXCEEDED) are reconciled by listing.

/** Seconds of load (CINDERBLOCK_FAULT_LOAD_SECONDS). */
const LOAD_SECONDS = Number(process.env.CINDERBLOCK_FAULT_LOAD_SECONDS ?? 180);
/** How long everything may take to settle once the faults stop. */
const SETTLE_LIMIT_MS = 180_000;
const PROJECTS = 3;
const WORKERS_PER_PROJECT = 2;
/** Operations time out quickly so the reconciler re-dispatches within the test. */
const SERVICE_ENV = {
  CINDERBLOCK_OPERATION_TIMEOUT: "15",
  CINDERBLOCK_RECONCILE_INTERVAL: "2",
  CINDERBLOCK_OPERATION_MAX_ATTEMPTS: "3",
  CINDERBLOCK_REPORT_INTERVAL: "2",
  CINDERBLOCK_SHUTDOWN_GRACE: "3",
  CINDERBLOCK_HEALTH_INTERVAL: "2",
};

/** What the suite needs that may be missing on a machine: a reason to skip, or undefined. */
function missingPrerequisite(): string | undefined {
  if (!findNatsServer()) return "no nats-server binary (apt-get install nats-server)";
  return privatePostgresUnavailable();
}

const missing = missingPrerequisite();
if (missing) {
  if (process.env.CI === "true") throw new Error(`fault-injection suite cannot run: ${missing}`);
  console.log(`[fault-injection] SKIPPED: ${missing}`);
}

let pg: PrivatePostgres;
let nats: PrivateNats;
let stack: Stack;

beforeAll(async () => {
  if (missing) return;
  pg = await startPrivatePostgres(findPostgresBin() as string);
  nats = await startPrivateNats(findNatsServer() as string);
  stack = await startStack({ databaseServerUrl: pg.url, natsUrl: nats.url, env: SERVICE_ENV });
}, 120_000);

afterAll(async () => {
  await stack?.stop().catch((e: unknown) => console.log(`[fault-injection] stopping the stack: ${String(e)}`));
  await nats?.stop();
  await pg?.stop();
}, 120_000);

const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(Math.random() * items.length)];

/** The fault schedule's record. */
interface Faults {
  kills: Record<ServiceName, number>;
  unexpectedExits: Record<ServiceName, number>;
  restartFailures: number;
  postgresRestarts: number;
  natsRestarts: number;
  log: string[];
}

/** Starts a service again, retrying while it cannot start (its database or NATS may be down). */
async function revive(name: ServiceName, faults: Faults) {
  for (let attempt = 0; ; attempt++) {
    try {
      await stack.restart(name);
      return;
    } catch (error) {
      faults.restartFailures++;
      faults.log.push(`restart of ${name} failed (${String(error).split("\n")[0]})`);
      if (attempt > 20) throw error;
      await sleep(1000);
    }
  }
}

const alive = (name: ServiceName) => stack[name].child.exitCode === null && stack[name].child.signalCode === null;

/**
 * Runs the faults until `until()`: every 10-20 s a random service is SIGKILLed and restarted after
 * 0.5-2 s; PostgreSQL is crashed and restarted once (about a third in) and nats-server killed and
 * restarted once (about two thirds in). A service found dead that was not killed is counted and
 * restarted.
 */
async function chaos(faults: Faults, startedAt: number, until: () => boolean) {
  const services: ServiceName[] = ["api", "scheduler", "volume"];
  let nextKill = Date.now() + 10_000 + Math.random() * 10_000;
  const postgresAt = startedAt + LOAD_SECONDS * 1000 * 0.35;
  const natsAt = startedAt + LOAD_SECONDS * 1000 * 0.65;
  while (!until()) {
    for (const name of services) {
      if (!alive(name)) {
        faults.unexpectedExits[name]++;
        faults.log.push(`${name} exited by itself (${stack[name].lines.slice(-3).join(" | ").slice(0, 400)})`);
        await revive(name, faults);
      }
    }
    const now = Date.now();
    const t = Math.round((now - startedAt) / 1000);
    if (faults.postgresRestarts === 0 && now >= postgresAt) {
      faults.log.push(`${t}s: PostgreSQL crashed (pg_ctl stop -m immediate) and restarted`);
      await pg.restart();
      faults.postgresRestarts++;
    } else if (faults.natsRestarts === 0 && now >= natsAt) {
      faults.log.push(`${t}s: nats-server SIGKILLed and restarted`);
      await nats.kill();
      await sleep(1000 + Math.random() * 2000);
      await nats.start();
      faults.natsRestarts++;
    } else if (now >= nextKill) {
      const name = pick(services) as ServiceName;
      faults.log.push(`${t}s: ${name} SIGKILLed`);
      await stack[name].kill();
      faults.kills[name]++;
      await sleep(500 + Math.random() * 1500);
      await revive(name, faults);
      nextKill = Date.now() + 10_000 + Math.random() * 10_000;
    }
    await sleep(250);
  }
}

describe.skipIf(Boolean(missing))("fault injection", () => {
  it(
    "loses no accepted call and leaves nothing stuck, half-made or counted twice under kills and restarts",
    async () => {
      const clients = Array.from({ length: PROJECTS }, () =>
        createProjectClient(stack.address, uniqueName("fault-"), { deadlineMs: 10_000 }),
      );
      const calls: CallRecord[] = [];
      const faults: Faults = {
        kills: { api: 0, scheduler: 0, volume: 0 },
        unexpectedExits: { api: 0, scheduler: 0, volume: 0 },
        restartFailures: 0,
        postgresRestarts: 0,
        natsRestarts: 0,
        log: [],
      };
      const startedAt = Date.now();
      const loadOver = () => Date.now() - startedAt > LOAD_SECONDS * 1000;
      await Promise.all([
        chaos(faults, startedAt, loadOver),
        runMixedLoad(
          clients.map((c) => Array.from({ length: WORKERS_PER_PROJECT }, () => c)),
          calls,
          loadOver,
        ),
      ]);
      // The faults are over: every service up, then let the reconciler settle everything.
      for (const name of ["api", "scheduler", "volume"] as const) if (!alive(name)) await revive(name, faults);
      const settleStart = Date.now();
      const settled = await waitUntilSettled(
        { databaseUrl: stack.database.url, dataDir: stack.dataDir },
        SETTLE_LIMIT_MS,
      );
      const settleMs = Date.now() - settleStart;

      const { violations, figures } = await accountForLoad({
        calls,
        projects: clients.map((c) => c.projectId),
        address: stack.address,
        databaseUrl: stack.database.url,
        dataDirs: [stack.dataDir],
        nc: stack.nc,
        prefix: stack.prefix,
      });
      const report = settled.report;

      console.log(
        [
          `[fault-injection] ${LOAD_SECONDS}s of load from ${PROJECTS} projects (${PROJECTS * WORKERS_PER_PROJECT} workers): ${calls.length} calls`,
          ...figures.map((f) => `  ${f}`),
          `  kills (SIGKILL + restart): api ${faults.kills.api}, scheduler ${faults.kills.scheduler}, volume ${faults.kills.volume}; PostgreSQL restarts ${faults.postgresRestarts}; nats-server restarts ${faults.natsRestarts}`,
          `  services that died by themselves: api ${faults.unexpectedExits.api}, scheduler ${faults.unexpectedExits.scheduler}, volume ${faults.unexpectedExits.volume}; failed restart attempts ${faults.restartFailures}`,
          `  settled: ${settled.settled ? "yes" : "NO"} in ${settleMs} ms after the faults stopped`,
          `  invariants after settling: ${summarize(report)}`,
          ...faults.log.map((l) => `  fault: ${l}`),
          `  ${describeViolations(violations).replaceAll("\n", "\n  ")}`,
        ].join("\n"),
      );
      for (const c of clients) c.close();
      expect(faults.kills.api + faults.kills.scheduler + faults.kills.volume).toBeGreaterThan(0);
      for (const [category, list] of violations) expect.soft(list, category).toEqual([]);
    },
    (LOAD_SECONDS + SETTLE_LIMIT_MS / 1000 + 120) * 1000,
  );
});
