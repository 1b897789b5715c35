/**
 * Snapshot create on real Ceph: the whole stack versus the bare calls, in the same run. Starts a
 * single-node cluster (scripts/ceph/up.sh) and two stacks (api, scheduler, volume host with the
 * rbd driver: one through librbd, one through the rbd CLI), makes 1 GiB volumes in each (one, and
 * one per concurrent caller in the librbd one), then times, one at a time, alternately, N times each:
 *   - CreateSnapshot until WatchSnapshot reports `available`, through each stack;
 *   - `rbd snap create` + `rbd snap protect` with the CLI (two processes), on an image of its own;
 *   - the same two calls through the rbd-native addon on a connection opened once.
 * Then, with 16 closed-loop callers, each on a volume (an image) of its own since one volume's
 * snapshots serialize, M snapshots in all each way:
 *   - CreateSnapshot until WatchSnapshot reports `available`, through the stack with the driver
 *     on librbd;
 *   - snap create + protect through the addon on one connection (as the driver holds one), on one
 *     open of the image (createProtectedSnapshot, as the driver does);
 * and prints the CPU each process spent per snapshot in those two phases.
 * Usage: node bench/dist/rbd.js [count=30] [concurrent=300]
 */
import { execFile, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { CreateSnapshotRequest, type Snapshot, SnapshotStatus } from "@cinderblock/proto";
import { loadRbdNative } from "@cinderblock/rbd-native";
import {
  availableVolumes,
  backendScripts,
  backendUnavailable,
  call,
  NO_RATE_LIMITS,
  type Stack,
  startStack,
  untilEnd,
} from "@cinderblock/testing";
import type { Metadata } from "@grpc/grpc-js";
import { callerMetadata, closedLoop, cpuSeconds, libuvThreads, machineCpu, percentiles } from "./lib.js";

const execFileAsync = promisify(execFile);
const SCRIPTS = backendScripts("ceph");
const POOL = "rbd";
/** Callers of the concurrent phase (issue 6's target: ≥ 70 snapshots/s with 16 clients). */
const CLIENTS = 16;

function summary(label: string, values: number[]): string {
  if (values.length === 0) return `${label.padEnd(56)} (not measured)`;
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
  const f = (n: number) => n.toFixed(1).padStart(7);
  return `${label.padEnd(56)} p50 ${f(at(50))} ms  p95 ${f(at(95))} ms  min ${f(s[0] ?? Number.NaN)} ms`;
}

/** What a closed-loop phase measured (lib.ts's closedLoop). */
type Load = { latencies: number[]; seconds: number };

/** Throughput and latency percentiles of a closed-loop run. */
function loadSummary(label: string, run: Load): string {
  const p = percentiles(run.latencies);
  const f = (n: number) => n.toFixed(1).padStart(7);
  const perSecond = (run.latencies.length / run.seconds).toFixed(1).padStart(6);
  return `${label.padEnd(56)} ${perSecond}/s  p50 ${f(p.p50)} ms  p95 ${f(p.p95)} ms  p99 ${f(p.p99)} ms`;
}

/**
 * Starts this process's libuv pool with `threads` threads, for the raw phase: each librbd call of
 * the addon holds a pool thread while it waits on the cluster, and Node's default of 4 would cap
 * the 16 callers at 4 calls in flight. The pool takes its size from the environment when first
 * used and keeps it; the variable is taken back at once, so the services started later get the
 * environment they would get anyway. A UV_THREADPOOL_SIZE given to the bench is left alone.
 */
async function startThreadPool(threads: number): Promise<void> {
  if (process.env.UV_THREADPOOL_SIZE !== undefined) return;
  process.env.UV_THREADPOOL_SIZE = String(threads);
  try {
    await stat(".");
  } finally {
    delete process.env.UV_THREADPOOL_SIZE;
  }
}

/** Runs a closed-loop phase and says how much CPU each process in `pids` spent per snapshot. */
async function withCpu(pids: Record<string, number | undefined>, phase: () => Promise<Load>) {
  const names = Object.keys(pids);
  const cpuOf = () => Promise.all(names.map((n) => cpuSeconds(pids[n])));
  const [before, machineBefore] = [await cpuOf(), await machineCpu()];
  const load = await phase();
  const [after, machineAfter] = [await cpuOf(), await machineCpu()];
  const perSnapshot = names.map(
    (n, i) => `${n} ${((((after[i] ?? 0) - (before[i] ?? 0)) * 1000) / load.latencies.length).toFixed(1)} ms`,
  );
  const busy = (machineAfter.busy - machineBefore.busy) / load.seconds;
  return { load, cpu: `${perSnapshot.join(", ")}; machine ${busy.toFixed(2)} of ${cpus().length} cores busy` };
}

/** One stack on the cluster with its own client, and `volumes` volumes ready for snapshots. */
async function stackWithVolumes(clusterDir: string, client: "librbd" | "cli", volumes: number, snapshots: number) {
  const stack = await startStack({
    env: {
      ...NO_RATE_LIMITS,
      CINDERBLOCK_VOLUME_DRIVER: "rbd",
      CINDERBLOCK_BACKEND_NAME: "rbd",
      CINDERBLOCK_DRIVER_OPTIONS: JSON.stringify({
        pool: POOL,
        confPath: join(clusterDir, "ceph.conf"),
        keyring: join(clusterDir, "keyring"),
        client,
      }),
      CINDERBLOCK_QUOTA_SNAPSHOTS: String(snapshots + 10),
      CINDERBLOCK_QUOTA_VOLUMES: String(volumes),
      CINDERBLOCK_QUOTA_GIGABYTES: "-1",
    },
  });
  const md = callerMetadata(`bench-${client}`);
  const volumeIds = await availableVolumes(stack.volumes, md, volumes, "bench");
  return { stack, md, volumeId: volumeIds[0] ?? "", volumeIds };
}

/** CreateSnapshot → available, in ms. */
async function stackSnapshot(stack: Stack, md: Metadata, volumeId: string, name: string): Promise<number> {
  const t0 = performance.now();
  const res = await call<{ snapshot?: Snapshot }>((done) =>
    stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name }), md, done),
  );
  const seen = await untilEnd<{ snapshot?: Snapshot }>(
    stack.snapshots.watchSnapshot({ id: res.snapshot?.id ?? "" }, md),
  );
  const last = seen.at(-1)?.snapshot;
  if (last?.status !== SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE)
    throw new Error(`snapshot ${name} ended ${last?.status}`);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 30);
  const concurrent = Number(process.argv[3] ?? 300);
  await startThreadPool(CLIENTS);
  const unavailable = await backendUnavailable("ceph");
  if (unavailable) throw new Error(unavailable);
  const native = loadRbdNative();
  if (!native.binding) console.log(`librbd addon unavailable (${native.error.message}): CLI figures only`);

  const root = await mkdtemp(join(tmpdir(), "cinderblock-rbd-bench-"));
  const clusterDir = join(root, "cluster");
  const stacks: Array<{ stack: Stack }> = [];
  // Ctrl-C or a kill must not leave Ceph daemons behind.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      execFileSync(join(SCRIPTS, "down.sh"), [clusterDir], { stdio: "inherit" });
      process.exit(130);
    });
  }
  try {
    const t0 = performance.now();
    await execFileAsync(join(SCRIPTS, "up.sh"), [clusterDir], { env: { ...process.env, WAIT_HEALTH: "0" } });
    const upSeconds = (performance.now() - t0) / 1000;
    const auth = ["--conf", join(clusterDir, "ceph.conf"), "--keyring", join(clusterDir, "keyring")];
    const rbd = (...args: string[]) => execFileAsync("rbd", [...args, ...auth]);

    const viaLibrbd = native.binding
      ? await stackWithVolumes(clusterDir, "librbd", CLIENTS, count + concurrent)
      : undefined;
    if (viaLibrbd) stacks.push(viaLibrbd);
    const viaCli = await stackWithVolumes(clusterDir, "cli", 1, count);
    stacks.push(viaCli);

    const cliImage = `bench-cli-${randomUUID()}`;
    const addonImage = `bench-addon-${randomUUID()}`;
    await rbd("create", "--size", "1G", `${POOL}/${cliImage}`);
    await rbd("create", "--size", "1G", `${POOL}/${addonImage}`);
    const cluster = native.binding
      ? new native.binding.Cluster({
          pool: POOL,
          confPath: join(clusterDir, "ceph.conf"),
          keyring: join(clusterDir, "keyring"),
        })
      : undefined;
    await cluster?.connect();

    const stackLibrbdMs: number[] = [];
    const stackCliMs: number[] = [];
    const rawCliMs: number[] = [];
    const rawAddonMs: number[] = [];
    for (let i = 0; i < count; i++) {
      if (viaLibrbd)
        stackLibrbdMs.push(await stackSnapshot(viaLibrbd.stack, viaLibrbd.md, viaLibrbd.volumeId, `s${i}`));
      stackCliMs.push(await stackSnapshot(viaCli.stack, viaCli.md, viaCli.volumeId, `s${i}`));

      let t = performance.now();
      await rbd("snap", "create", "--no-progress", `${POOL}/${cliImage}@s${i}`);
      await rbd("snap", "protect", `${POOL}/${cliImage}@s${i}`);
      rawCliMs.push(performance.now() - t);

      if (cluster) {
        t = performance.now();
        await cluster.createProtectedSnapshot(addonImage, `s${i}`);
        rawAddonMs.push(performance.now() - t);
      }
    }

    // The concurrent phase: the driver on librbd only (the CLI's cost is its processes, above).
    const daemon = async (name: string) => Number(await readFile(join(clusterDir, "run", `${name}.pid`), "utf8"));
    const ceph = { "ceph-osd": await daemon("osd.0"), "ceph-mon": await daemon("mon.a") };
    const stackConcurrent = viaLibrbd
      ? await withCpu(
          {
            api: viaLibrbd.stack.api.child.pid,
            scheduler: viaLibrbd.stack.scheduler.child.pid,
            volume: viaLibrbd.stack.volume.child.pid,
            ...ceph,
          },
          () =>
            closedLoop(CLIENTS, concurrent, (worker, seq) =>
              stackSnapshot(viaLibrbd.stack, viaLibrbd.md, viaLibrbd.volumeIds[worker] ?? "", `c${seq}`),
            ),
        )
      : undefined;
    let rawConcurrent: { load: Load; cpu: string } | undefined;
    if (cluster) {
      const images = Array.from({ length: CLIENTS }, (_, i) => `bench-addon-${i}-${randomUUID()}`);
      for (const image of images) await cluster.createImage(image, 1024 ** 3);
      rawConcurrent = await withCpu({ bench: process.pid, ...ceph }, () =>
        closedLoop(CLIENTS, concurrent, async (worker, seq) => {
          const image = images[worker] ?? "";
          const t = performance.now();
          await cluster.createProtectedSnapshot(image, `c${seq}`);
          return performance.now() - t;
        }),
      );
    }
    await cluster?.close();
    const threads = {
      volume: await libuvThreads(viaLibrbd?.stack.volume.child.pid),
      bench: await libuvThreads(process.pid),
    };

    const version = (await execFileAsync("ceph", ["--version"])).stdout.trim();
    console.log(`snapshots: ${count} each, one at a time, alternating; ${version}; Node ${process.versions.node}`);
    console.log(`cluster: 1 mon, 1 mgr, 1 BlueStore OSD (scripts/ceph/up.sh, up in ${upSeconds.toFixed(1)} s)`);
    console.log(summary("CreateSnapshot → available, stack, driver via librbd", stackLibrbdMs));
    console.log(summary("CreateSnapshot → available, stack, driver via rbd CLI", stackCliMs));
    console.log(summary("raw rbd snap create + protect, CLI (2 processes)", rawCliMs));
    console.log(summary("raw snap create + protect, rbd-native addon (one open)", rawAddonMs));
    console.log(`concurrent: ${concurrent} each, ${CLIENTS} closed-loop callers, each on a volume (image) of its own`);
    if (stackConcurrent) {
      console.log(
        loadSummary(`CreateSnapshot → available, stack via librbd, ${CLIENTS} clients`, stackConcurrent.load),
      );
    }
    if (rawConcurrent) {
      console.log(loadSummary(`raw snap create + protect, addon, ${CLIENTS} at once`, rawConcurrent.load));
    }
    if (stackConcurrent && rawConcurrent) {
      const rate = (r: Load) => r.latencies.length / r.seconds;
      const ratio = rate(stackConcurrent.load) / rate(rawConcurrent.load);
      console.log(`stack / raw at ${CLIENTS} clients: throughput ${ratio.toFixed(2)}`);
    }
    if (stackConcurrent) console.log(`CPU per snapshot, stack: ${stackConcurrent.cpu}`);
    if (rawConcurrent) console.log(`CPU per snapshot, raw: ${rawConcurrent.cpu}`);
    console.log(`libuv pool threads: volume host ${threads.volume}, bench (raw phase) ${threads.bench}`);
  } finally {
    for (const { stack } of stacks) await stack.stop();
    await execFileAsync(join(SCRIPTS, "down.sh"), [clusterDir]);
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
