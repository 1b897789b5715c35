import { readFileSync } from "node:fs";
import {
  accountForLoad,
  type CallRecord,
  createProjectClient,
  describeViolations,
  findPostgresBin,
  type PostgresPair,
  privatePostgresUnavailable,
  runMixedLoad,
  type ServiceName,
  type Stack,
  sleep,
  startPostgresPair,
  startStack,
  summarize,
  uniqueName,
  waitUntilSettled,
} from "@cinderblock/testing";
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HealthProbe, watchHealth } from "./health.js";

// PostgreSQL failing over under load: a private primary with a synchronous streaming standby, the
// three services on a multi-host DATABASE_URL (target_session_attrs=read-write). Mid-load the
// primary is stopped hard (pg_ctl stop -m immediate) and the standby promoted. Every service must
// reconnect on its own (same process, SERVING again), no commit a caller was told of may be lost,
// and once settled: nothing transitional, quota usage equal to a fresh count, storage equal to
// rows, one `.end` per finished operation. Calls answered UNAVAILABLE while no server took writes
// are expected; they are counted and must stay a minority.

/** Seconds of load (CINDERBLOCK_FAILOVER_LOAD_SECONDS); the primary dies at a third of it. */
const LOAD_SECONDS = Number(process.env.CINDERBLOCK_FAILOVER_LOAD_SECONDS ?? 24);
/** Seconds between the primary's death and the standby's promotion (what an operator or CloudNativePG takes). */
const PROMOTE_AFTER_SECONDS = 3;
const SETTLE_LIMIT_MS = 60_000;
const PROJECTS = 2;
const WORKERS_PER_PROJECT = 3;
const SERVICE_ENV = {
  CINDERBLOCK_OPERATION_TIMEOUT: "15",
  CINDERBLOCK_RECONCILE_INTERVAL: "2",
  CINDERBLOCK_REPORT_INTERVAL: "2",
  CINDERBLOCK_HEALTH_INTERVAL: "1",
  CINDERBLOCK_QUOTA_VOLUMES: "40",
  CINDERBLOCK_QUOTA_SNAPSHOTS: "40",
};
const SERVICES: readonly ServiceName[] = ["api", "scheduler", "volume"];

// pg_basebackup makes the standby.
const missing = privatePostgresUnavailable(["pg_basebackup"]);
if (missing) {
  if (process.env.CI === "true") throw new Error(`postgres-failover suite cannot run: ${missing}`);
  console.log(`[postgres-failover] SKIPPED: ${missing}`);
}

let pair: PostgresPair;
let stack: Stack;
const health = new Map<ServiceName, HealthProbe>();

beforeAll(async () => {
  if (missing) return;
  pair = await startPostgresPair(findPostgresBin() as string);
  // The stack's database is made through the multi-host URL, so DATABASE_URL names both servers.
  stack = await startStack({ databaseServerUrl: pair.multiHostUrl(), env: SERVICE_ENV });
  const { pki } = stack;
  for (const name of SERVICES) {
    // NOTE: the volume host's gRPC server is mutual TLS only: its health is asked with the api's certificate.
    const channel =
      name === "volume"
        ? credentials.createSsl(
            readFileSync(pki.caFile),
            readFileSync(pki.apiClient.keyFile),
            readFileSync(pki.apiClient.certFile),
          )
        : credentials.createInsecure();
    const address =
      name === "api" ? stack.address : `127.0.0.1:${String((await stack[name].waitFor("grpc listening")).port)}`;
    health.set(name, watchHealth(address, channel));
  }
}, 120_000);

afterAll(async () => {
  for (const probe of health.values()) probe.close();
  await stack?.stop().catch((e: unknown) => console.log(`[postgres-failover] stopping the stack: ${String(e)}`));
  await pair?.stop();
}, 120_000);

