import { execFileSync } from "node:child_process";
import { createDb } from "@cinderblock/db";
import type { Snapshot, Volume } from "@cinderblock/proto";
import {
  type CallOutcome,
  checkInvariants,
  countByResource,
  createProjectClient,
  findNatsServer,
  findPostgresBin,
  outcomeOf,
  type PrivateNats,
  type PrivatePostgres,
  type ProjectClient,
  readNotifications,
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
import { sql } from "drizzle-orm";
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
  const pgBin = findPostgresBin();
  if (!pgBin) return "no PostgreSQL server binaries (initdb, pg_ctl under /usr/lib/postgresql/<version>/bin)";
  if (process.getuid?.() === 0) {
    try {
      execFileSync("id", ["-u", "postgres"], { stdio: "ignore" });
    } catch {
      return "running as root and there is no `postgres` OS user to run a private PostgreSQL as";
    }
  }
  if (!findNatsServer()) return "no nats-server binary (apt-get install nats-server)";
  return undefined;
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

type CallKind =
  | "CreateVolume"
  | "CreateVolume(from snapshot)"
  | "CreateSnapshot"
  | "ExtendVolume"
  | "DeleteSnapshot"
  | "DeleteVolume"
  | "DeleteVolume(cascade)";

/** One call the load made, and how it ended from the caller's side. */
interface CallRecord {
  kind: CallKind;
  project: string;
  /** The volume or snapshot it acted on (deletes, extend, snapshot, clone). */
  target?: string;
  /** For creates: the name (also its client_request_id), to find it by listing when unanswered. */
  name?: string;
  /** For creates: the id of what it made, when answered (or found by listing). */
  created?: string;
  newSizeGb?: number;
  outcome: CallOutcome<unknown>["kind"];
  code?: string;
}

/** What a worker knows of its project: the ids it was told about, minus those it deleted. */
interface Known {
  volumes: Set<string>;
  snapshots: Map<string, string>;
}

const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(Math.random() * items.length)];

/** A worker: random calls as one project until `until`, each recorded in `calls`. */
async function worker(c: ProjectClient, known: Known, calls: CallRecord[], until: () => boolean) {
  while (!until()) {
    const roll = Math.random() * 100;
    const volume = pick([...known.volumes]);
    const snapshot = pick([...known.snapshots.keys()]);
    const record = (kind: CallKind, o: CallOutcome<unknown>, extra: Partial<CallRecord> = {}) =>
      calls.push({
        kind,
        project: c.projectId,
        outcome: o.kind,
        ...(o.kind !== "accepted" ? { code: o.codeName } : {}),
        ...extra,
      });
    if (roll < 22 || !volume) {
      const name = uniqueName("v-");
      const o = await outcomeOf(
        c.createVolume({ name, clientRequestId: name, sizeGb: 1 + Math.floor(Math.random() * 2) }),
      );
      if (o.kind === "accepted") known.volumes.add((o.value as Volume).id);
      record("CreateVolume", o, { name, ...(o.kind === "accepted" ? { created: (o.value as Volume).id } : {}) });
    } else if (roll < 44) {
      const name = uniqueName("s-");
      const o = await outcomeOf(c.createSnapshot({ volumeId: volume, name, clientRequestId: name }));
      if (o.kind === "accepted") known.snapshots.set((o.value as Snapshot).id, volume);
      record("CreateSnapshot", o, {
        target: volume,
        name,
        ...(o.kind === "accepted" ? { created: (o.value as Snapshot).id } : {}),
      });
    } else if (roll < 54 && snapshot) {
      const name = uniqueName("c-");
      const o = await outcomeOf(c.createVolume({ name, clientRequestId: name, snapshotId: snapshot, sizeGb: 0 }));
      if (o.kind === "accepted") known.volumes.add((o.value as Volume).id);
      record("CreateVolume(from snapshot)", o, {
        target: snapshot,
        name,
        ...(o.kind === "accepted" ? { created: (o.value as Volume).id } : {}),
      });
    } else if (roll < 64) {
      const newSizeGb = 3 + Math.floor(Math.random() * 3);
      const o = await outcomeOf(c.extendVolume(volume, newSizeGb));
      record("ExtendVolume", o, { target: volume, newSizeGb });
    } else if (roll < 82 && snapshot) {
      const o = await outcomeOf(c.deleteSnapshot(snapshot));
      if (o.kind === "accepted") known.snapshots.delete(snapshot);
      record("DeleteSnapshot", o, { target: snapshot });
    } else {
      const cascade = Math.random() < 0.6;
      const o = await outcomeOf(c.deleteVolume(volume, cascade));
      if (o.kind === "accepted") {
        known.volumes.delete(volume);
        for (const [s, v] of known.snapshots) if (v === volume) known.snapshots.delete(s);
      }
      record(cascade ? "DeleteVolume(cascade)" : "DeleteVolume", o, { target: volume });
    }
    // A refusal that says the target is gone: forget it.
    const last = calls.at(-1);
    if (last?.code === "NOT_FOUND" && last.target) {
      known.volumes.delete(last.target);
      known.snapshots.delete(last.target);
    }
    await sleep(50 + Math.random() * 250);
  }
}

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

