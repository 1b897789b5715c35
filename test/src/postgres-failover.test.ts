import { execFileSync } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Snapshot, Volume } from "@cinderblock/proto";
import {
  type CallOutcome,
  checkInvariants,
  countByResource,
  createProjectClient,
  findPostgresBin,
  outcomeOf,
  type PostgresPair,
  type ProjectClient,
  readNotifications,
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
import postgres from "postgres";
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

/** What the suite needs that may be missing on a machine: a reason to skip, or undefined. */
function missingPrerequisite(): string | undefined {
  const pgBin = findPostgresBin();
  if (!pgBin) return "no PostgreSQL server binaries (initdb, pg_ctl under /usr/lib/postgresql/<version>/bin)";
  try {
    accessSync(join(pgBin, "pg_basebackup"), constants.X_OK);
  } catch {
    return `no pg_basebackup in ${pgBin} (it makes the standby)`;
  }
  if (process.getuid?.() === 0) {
    try {
      execFileSync("id", ["-u", "postgres"], { stdio: "ignore" });
    } catch {
      return "running as root and there is no `postgres` OS user to run a private PostgreSQL as";
    }
  }
  return undefined;
}

const missing = missingPrerequisite();
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

type CallKind = "CreateVolume" | "CreateSnapshot" | "DeleteSnapshot" | "DeleteVolume(cascade)";

/** One call of the load, and how it ended from the caller's side. */
interface CallRecord {
  kind: CallKind;
  project: string;
  target?: string;
  /** For creates: the name (also its client_request_id), to find it by listing when unanswered. */
  name?: string;
  created?: string;
  /** When the call was sent and answered, in ms since the load began. */
  sentAt: number;
  answeredAt: number;
  outcome: CallOutcome<unknown>["kind"];
  code?: string;
}

interface Known {
  volumes: Set<string>;
  snapshots: Map<string, string>;
}

const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(Math.random() * items.length)];

/** Random creates, snapshots and deletes as one project until `until()`, each recorded. */
async function worker(c: ProjectClient, known: Known, calls: CallRecord[], startedAt: number, until: () => boolean) {
  while (!until()) {
    const roll = Math.random() * 100;
    const volume = pick([...known.volumes]);
    const snapshot = pick([...known.snapshots.keys()]);
    const sentAt = Date.now() - startedAt;
    const record = (kind: CallKind, o: CallOutcome<unknown>, extra: Partial<CallRecord>) =>
      calls.push({
        kind,
        project: c.projectId,
        sentAt,
        answeredAt: Date.now() - startedAt,
        outcome: o.kind,
        ...(o.kind !== "accepted" ? { code: o.codeName } : {}),
        ...extra,
      });
    if (roll < 35 || !volume) {
      const name = uniqueName("v-");
      const o = await outcomeOf(c.createVolume({ name, clientRequestId: name, sizeGb: 1 }));
      const created = o.kind === "accepted" ? (o.value as Volume).id : undefined;
      if (created) known.volumes.add(created);
      record("CreateVolume", o, { name, ...(created ? { created } : {}) });
    } else if (roll < 65) {
      const name = uniqueName("s-");
      const o = await outcomeOf(c.createSnapshot({ volumeId: volume, name, clientRequestId: name }));
      const created = o.kind === "accepted" ? (o.value as Snapshot).id : undefined;
      if (created) known.snapshots.set(created, volume);
      record("CreateSnapshot", o, { target: volume, name, ...(created ? { created } : {}) });
    } else if (roll < 80 && snapshot) {
      const o = await outcomeOf(c.deleteSnapshot(snapshot));
      if (o.kind === "accepted") known.snapshots.delete(snapshot);
      record("DeleteSnapshot", o, { target: snapshot });
    } else {
      const o = await outcomeOf(c.deleteVolume(volume, true));
      if (o.kind === "accepted") {
        known.volumes.delete(volume);
        for (const [s, v] of known.snapshots) if (v === volume) known.snapshots.delete(s);
      }
      record("DeleteVolume(cascade)", o, { target: volume });
    }
    const last = calls.at(-1);
    if (last?.code === "NOT_FOUND" && last.target) {
      known.volumes.delete(last.target);
      known.snapshots.delete(last.target);
    }
    await sleep(50 + Math.random() * 150);
  }
}

