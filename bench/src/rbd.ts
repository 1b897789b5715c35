/**
 * Snapshot create on real Ceph: the whole stack versus the bare calls, in the same run. Starts a
 * single-node cluster (scripts/ceph/up.sh) and two stacks (api, scheduler, volume host with the
 * rbd driver: one through librbd, one through the rbd CLI), makes one 1 GiB volume in each, then
 * times, one at a time, alternately, N times each:
 *   - CreateSnapshot until WatchSnapshot reports `available`, through each stack;
 *   - `rbd snap create` + `rbd snap protect` with the CLI (two processes), on an image of its own;
 *   - the same two calls through the rbd-native addon on a connection opened once.
 * Usage: node bench/dist/rbd.js [count=30]
 */
import { execFile, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  CreateSnapshotRequest,
  CreateVolumeRequest,
  type Snapshot,
  SnapshotStatus,
  VolumeStatus,
} from "@cinderblock/proto";
import { loadRbdNative } from "@cinderblock/rbd-native";
import { REPO_ROOT, type Stack, startStack } from "@cinderblock/testing";
import { Metadata } from "@grpc/grpc-js";
import { unary } from "./lib.js";

const execFileAsync = promisify(execFile);
const SCRIPTS = join(REPO_ROOT, "scripts", "ceph");
const POOL = "rbd";

function summary(label: string, values: number[]): string {
  if (values.length === 0) return `${label.padEnd(56)} (not measured)`;
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
  const f = (n: number) => n.toFixed(1).padStart(7);
  return `${label.padEnd(56)} p50 ${f(at(50))} ms  p95 ${f(at(95))} ms  min ${f(s[0] ?? Number.NaN)} ms`;
}

/** One stack on the cluster with its own client, and a volume ready for snapshots. */
async function stackWithVolume(clusterDir: string, client: "librbd" | "cli", count: number) {
  const stack = await startStack({
    env: {
      CINDERBLOCK_VOLUME_DRIVER: "rbd",
      CINDERBLOCK_BACKEND_NAME: "rbd",
      CINDERBLOCK_DRIVER_OPTIONS: JSON.stringify({
        pool: POOL,
        confPath: join(clusterDir, "ceph.conf"),
        keyring: join(clusterDir, "keyring"),
        client,
      }),
      CINDERBLOCK_QUOTA_SNAPSHOTS: String(count + 10),
      CINDERBLOCK_QUOTA_GIGABYTES: "-1",
    },
  });
  const md = new Metadata();
  md.set("x-project-id", `bench-${client}`);
  md.set("x-user-id", "bench");
  const created = await unary<{ volume?: { id: string } }>((done) =>
    stack.volumes.createVolume(CreateVolumeRequest.fromPartial({ name: "bench", sizeGb: 1 }), md, done),
  );
  const volumeId = created.volume?.id ?? "";
  for (;;) {
    const v = await unary<{ volume?: { status: VolumeStatus } }>((done) =>
      stack.volumes.getVolume({ id: volumeId }, md, done),
    );
    if (v.volume?.status === VolumeStatus.VOLUME_STATUS_AVAILABLE) break;
    if (v.volume?.status !== VolumeStatus.VOLUME_STATUS_CREATING) throw new Error(`volume ended ${v.volume?.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { stack, md, volumeId };
}

/** CreateSnapshot → available, in ms. */
async function stackSnapshot(stack: Stack, md: Metadata, volumeId: string, name: string): Promise<number> {
  const t0 = performance.now();
  const res = await unary<{ snapshot?: Snapshot }>((done) =>
    stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name }), md, done),
  );
  const last = await new Promise<Snapshot | undefined>((resolve, reject) => {
    let seen: Snapshot | undefined;
    const stream = stack.snapshots.watchSnapshot({ id: res.snapshot?.id ?? "" }, md);
    stream.on("data", (m: { snapshot?: Snapshot }) => {
      seen = m.snapshot;
    });
    stream.on("error", reject);
    stream.on("end", () => resolve(seen));
  });
  if (last?.status !== SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE)
    throw new Error(`snapshot ${name} ended ${last?.status}`);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 30);
  const check = await execFileAsync(join(SCRIPTS, "check.sh")).catch((e: { stdout?: string }) => e);
  if ("stdout" in check && check.stdout?.trim()) throw new Error(check.stdout.trim());
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

    const viaLibrbd = native.binding ? await stackWithVolume(clusterDir, "librbd", count) : undefined;
    if (viaLibrbd) stacks.push(viaLibrbd);
    const viaCli = await stackWithVolume(clusterDir, "cli", count);
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
        await cluster.createSnapshot(addonImage, `s${i}`);
        await cluster.protectSnapshot(addonImage, `s${i}`);
        rawAddonMs.push(performance.now() - t);
      }
    }
    await cluster?.close();

    const ceph = (await execFileAsync("ceph", ["--version"])).stdout.trim();
    console.log(`snapshots: ${count} each, one at a time, alternating; ${ceph}; Node ${process.versions.node}`);
    console.log(`cluster: 1 mon, 1 mgr, 1 BlueStore OSD (scripts/ceph/up.sh, up in ${upSeconds.toFixed(1)} s)`);
    console.log(summary("CreateSnapshot → available, stack, driver via librbd", stackLibrbdMs));
    console.log(summary("CreateSnapshot → available, stack, driver via rbd CLI", stackCliMs));
    console.log(summary("raw rbd snap create + protect, CLI (2 processes)", rawCliMs));
    console.log(summary("raw snap create + protect, rbd-native addon", rawAddonMs));
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
