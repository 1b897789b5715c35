import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import postgres from "postgres";
import { sleep } from "./net.js";

/** Volume statuses an operation passes through and must leave. */
export const TRANSITIONAL_VOLUME_STATUSES: readonly string[] = [
  "creating",
  "deleting",
  "extending",
  "attaching",
  "detaching",
  "reverting",
  "retyping",
  "reserved",
  "maintenance",
];

/** Snapshot statuses an operation passes through and must leave. */
export const TRANSITIONAL_SNAPSHOT_STATUSES: readonly string[] = [
  "creating",
  "deleting",
  "restoring",
  "backing-up",
  "unmanaging",
];

const GiB = 1024 ** 3;

/** What {@link checkInvariants} looks at. */
export interface InvariantOptions {
  databaseUrl: string;
  /** The file driver's directory, or each of several (a stack's hosts and clusters on their own). */
  dataDir: string | readonly string[];
  /** Only these projects' rows (every project when absent). */
  projects?: readonly string[];
}

/** Each list names one violation per line; all empty means the invariant holds. */
export interface InvariantReport {
  /** Rows (and attachments) still in a transitional status. */
  transitional: string[];
  /** Operations still pending (not done or failed). */
  pendingOperations: string[];
  /** Quota usage rows that differ from a fresh count of the live rows. */
  quota: string[];
  /** Rows whose storage is missing, of the wrong size, or still there after the row was deleted. */
  storage: string[];
  /** Image files of no row at all, and temporary files left behind. */
  strayFiles: string[];
}

/** A one-line summary: the number of violations per invariant. */
export function summarize(report: InvariantReport): string {
  return Object.entries(report)
    .map(([name, list]: [string, string[]]) => `${name}=${list.length}`)
    .join(" ");
}

