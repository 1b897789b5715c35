import { readdir, readFile } from "node:fs/promises";
import { identity } from "@cinderblock/testing";
import type { Metadata } from "@grpc/grpc-js";
import type { NatsConnection } from "@nats-io/transport-node";

/** noauth metadata for a project's caller (admin adds the admin role). */
export function callerMetadata(projectId: string, admin = false): Metadata {
  return identity(projectId, "bench", admin ? "admin" : "");
}

/** Percentiles of a sample, in the sample's unit. */
export interface Percentiles {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles (NaN for an empty sample). */
export function percentiles(values: readonly number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
  return { n: s.length, p50: at(50), p95: at(95), p99: at(99), max: s[s.length - 1] ?? Number.NaN };
}

/** Rounds for the report (3 significant decimals at most). */
export function round(n: number, digits = 2): number {
  return Number.isFinite(n) ? Number(n.toFixed(digits)) : n;
}

/**
 * Runs `total` jobs from `clients` closed-loop workers (each starts its next job when its last one
 * finished); `job` gets the worker index and the job's sequence number and returns its latency in ms.
 */
export async function closedLoop(
  clients: number,
  total: number,
  job: (worker: number, seq: number) => Promise<number>,
): Promise<{ latencies: number[]; seconds: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, worker) => {
      for (let seq = next++; seq < total; seq = next++) latencies.push(await job(worker, seq));
    }),
  );
  return { latencies, seconds: (performance.now() - started) / 1000 };
}

/** Resident set size of a process in MiB (Linux /proc), or NaN when it is gone. */
export async function rssMiB(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1]);
    return round(kb / 1024, 1);
  } catch {
    return Number.NaN;
  }
}

/** Where a service's memory is, in MiB, from its own `/metrics` (prom-client's process and Node.js gauges). */
export interface MemoryParts {
  heapUsed: number;
  heapTotal: number;
  external: number;
}

/** Reads {@link MemoryParts} from a `/metrics` endpoint (`host:port`); NaN where it cannot. */
export async function memoryParts(metricsAddress: string | undefined): Promise<MemoryParts> {
  const parts = { heapUsed: Number.NaN, heapTotal: Number.NaN, external: Number.NaN };
  if (!metricsAddress) return parts;
  try {
    const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
    const gauge = (name: string) => round(Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1]) / 2 ** 20, 1);
    return {
      heapUsed: gauge("nodejs_heap_size_used_bytes"),
      heapTotal: gauge("nodejs_heap_size_total_bytes"),
      external: gauge("nodejs_external_memory_bytes"),
    };
  } catch {
    return parts;
  }
}

/** CPU time (user + system) a process has used so far, in seconds (Linux /proc), or NaN when it is gone. */
export async function cpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU time (user + system, seconds) each of these processes and all its descendants have used so
 * far, those that exited and were waited for included (their parent's cutime and cstime): e.g. a
 * PostgreSQL postmaster's whole server, backends that came and went too. NaN for one that is gone.
 * One pass over /proc for all of them.
 */
export async function treeCpuSeconds<K extends string>(
  roots: Record<K, number | undefined>,
): Promise<Record<K, number>> {
  const stats = new Map<number, { ppid: number; seconds: number }>();
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    // Fields after the command name (which may hold spaces): ppid is the 2nd, utime..cstime the 12th to 15th.
    const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    if (fields.length < 15) continue;
    const seconds = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) / CLOCK_TICKS;
    stats.set(Number(pid), { ppid: Number(fields[1]), seconds });
  }
  const children = new Map<number, number[]>();
  for (const [pid, { ppid }] of stats) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const tree = (root: number | undefined) => {
    if (root === undefined || !stats.has(root)) return Number.NaN;
    let total = 0;
    const queue = [root];
    for (let pid = queue.pop(); pid !== undefined; pid = queue.pop()) {
      total += stats.get(pid)?.seconds ?? 0;
      queue.push(...(children.get(pid) ?? []));
    }
    return total;
  };
  const out = {} as Record<K, number>;
  for (const key of Object.keys(roots) as K[]) out[key] = tree(roots[key]);
  return out;
}