describe.skipIf(Boolean(missing))("PostgreSQL failover", () => {
  it(
    "rides out a primary stopped hard and a standby promoted: no accepted call lost, every service back on its own",
    async () => {
      const pids = new Map(SERVICES.map((name) => [name, stack[name].child.pid]));
      for (const name of SERVICES) await health.get(name)?.until("SERVING");
      const clients = Array.from({ length: PROJECTS }, () =>
        createProjectClient(stack.address, uniqueName("failover-"), { deadlineMs: 20_000 }),
      );
      const calls: CallRecord[] = [];
      const startedAt = Date.now();
      const loadOver = () => Date.now() - startedAt > LOAD_SECONDS * 1000;
      const timeline: Record<string, number> = {};
      const failover = async () => {
        await sleep((LOAD_SECONDS * 1000) / 3);
        timeline.killed = Date.now();
        await pair.killPrimary();
        await sleep(PROMOTE_AFTER_SECONDS * 1000);
        timeline.promoting = Date.now();
        await pair.promoteStandby();
        timeline.promoted = Date.now();
      };
      await Promise.all([
        failover(),
        runMixedLoad(
          clients.map((c) => Array.from({ length: WORKERS_PER_PROJECT }, () => c)),
          calls,
          loadOver,
        ),
      ]);
      const { killed = 0, promoted = 0 } = timeline;

      const settleStart = Date.now();
      const settled = await waitUntilSettled(
        { databaseUrl: stack.database.url, dataDir: stack.dataDir },
        SETTLE_LIMIT_MS,
      );
      const settleMs = Date.now() - settleStart;
      // An accepted create whose row is gone would be a commit the caller was told of, lost.
      const { violations, figures } = await accountForLoad({
        calls,
        projects: clients.map((c) => c.projectId),
        address: stack.address,
        databaseUrl: stack.database.url,
        dataDirs: [stack.dataDir],
        nc: stack.nc,
        prefix: stack.prefix,
      });
      const violate = (category: string, detail: string) =>
        violations.set(category, [...(violations.get(category) ?? []), detail]);

      // Every service is the process it was, and SERVING: it reconnected on its own.
      const serving = new Map<ServiceName, string>();
      for (const name of SERVICES) {
        const { child } = stack[name];
        if (child.pid !== pids.get(name) || child.exitCode !== null || child.signalCode !== null)
          violate("service restarted or exited", `${name}: ${stack[name].lines.slice(-3).join(" | ")}`);
        serving.set(name, (await health.get(name)?.check()) ?? "no probe");
      }
      // When each service said SERVING again after the failover began (it may never have said otherwise).
      const backAt = SERVICES.map((name) => {
        const lines = stack[name].lines.filter((l) => l.includes('"dependencies reachable again: SERVING"'));
        const down = stack[name].lines.some((l) => l.includes('"dependency unreachable: NOT_SERVING"'));
        return `${name} ${down ? `NOT_SERVING then SERVING again (${lines.length} time(s))` : "never NOT_SERVING"}`;
      });

      const unknown = calls.filter((c) => c.outcome === "unknown");
      const accepted = calls.filter((c) => c.outcome === "accepted");
      const afterPromotion = calls.filter((c) => c.sentAt >= promoted);
      const firstOkAfterPromotion = afterPromotion.find((c) => c.outcome === "accepted");
      const slowest = Math.max(
        ...calls.filter((c) => c.sentAt >= killed && c.sentAt < promoted).map((c) => c.answeredAt - c.sentAt),
        0,
      );
      console.log(
        [
          `[postgres-failover] ${LOAD_SECONDS}s of load from ${PROJECTS * WORKERS_PER_PROJECT} workers: ${calls.length} calls, ${accepted.length} accepted, ${unknown.length} unanswered (UNAVAILABLE or DEADLINE_EXCEEDED), ${calls.length - accepted.length - unknown.length} refused`,
          ...figures.map((f) => `  ${f}`),
          `  primary stopped at ${killed - startedAt} ms, promotion asked at ${(timeline.promoting ?? 0) - startedAt} ms, done at ${promoted - startedAt} ms`,
          `  slowest call sent between the kill and the promotion: ${slowest} ms; first call sent after the promotion answered OK ${firstOkAfterPromotion ? `${firstOkAfterPromotion.answeredAt - promoted} ms after it` : "never"}`,
          `  calls sent after the promotion: ${afterPromotion.length}, ${afterPromotion.filter((c) => c.outcome === "accepted").length} accepted`,
          `  readiness: ${backAt.join("; ")}; now ${[...serving].map(([n, s]) => `${n} ${s}`).join(", ")}`,
          `  settled: ${settled.settled ? "yes" : "NO"} in ${settleMs} ms; invariants: ${summarize(settled.report)}`,
          `  ${describeViolations(violations).replaceAll("\n", "\n  ")}`,
        ].join("\n"),
      );
      for (const c of clients) c.close();

      for (const [category, list] of violations) expect.soft(list, category).toEqual([]);
      expect(settled.settled).toBe(true);
      for (const name of SERVICES) expect(serving.get(name), name).toBe("SERVING");
      // Failures during the failover are a minority, and calls succeed again after the promotion.
      expect(unknown.length * 2).toBeLessThan(calls.length);
      expect(firstOkAfterPromotion).toBeDefined();
      expect(afterPromotion.filter((c) => c.outcome === "accepted").length * 2).toBeGreaterThan(afterPromotion.length);
    },
    (LOAD_SECONDS + SETTLE_LIMIT_MS / 1000 + 60) * 1000,
  );
});