interface VolumeRow {
  id: string;
  project_id: string;
  status: string;
  status_reason: string;
  size_gb: number;
  volume_type: string;
  deleted: boolean;
}
interface SnapshotRow {
  id: string;
  project_id: string;
  volume_id: string;
  status: string;
  status_reason: string;
  volume_size_gb: number;
  volume_type: string;
  deleted: boolean;
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

/**
 * Checks, from the database and the file driver's directory, what must hold once every operation
 * has finished: no row in a transitional status, no pending operation, quota usage equal to a
 * fresh count of the live rows per project, and storage equal to rows (each live volume and
 * available snapshot has its image of its size; a deleted row has none; no image of an unknown
 * id, no temporary file).
 */
export async function checkInvariants(options: InvariantOptions): Promise<InvariantReport> {
  const sql = postgres(options.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const scoped = options.projects !== undefined;
    const projects = [...(options.projects ?? [])];
    const volumes = await sql<VolumeRow[]>`
      select id, project_id, status, status_reason, size_gb, volume_type, deleted from volumes
       where ${scoped ? sql`project_id = any(${projects})` : sql`true`}`;
    const snapshots = await sql<SnapshotRow[]>`
      select id, project_id, volume_id, status, status_reason, volume_size_gb, volume_type, deleted from snapshots
       where ${scoped ? sql`project_id = any(${projects})` : sql`true`}`;
    const attachments = await sql<{ id: string; volume_id: string; attach_status: string }[]>`
      select id, volume_id, attach_status from volume_attachments
       where ${scoped ? sql`project_id = any(${projects})` : sql`true`}`;
    const operations = await sql<{ id: string; kind: string; resource_id: string; attempts: number }[]>`
      select id, kind, resource_id, attempts from operations
       where state = 'pending' and ${scoped ? sql`project_id = any(${projects})` : sql`true`}`;
    const usage = await sql<{ project_id: string; resource: string; in_use: number }[]>`
      select project_id, resource, in_use from quota_usages
       where ${scoped ? sql`project_id = any(${projects})` : sql`true`}`;
    const knownIds = new Set(
      (await sql<{ id: string }[]>`select id::text from volumes union all select id::text from snapshots`).map(
        (r) => r.id,
      ),
    );

    const report: InvariantReport = { transitional: [], pendingOperations: [], quota: [], storage: [], strayFiles: [] };
    for (const v of volumes) {
      if (!v.deleted && TRANSITIONAL_VOLUME_STATUSES.includes(v.status)) {
        report.transitional.push(`volume ${v.id} is ${v.status}`);
      }
    }
    for (const s of snapshots) {
      if (!s.deleted && TRANSITIONAL_SNAPSHOT_STATUSES.includes(s.status)) {
        report.transitional.push(`snapshot ${s.id} (of volume ${s.volume_id}) is ${s.status}`);
      }
    }
    for (const a of attachments) {
      if (a.attach_status !== "attached") {
        report.transitional.push(`attachment ${a.id} of volume ${a.volume_id} is ${a.attach_status}`);
      }
    }
    for (const o of operations) {
      report.pendingOperations.push(`${o.kind} ${o.resource_id} (operation ${o.id}, ${o.attempts} attempt(s))`);
    }

    // Quota: a fresh count of the live rows, per project and resource (typed resources too).
    const fresh = new Map<string, number>();
    const add = (project: string, resource: string, n: number) =>
      fresh.set(`${project} ${resource}`, (fresh.get(`${project} ${resource}`) ?? 0) + n);
    for (const v of volumes) {
      if (v.deleted) continue;
      add(v.project_id, "volumes", 1);
      add(v.project_id, "gigabytes", v.size_gb);
      if (v.volume_type) {
        add(v.project_id, `volumes_${v.volume_type}`, 1);
        add(v.project_id, `gigabytes_${v.volume_type}`, v.size_gb);
      }
    }
    for (const s of snapshots) {
      if (s.deleted) continue;
      add(s.project_id, "snapshots", 1);
      add(s.project_id, "gigabytes", s.volume_size_gb);
      if (s.volume_type) {
        add(s.project_id, `snapshots_${s.volume_type}`, 1);
        add(s.project_id, `gigabytes_${s.volume_type}`, s.volume_size_gb);
      }
    }
    const recorded = new Map(usage.map((u) => [`${u.project_id} ${u.resource}`, u.in_use]));
    for (const key of new Set([...fresh.keys(), ...recorded.keys()])) {
      const want = fresh.get(key) ?? 0;
      const got = recorded.get(key) ?? 0;
      if (want !== got) report.quota.push(`${key}: usage row says ${got}, the rows count ${want}`);
    }

    // Storage equals rows.
    const dirs = typeof options.dataDir === "string" ? [options.dataDir] : options.dataDir;
    // Each file name, with the directory it is in.
    const files = new Map<string, string>();
    for (const dir of dirs) for (const entry of await readdir(dir).catch(() => [] as string[])) files.set(entry, dir);
    const entries = [...files.keys()];
    const sizeIn = async (name: string) => {
      const dir = files.get(name);
      return dir === undefined ? undefined : await sizeOf(join(dir, name));
    };
    for (const v of volumes) {
      const name = `volume-${v.id}.img`;
      const size = await sizeIn(name);
      if (v.deleted) {
        if (size !== undefined) report.storage.push(`volume ${v.id} is deleted but ${name} is still there`);
      } else if (["available", "in-use"].includes(v.status)) {
        if (size === undefined) report.storage.push(`volume ${v.id} is ${v.status} but has no ${name}`);
        else if (size !== v.size_gb * GiB) {
          report.storage.push(`volume ${v.id} is ${v.size_gb} GiB but ${name} is ${size / GiB} GiB`);
        }
      }
    }
    for (const s of snapshots) {
      const name = `snapshot-${s.id}.img`;
      const size = await sizeIn(name);
      if (s.deleted) {
        if (size !== undefined) report.storage.push(`snapshot ${s.id} is deleted but ${name} is still there`);
      } else if (["available", "restoring"].includes(s.status)) {
        if (size === undefined) report.storage.push(`snapshot ${s.id} is ${s.status} but has no ${name}`);
        else if (size !== s.volume_size_gb * GiB) {
          report.storage.push(
            `snapshot ${s.id} is of a ${s.volume_size_gb} GiB volume but ${name} is ${size / GiB} GiB`,
          );
        }
      }
    }
    for (const entry of entries) {
      const id = /^(?:volume|snapshot)-([0-9a-f-]{36})\.img$/.exec(entry)?.[1];
      if (id) {
        if (!knownIds.has(id)) report.strayFiles.push(`${entry}: no volume or snapshot row has this id`);
      } else if (entry.startsWith(".") && entry.includes(".tmp-")) {
        report.strayFiles.push(`${entry}: a temporary file left behind`);
      }
    }
    return report;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/**
 * Waits until nothing is in flight in `options.projects` (no transitional row, no pending
 * operation) or `timeoutMs` passes; resolves with whether it settled, how long it took and the
 * invariant report at that point.
 */
export async function waitUntilSettled(
  options: InvariantOptions,
  timeoutMs: number,
): Promise<{ settled: boolean; ms: number; report: InvariantReport }> {
  const start = Date.now();
  for (;;) {
    const report = await checkInvariants(options);
    const settled = report.transitional.length === 0 && report.pendingOperations.length === 0;
    if (settled || Date.now() - start > timeoutMs) return { settled, ms: Date.now() - start, report };
    await sleep(250);
  }
}
