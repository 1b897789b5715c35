import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const execFileAsync = promisify(execFile);
const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));

interface Load {
  clients: number;
  count: number;
  perSecond: number;
  failed: number;
  latencyMs: { n: number; p50: number; p99: number };
  stagesMs?: Record<string, number>;
  counts?: Record<string, number> & { cpuMs: Record<string, number> };
}

const PROCESSES = ["api", "scheduler", "volume", "postgres", "nats", "client", "machine"];

/**
 * What one snapshot cost, counted on the run's own servers: every count there, none negative, CPU
 * spent by each process under the 64-caller load (one at a time, a process may stay under the
 * clock's 10 ms tick), and at least one statement and one commit per snapshot, each commit with a
 * statement, and WAL and JetStream messages written.
 */
function saneCounts(load: Load | undefined): void {
  const counts = load?.counts;
  expect(Object.keys(counts?.cpuMs ?? {}).sort()).toEqual([...PROCESSES].sort());
  for (const p of PROCESSES) {
    expect(Number.isFinite(counts?.cpuMs[p])).toBe(true);
    expect(counts?.cpuMs[p]).toBeGreaterThanOrEqual(0);
    if (load?.clients === 64 && p !== "client") expect(counts?.cpuMs[p]).toBeGreaterThan(0);
  }
  for (const count of ["statements", "commits", "walBytes", "statementWalBytes", "jsMessages", "jsBytes"]) {
    sane(counts?.[count] ?? Number.NaN);
  }
  expect(counts?.nestedStatements).toBeGreaterThanOrEqual(0);
  expect(counts?.commits).toBeGreaterThanOrEqual(1);
  expect(counts?.statements).toBeGreaterThanOrEqual(counts?.commits ?? Number.NaN);
  // Each snapshot at least stored its cast to the scheduler, to the volume host and its end notification.
  expect(counts?.jsMessages).toBeGreaterThanOrEqual(3);
}

/** A figure the bench can print: a positive, finite number (never a bound on it: speed is not asserted). */
function sane(n: number): void {
  expect(Number.isFinite(n)).toBe(true);
  expect(n).toBeGreaterThan(0);
}

function saneLoad(load: Load | undefined, clients: number): void {
  expect(load?.clients).toBe(clients);
  expect(load?.failed).toBe(0);
  expect(load?.latencyMs.n).toBe(load?.count);
  sane(load?.perSecond ?? Number.NaN);
  sane(load?.latencyMs.p50 ?? Number.NaN);
  expect(load?.latencyMs.p99).toBeGreaterThanOrEqual(load?.latencyMs.p50 ?? Number.NaN);
}

describe("npm run bench -- --quick", () => {
  it("runs every scenario on the real stack and reports sane figures, with nothing lost or stuck and the quota exact", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cinderblock-bench-test-"));
    try {
      const out = join(dir, "result.json");
      const { stdout } = await execFileAsync(process.execPath, [MAIN, "--quick", "--out", out], {
        maxBuffer: 16 * 1024 * 1024,
      });
      expect(stdout).toContain("request → available");
      const report = JSON.parse(await readFile(out, "utf8"));
      const { scenarios, integrity } = report;

      expect(scenarios.api.map((r: Load) => r.clients)).toEqual([1, 16, 64]);
      for (const r of scenarios.api) saneLoad(r, r.clients);
      saneLoad(scenarios.endToEnd[0], 1);
      saneLoad(scenarios.endToEnd[1], 64);
      // Where the time went: every stage, seen for the stack (its start notification), none negative.
      for (const r of scenarios.endToEnd) {
        expect(Object.keys(r.stagesMs ?? {})).toEqual(["call", "to volume host", "volume host", "notified"]);
        for (const ms of Object.values(r.stagesMs ?? {})) expect(ms).toBeGreaterThanOrEqual(0);
      }
      expect(stdout).toContain("2. stages at 64 client(s)");
      saneLoad(scenarios.floor[0], 1);
      saneLoad(scenarios.floor[1], 64);
      // What a snapshot costs, ours and the floor's, counted: printed side by side with the ratio.
      expect(report.servers).toBe("private");
      for (const r of [...scenarios.endToEnd, ...scenarios.floor]) saneCounts(r);
      expect(stdout).toContain("per snapshot (counts)");
      expect(scenarios.endToEnd[1].topStatements.length).toBeGreaterThan(0);
      for (const r of scenarios.oursOverFloor) sane(r.throughput);

      expect(scenarios.list.cases.map((c: { name: string }) => c.name)).toHaveLength(6);
      for (const c of scenarios.list.cases) {
        sane(c.latencyMs.p50);
        expect(c.returned).toBeGreaterThan(0);
      }
      for (const when of ["idle", "afterEndToEnd"]) {
        for (const service of ["api", "scheduler", "volume"]) sane(scenarios.memoryMiB[when][service]);
      }
      expect(scenarios.backends.map((b: { name: string }) => b.name)).toEqual(["lvm (thin)", "rbd"]);
      for (const b of scenarios.backends) expect(b.detail).not.toBe("");

      // Every snapshot the bench asked for is available: none lost, none stuck, quota exact.
      const requested = [...scenarios.api, ...scenarios.endToEnd].reduce((n: number, r: Load) => n + r.count, 0);
      expect(integrity.snapshots).toEqual({ available: requested });
      expect(integrity.quotaSnapshotsInUse).toBe(requested);
      expect(integrity.quotaExact).toBe(true);
      expect(integrity.outboxLeft).toBe(0);
      expect(integrity.operationsPending).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