/** Busy and total CPU time of the whole machine so far, in seconds (Linux /proc/stat). */
export async function machineCpu(): Promise<{ busy: number; total: number }> {
  const cpu = (await readFile("/proc/stat", "utf8")).split("\n")[0]?.split(/\s+/).slice(1).map(Number) ?? [];
  const total = cpu.reduce((a, b) => a + b, 0);
  // idle and iowait are the 4th and 5th.
  return { busy: (total - (cpu[3] ?? 0) - (cpu[4] ?? 0)) / CLOCK_TICKS, total: total / CLOCK_TICKS };
}

/** USER_HZ: the unit of /proc's CPU times (100 on every Linux architecture Node runs on). */
const CLOCK_TICKS = 100;

/** Threads of a process's libuv pool (named `libuv-worker`), or NaN when it is gone. */
export async function libuvThreads(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  try {
    const tasks = await readdir(`/proc/${pid}/task`);
    const names = await Promise.all(tasks.map((t) => readFile(`/proc/${pid}/task/${t}/comm`, "utf8").catch(() => "")));
    return names.filter((n) => n.trim() === "libuv-worker").length;
  } catch {
    return Number.NaN;
  }
}

/** The outcome of one snapshot as its notification told it. */
interface Completion {
  ok: boolean;
  /** performance.now() when the notification arrived. */
  at: number;
  /** Epoch ms when it arrived, and the epoch ms its sender stamped it with (the envelope's timestamp). */
  receivedEpochMs: number;
  stampedEpochMs: number;
  /** Epoch ms stamped on the `snapshot.create.start` notification, when one came (the stack's, not the floor's). */
  startedEpochMs?: number;
}

/**
 * Learns when snapshots finish from their notifications (`snapshot.create.end`, or an error), on
 * core NATS: nobody polls. `wait(id)` resolves at the notification, even one that came first.
 */
export interface CompletionTracker {
  wait(snapshotId: string): Promise<Completion>;
  close(): void;
}

/** Subscribes to a stack's (or the floor's) notification subjects under `prefix`. */
export function trackCompletions(nc: NatsConnection, prefix: string, timeoutMs = 180_000): CompletionTracker {
  const done = new Map<string, Completion>();
  const waiters = new Map<string, (c: Completion) => void>();
  const starts = new Map<string, number>();
  type Envelope = { timestamp?: string; payload?: { snapshot_id?: string } };
  const stamp = (e: Envelope) => (e.timestamp ? Date.parse(e.timestamp) : Number.NaN);
  const subjects = [
    [`${prefix}.notifications.info.snapshot.create.end`, true],
    [`${prefix}.notifications.error.snapshot.create.error`, false],
    [`${prefix}.notifications.error.scheduler.create_snapshot`, false],
  ] as const;
  const startSub = nc.subscribe(`${prefix}.notifications.info.snapshot.create.start`, {
    callback: (err, msg) => {
      if (err) return;
      const envelope = msg.json<Envelope>();
      starts.set(envelope.payload?.snapshot_id ?? "", stamp(envelope));
    },
  });
  const subs = subjects.map(([subject, ok]) =>
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        const at = performance.now();
        const envelope = msg.json<Envelope>();
        const id = envelope.payload?.snapshot_id ?? "";
        // NOTE: the start was published before the end's transaction began, so it came in first.
        const startedEpochMs = starts.get(id);
        starts.delete(id);
        const completion = { ok, at, receivedEpochMs: Date.now(), stampedEpochMs: stamp(envelope), startedEpochMs };
        const waiter = waiters.get(id);
        if (waiter) {
          waiters.delete(id);
          waiter(completion);
        } else done.set(id, completion);
      },
    }),
  );
  return {
    wait(snapshotId) {
      const seen = done.get(snapshotId);
      if (seen) {
        done.delete(snapshotId);
        return Promise.resolve(seen);
      }
      // NOTE: a snapshot that never reports back is a finding, not a reason to hang the run.
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(snapshotId);
          reject(new Error(`snapshot ${snapshotId}: no notification within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        waiters.set(snapshotId, (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
    },
    close() {
      for (const s of [...subs, startSub]) s.unsubscribe();
    },
  };
}

/** Formats a table of rows (first row: header) with aligned columns. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  const line = (r: readonly string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  const [head, ...body] = rows;
  return [line(head ?? []), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}
