import type { Snapshot, Volume } from "@cinderblock/proto";
import type { NatsConnection } from "@nats-io/transport-node";
import postgres from "postgres";
import { uniqueName } from "./database.js";
import { type CallOutcome, createProjectClient, outcomeOf, type ProjectClient } from "./grpc.js";
import { checkInvariants } from "./invariants.js";
import { sleep } from "./net.js";
import { countByResource, readNotifications } from "./notifications.js";

// The mixed load the resilience suites (fault injection, scale-out, PostgreSQL failover) run while
// they break things, and the accounting afterwards: every accepted call accounted for (nothing
// lost, nothing half-made, nothing stuck), quota usage equal to a fresh count, storage equal to
// rows, and exactly one `.end` per finished operation. Calls that got no answer (UNAVAILABLE,
// DEADLINE_EXCEEDED) are reconciled by listing: each create's name is unique to it.

export type CallKind =
  | "CreateVolume"
  | "CreateVolume(from snapshot)"
  | "CreateSnapshot"
  | "ExtendVolume"
  | "DeleteSnapshot"
  | "DeleteVolume"
  | "DeleteVolume(cascade)";

/** One call the load made, and how it ended from the caller's side. */
export interface CallRecord {
  kind: CallKind;
  project: string;
  /** The volume or snapshot it acted on (deletes, extend, snapshot, clone). */
  target?: string;
  /** For creates: the name (also its client_request_id), to find it by listing when unanswered. */
  name?: string;
  /** For creates: the id of what it made, when answered (or found by listing). */
  created?: string;
  newSizeGb?: number;
  /** When the call was sent and answered (epoch ms). */
  sentAt: number;
  answeredAt: number;
  outcome: CallOutcome<unknown>["kind"];
  code?: string;
}

/** What a project's workers know: the ids they were told about, minus those they deleted. */
interface Known {
  volumes: Set<string>;
  snapshots: Map<string, string>;
}

const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(Math.random() * items.length)];