type Row = {
  id: string;
  project_id: string;
  name: string;
  status: string;
  status_reason: string;
  deleted: boolean;
  size_gb?: number;
  volume_id?: string;
};

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
        ...clients.flatMap((c) => {
          const known: Known = { volumes: new Set(), snapshots: new Map() };
          return Array.from({ length: WORKERS_PER_PROJECT }, () => worker(c, known, calls, loadOver));
        }),
      ]);
      // The faults are over: every service up, then let the reconciler settle everything.
      for (const name of ["api", "scheduler", "volume"] as const) if (!alive(name)) await revive(name, faults);
      const settleStart = Date.now();
      const settled = await waitUntilSettled(
        { databaseUrl: stack.database.url, dataDir: stack.dataDir },
        SETTLE_LIMIT_MS,
      );
      const settleMs = Date.now() - settleStart;

      // Reconcile the unanswered creates by listing (each create's name is unique to it).
      const listed = new Map<string, { id: string; name: string }>();
      for (const c of clients) {
        // A fresh channel: the load's channels may sit in reconnect backoff after the api's kills.
        const fresh = createProjectClient(stack.address, c.projectId, { deadlineMs: 10_000 });
        try {
          for (let attempt = 1; ; attempt++) {
            try {
              for (const v of await fresh.listVolumes()) listed.set(`${c.projectId} ${v.name}`, v);
              for (const s of await fresh.listSnapshots()) listed.set(`${c.projectId} ${s.name}`, s);
              break;
            } catch (error) {
              if (attempt >= 10) throw error;
              await sleep(2000);
            }
          }
        } finally {
          fresh.close();
        }
      }
      const db = createDb({ url: stack.database.url, max: 1 });
      const violations = new Map<string, string[]>();
      const violate = (category: string, detail: string) =>
        violations.set(category, [...(violations.get(category) ?? []), detail]);
      let unknownCreatesFound = 0;
      let unknownCreatesDeletedSince = 0;
      let unknownCreatesAbsent = 0;
      try {
        const volumes = new Map(
          (
            await db.db.execute<Row>(
              sql`select id::text, project_id, name, status, status_reason, deleted, size_gb from volumes`,
            )
          ).map((r) => [r.id, r]),
        );
        const snapshots = new Map(
          (
            await db.db.execute<Row>(
              sql`select id::text, project_id, name, status, status_reason, deleted, volume_id::text from snapshots`,
            )
          ).map((r) => [r.id, r]),
        );
        const byName = new Map(
          [...volumes.values(), ...snapshots.values()].map((r) => [`${r.project_id} ${r.name}`, r]),
        );
        for (const call of calls) {
          if (call.outcome === "refused" && call.name) {
            // A refused create (whatever its code, INTERNAL included) must have written nothing.
            const row = byName.get(`${call.project} ${call.name}`);
            if (row)
              violate("refused create made a row anyway", `${call.kind} (${call.code}) ${row.id}: ${row.status}`);
          }
          if (call.outcome !== "unknown" || !call.name) continue;
          const found = listed.get(`${call.project} ${call.name}`);
          if (found) {
            call.created = found.id;
            unknownCreatesFound++;
          } else if (byName.get(`${call.project} ${call.name}`)?.deleted) {
            // Made, then deleted with its volume (a cascade) before the listing.
            call.created = byName.get(`${call.project} ${call.name}`)?.id;
            unknownCreatesDeletedSince++;
          } else {
            unknownCreatesAbsent++;
            const row = byName.get(`${call.project} ${call.name}`);
            if (row)
              violate(
                "unanswered create half-made (a row the list does not show)",
                `${call.kind} ${row.id}: ${row.status}`,
              );
          }
        }

        // Every delete that was accepted, or that may have happened (unanswered).
        const deleteAsked = new Set(
          calls.filter((c) => c.kind.startsWith("Delete") && c.outcome !== "refused").map((c) => c.target ?? ""),
        );
        const cascadeAsked = new Set(
          calls.filter((c) => c.kind === "DeleteVolume(cascade)" && c.outcome !== "refused").map((c) => c.target ?? ""),
        );
        const mayBeDeleted = (row: Row) =>
          deleteAsked.has(row.id) || (row.volume_id !== undefined && cascadeAsked.has(row.volume_id));
        const ended = (row: Row) =>
          ["available", "in-use"].includes(row.status) ||
          (row.status.startsWith("error") && row.status_reason !== "") ||
          (row.deleted && mayBeDeleted(row));

        // Every accepted (or found) create is accounted for.
        for (const call of calls) {
          if (!call.created) continue;
          const row = volumes.get(call.created) ?? snapshots.get(call.created);
          if (!row) violate("accepted create lost (no row)", `${call.kind} ${call.created}`);
          else if (!ended(row))
            violate(
              "accepted create did not end available, error with a reason, or deleted by a delete",
              `${call.kind} ${row.id}: ${row.deleted ? "deleted" : row.status} ${row.status_reason}`,
            );
        }
        // Every accepted delete completed (or failed with a reason).
        for (const call of calls) {
          if (!call.kind.startsWith("Delete") || call.outcome !== "accepted" || !call.target) continue;
          const row = volumes.get(call.target) ?? snapshots.get(call.target);
          if (!row?.deleted && !(row?.status === "error_deleting" && row.status_reason))
            violate(
              "accepted delete did not delete (nor fail with a reason)",
              `${call.kind} ${call.target}: ${row ? `${row.status} ${row.status_reason}` : "no row"}`,
            );
          if (call.kind === "DeleteVolume(cascade)" && row?.deleted) {
            for (const s of snapshots.values())
              if (s.volume_id === call.target && !s.deleted)
                violate("cascade left a snapshot of a deleted volume", `${s.id}: ${s.status} ${s.status_reason}`);
          }
        }
        // Every accepted extend completed (or failed with a reason), unless its volume went.
        for (const call of calls) {
          if (call.kind !== "ExtendVolume" || call.outcome !== "accepted" || !call.target) continue;
          const row = volumes.get(call.target);
          const ok =
            row?.deleted ||
            (row?.status.startsWith("error") && row.status_reason) ||
            (row && (row.size_gb ?? 0) >= (call.newSizeGb ?? 0));
          if (!ok)
            violate(
              "accepted extend did not complete (nor fail with a reason)",
              `${call.target} to ${call.newSizeGb} GiB: ${row?.status} ${row?.size_gb} GiB ${row?.status_reason}`,
            );
        }

        // Exactly one `.end` per finished operation.
        const counts = countByResource(await readNotifications(stack.nc, stack.prefix));
        const ends = (event: string, id: string) => counts.get(`${event} ${id}`) ?? 0;
        const extendsOf = (id: string) =>
          calls.filter((c) => c.kind === "ExtendVolume" && c.target === id && c.outcome !== "refused").length;
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
            if (row.deleted && deleted !== 1) violate(`${kind}.delete.end missing for a deleted ${kind}`, `${row.id}`);
            if (kind === "volume" && ends("volume.resize.end", row.id) > extendsOf(row.id))
              violate("volume.resize.end sent more often than extends were asked", `${row.id}`);
          }
        }
      } finally {
        await db.close();
      }

      const report = await checkInvariants({ databaseUrl: stack.database.url, dataDir: stack.dataDir });
      for (const line of report.transitional) violate("stuck in a transitional status", line);
      for (const line of report.pendingOperations) violate("operation never finished", line);
      for (const line of report.quota) violate("quota usage differs from a fresh count", line);
      for (const line of report.storage) violate("storage differs from rows", line);
      for (const line of report.strayFiles) violate("stray file", line);

      // The figures.
      const kinds = [...new Set(calls.map((c) => c.kind))].sort();
      const perKind = kinds
        .map((k) => {
          const of = calls.filter((c) => c.kind === k);
          const codes = [...new Set(of.filter((c) => c.outcome === "refused").map((c) => c.code))].join(",");
          return `  ${k}: ${of.length} calls, ${of.filter((c) => c.outcome === "accepted").length} accepted, ${
            of.filter((c) => c.outcome === "refused").length
          } refused (${codes}), ${of.filter((c) => c.outcome === "unknown").length} unanswered`;
        })
        .join("\n");
      console.log(
        [
          `[fault-injection] ${LOAD_SECONDS}s of load from ${PROJECTS} projects (${PROJECTS * WORKERS_PER_PROJECT} workers): ${calls.length} calls`,
          perKind,
          `  kills (SIGKILL + restart): api ${faults.kills.api}, scheduler ${faults.kills.scheduler}, volume ${faults.kills.volume}; PostgreSQL restarts ${faults.postgresRestarts}; nats-server restarts ${faults.natsRestarts}`,
          `  services that died by themselves: api ${faults.unexpectedExits.api}, scheduler ${faults.unexpectedExits.scheduler}, volume ${faults.unexpectedExits.volume}; failed restart attempts ${faults.restartFailures}`,
          `  unanswered creates: ${unknownCreatesFound} found by listing, ${unknownCreatesDeletedSince} made then deleted by a cascade, ${unknownCreatesAbsent} never made`,
          `  settled: ${settled.settled ? "yes" : "NO"} in ${settleMs} ms after the faults stopped`,
          `  invariants after settling: ${summarize(report)}`,
          ...faults.log.map((l) => `  fault: ${l}`),
          violations.size === 0
            ? "  no violations"
            : `  violations:\n${[...violations].map(([k, v]) => `    ${k}: ${v.length} (e.g. ${v[0]})`).join("\n")}`,
        ].join("\n"),
      );
      for (const c of clients) c.close();
      expect(faults.kills.api + faults.kills.scheduler + faults.kills.volume).toBeGreaterThan(0);
      for (const [category, list] of violations) expect.soft(list, category).toEqual([]);
    },
    (LOAD_SECONDS + SETTLE_LIMIT_MS / 1000 + 120) * 1000,
  );
});