type Row = {
  id: string;
  project_id: string;
  name: string;
  status: string;
  status_reason: string;
  deleted: boolean;
  volume_id?: string;
};

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
        timeline.killed = Date.now() - startedAt;
        await pair.killPrimary();
        await sleep(PROMOTE_AFTER_SECONDS * 1000);
        timeline.promoting = Date.now() - startedAt;
        await pair.promoteStandby();
        timeline.promoted = Date.now() - startedAt;
      };
      await Promise.all([
        failover(),
        ...clients.flatMap((c) => {
          const known: Known = { volumes: new Set(), snapshots: new Map() };
          return Array.from({ length: WORKERS_PER_PROJECT }, () => worker(c, known, calls, startedAt, loadOver));
        }),
      ]);
      const { killed = 0, promoted = 0 } = timeline;

      const settleStart = Date.now();
      const settled = await waitUntilSettled(
        { databaseUrl: stack.database.url, dataDir: stack.dataDir },
        SETTLE_LIMIT_MS,
      );
      const settleMs = Date.now() - settleStart;

      // Unanswered creates are found, or not, by listing (each create's name is unique to it).
      const listed = new Map<string, string>();
      for (const c of clients) {
        for (const v of await c.listVolumes()) listed.set(`${c.projectId} ${v.name}`, v.id);
        for (const s of await c.listSnapshots()) listed.set(`${c.projectId} ${s.name}`, s.id);
      }

      const violations = new Map<string, string[]>();
      const violate = (category: string, detail: string) =>
        violations.set(category, [...(violations.get(category) ?? []), detail]);
      const sql = postgres(stack.database.url, { max: 1, onnotice: () => {} });
      try {
        const volumes = new Map(
          (await sql<Row[]>`select id::text, project_id, name, status, status_reason, deleted from volumes`).map(
            (r) => [r.id, r],
          ),
        );
        const snapshots = new Map(
          (
            await sql<Row[]>`
              select id::text, project_id, name, status, status_reason, deleted, volume_id::text from snapshots`
          ).map((r) => [r.id, r]),
        );
        const byName = new Map(
          [...volumes.values(), ...snapshots.values()].map((r) => [`${r.project_id} ${r.name}`, r]),
        );
        for (const call of calls) {
          if (!call.name) continue;
          const row = byName.get(`${call.project} ${call.name}`);
          if (call.outcome === "refused" && row) {
            violate("refused create made a row anyway", `${call.kind} (${call.code}) ${row.id}: ${row.status}`);
          }
          // An unanswered create may have committed (its COMMIT's answer was lost): then it is listed.
          if (call.outcome === "unknown" && row) call.created = listed.get(`${call.project} ${call.name}`) ?? row.id;
        }
        const cascaded = new Set(
          calls.filter((c) => c.kind === "DeleteVolume(cascade)" && c.outcome !== "refused").map((c) => c.target),
        );
        const deleteAsked = new Set(
          calls.filter((c) => c.kind.startsWith("Delete") && c.outcome !== "refused").map((c) => c.target),
        );
        const ended = (row: Row) =>
          ["available", "in-use"].includes(row.status) ||
          (row.status.startsWith("error") && row.status_reason !== "") ||
          (row.deleted && (deleteAsked.has(row.id) || cascaded.has(row.volume_id)));
        for (const call of calls) {
          if (!call.created) continue;
          const row = volumes.get(call.created) ?? snapshots.get(call.created);
          if (!row)
            violate("accepted create lost (a commit the caller was told of is gone)", `${call.kind} ${call.created}`);
          else if (!ended(row))
            violate(
              "accepted create did not end available, error with a reason, or deleted",
              `${call.kind} ${row.id}: ${row.deleted ? "deleted" : row.status} ${row.status_reason}`,
            );
        }
        for (const call of calls) {
          if (!call.kind.startsWith("Delete") || call.outcome !== "accepted" || !call.target) continue;
          const row = volumes.get(call.target) ?? snapshots.get(call.target);
          if (!row?.deleted && !(row?.status.startsWith("error") && row.status_reason))
            violate(
              "accepted delete did not delete (nor fail with a reason)",
              `${call.kind} ${call.target}: ${row ? `${row.status} ${row.status_reason}` : "no row"}`,
            );
        }

        // Exactly one `.end` per finished operation.
        const counts = countByResource(await readNotifications(stack.nc, stack.prefix));
        const ends = (event: string, id: string) => counts.get(`${event} ${id}`) ?? 0;
        for (const [kind, rows] of [
          ["volume", volumes],
          ["snapshot", snapshots],
        ] as const) {
          for (const row of rows.values()) {
            const created = ends(`${kind}.create.end`, row.id);
            const deleted = ends(`${kind}.delete.end`, row.id);
            if (created > 1) violate(`${kind}.create.end sent more than once`, `${row.id}: ${created}`);
            if (deleted > 1) violate(`${kind}.delete.end sent more than once`, `${row.id}: ${deleted}`);
            if (!row.deleted && row.status === "available" && created !== 1)
              violate(`${kind}.create.end missing for an available ${kind}`, `${row.id}: ${created}`);
            if (row.deleted && deleted !== 1) violate(`${kind}.delete.end missing for a deleted ${kind}`, row.id);
          }
        }
      } finally {
        await sql.end({ timeout: 1 });
      }

      const report = await checkInvariants({ databaseUrl: stack.database.url, dataDir: stack.dataDir });
      for (const line of report.transitional) violate("stuck in a transitional status", line);
      for (const line of report.pendingOperations) violate("operation never finished", line);
      for (const line of report.quota) violate("quota usage differs from a fresh count", line);
      for (const line of report.storage) violate("storage differs from rows", line);
      for (const line of report.strayFiles) violate("stray file", line);

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
      const kinds = [...new Set(calls.map((c) => c.kind))].sort();
      console.log(
        [
          `[postgres-failover] ${LOAD_SECONDS}s of load from ${PROJECTS * WORKERS_PER_PROJECT} workers: ${calls.length} calls, ${accepted.length} accepted, ${unknown.length} unanswered (UNAVAILABLE or DEADLINE_EXCEEDED), ${calls.length - accepted.length - unknown.length} refused`,
          ...kinds.map((k) => {
            const of = calls.filter((c) => c.kind === k);
            const codes = [...new Set(of.filter((c) => c.outcome !== "accepted").map((c) => c.code))].join(",");
            return `  ${k}: ${of.length} calls, ${of.filter((c) => c.outcome === "accepted").length} accepted, ${of.filter((c) => c.outcome === "unknown").length} unanswered, ${of.filter((c) => c.outcome === "refused").length} refused (${codes})`;
          }),
          `  primary stopped at ${killed} ms, promotion asked at ${timeline.promoting} ms, done at ${promoted} ms`,
          `  slowest call sent between the kill and the promotion: ${slowest} ms; first call sent after the promotion answered OK ${firstOkAfterPromotion ? `${firstOkAfterPromotion.answeredAt - promoted} ms after it` : "never"}`,
          `  calls sent after the promotion: ${afterPromotion.length}, ${afterPromotion.filter((c) => c.outcome === "accepted").length} accepted`,
          `  readiness: ${backAt.join("; ")}; now ${[...serving].map(([n, s]) => `${n} ${s}`).join(", ")}`,
          `  settled: ${settled.settled ? "yes" : "NO"} in ${settleMs} ms; invariants: ${summarize(report)}`,
          violations.size === 0
            ? "  no violations"
            : `  violations:\n${[...violations].map(([k, v]) => `    ${k}: ${v.length} (e.g. ${v[0]})`).join("\n")}`,
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