/** One worker: random calls as one project until `until`, each recorded in `calls`. */
async function worker(c: ProjectClient, known: Known, calls: CallRecord[], until: () => boolean) {
  while (!until()) {
    const roll = Math.random() * 100;
    const volume = pick([...known.volumes]);
    const snapshot = pick([...known.snapshots.keys()]);
    const sentAt = Date.now();
    const record = (kind: CallKind, o: CallOutcome<unknown>, extra: Partial<CallRecord> = {}) =>
      calls.push({
        kind,
        project: c.projectId,
        sentAt,
        answeredAt: Date.now(),
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

/**
 * Runs `workersPerClient` workers per client until `until()`, recording every call in `calls`.
 * Workers of one client share what they know of their project, wherever their client points (one
 * api replica or another).
 */
export async function runMixedLoad(
  clients: readonly ProjectClient[][],
  calls: CallRecord[],
  until: () => boolean,
): Promise<void> {
  await Promise.all(
    clients.map((projectClients) => {
      const known: Known = { volumes: new Set(), snapshots: new Map() };
      return Promise.all(projectClients.map((c) => worker(c, known, calls, until)));
    }),
  );
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

/** Where {@link accountForLoad} looks. */
export interface AccountingOptions {
  calls: readonly CallRecord[];
  projects: readonly string[];
  /** An api address to list each project's volumes and snapshots through. */
  address: string;
  databaseUrl: string;
  /** The file driver's directories (one per data directory of the stack's backends). */
  dataDirs: readonly string[];
  nc: NatsConnection;
  prefix: string;
}

/** What {@link accountForLoad} found: violations by category, and figures to print. */
export interface Accounting {
  violations: Map<string, string[]>;
  /** One line per call kind (calls, accepted, refused with their codes, unanswered), and the unanswered creates' fate. */
  figures: string[];
}

/** Lists a project's volumes and snapshots by name, retrying while the api is coming back. */
async function listByName(address: string, projectId: string, into: Map<string, { id: string; name: string }>) {
  // A fresh channel: the load's channels may sit in reconnect backoff after an api's kills.
  const fresh = createProjectClient(address, projectId, { deadlineMs: 10_000 });
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        for (const v of await fresh.listVolumes()) into.set(`${projectId} ${v.name}`, v);
        for (const s of await fresh.listSnapshots()) into.set(`${projectId} ${s.name}`, s);
        return;
      } catch (error) {
        if (attempt >= 10) throw error;
        await sleep(2000);
      }
    }
  } finally {
    fresh.close();
  }
}

/**
 * Accounts for every call of a load that has settled: what each accepted, refused or unanswered
 * call did to the rows, the notifications sent, and the invariants (nothing transitional, no
 * pending operation, quota, storage, stray files).
 */
export async function accountForLoad(options: AccountingOptions): Promise<Accounting> {
  const { calls } = options;
  const listed = new Map<string, { id: string; name: string }>();
  for (const project of options.projects) await listByName(options.address, project, listed);
  const violations = new Map<string, string[]>();
  const violate = (category: string, detail: string) =>
    violations.set(category, [...(violations.get(category) ?? []), detail]);
  let unknownCreatesFound = 0;
  let unknownCreatesDeletedSince = 0;
  let unknownCreatesAbsent = 0;
  const sql = postgres(options.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const volumes = new Map(
      (await sql<Row[]>`select id::text, project_id, name, status, status_reason, deleted, size_gb from volumes`).map(
        (r) => [r.id, r],
      ),
    );
    const snapshots = new Map(
      (
        await sql<
          Row[]
        >`select id::text, project_id, name, status, status_reason, deleted, volume_id::text from snapshots`
      ).map((r) => [r.id, r]),
    );
    const byName = new Map([...volumes.values(), ...snapshots.values()].map((r) => [`${r.project_id} ${r.name}`, r]));
    for (const call of calls) {
      if (call.outcome === "refused" && call.name) {
        // A refused create (whatever its code, INTERNAL included) must have written nothing.
        const row = byName.get(`${call.project} ${call.name}`);
        if (row) violate("refused create made a row anyway", `${call.kind} (${call.code}) ${row.id}: ${row.status}`);
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
    const counts = countByResource(await readNotifications(options.nc, options.prefix));
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
    await sql.end({ timeout: 1 });
  }

  const report = await checkInvariants({ databaseUrl: options.databaseUrl, dataDir: options.dataDirs });
  for (const line of report.transitional) violate("stuck in a transitional status", line);
  for (const line of report.pendingOperations) violate("operation never finished", line);
  for (const line of report.quota) violate("quota usage differs from a fresh count", line);
  for (const line of report.storage) violate("storage differs from rows", line);
  for (const line of report.strayFiles) violate("stray file", line);

  const kinds = [...new Set(calls.map((c) => c.kind))].sort();
  const figures = kinds.map((k) => {
    const of = calls.filter((c) => c.kind === k);
    const refused = of.filter((c) => c.outcome === "refused");
    const unanswered = of.filter((c) => c.outcome === "unknown");
    const codes = (list: CallRecord[]) => [...new Set(list.map((c) => c.code))].join(",");
    return `${k}: ${of.length} calls, ${of.filter((c) => c.outcome === "accepted").length} accepted, ${
      refused.length
    } refused (${codes(refused)}), ${unanswered.length} unanswered (${codes(unanswered)})`;
  });
  figures.push(
    `unanswered creates: ${unknownCreatesFound} found by listing, ${unknownCreatesDeletedSince} made then deleted by a cascade, ${unknownCreatesAbsent} never made`,
  );
  return { violations, figures };
}

/** The violations as lines to print ("no violations" when there are none). */
export function describeViolations(violations: ReadonlyMap<string, readonly string[]>): string {
  if (violations.size === 0) return "no violations";
  return `violations:\n${[...violations].map(([k, v]) => `  ${k}: ${v.length} (e.g. ${v[0]})`).join("\n")}`;
}
