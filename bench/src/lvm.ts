/**
 * Snapshot create on real LVM: the whole stack versus the bare command, in the same run. Boots the
 * LVM test guest (scripts/lvm-guest), starts api, scheduler and a volume host with the lvm driver
 * (its commands run in the guest through the agent), makes one 1 GiB volume, then times, one at a
 * time, alternately: a CreateSnapshot call until WatchSnapshot reports `available`, and a raw
 * `lvcreate -s` of the same volume through the same agent (seen from the host, and inside the
 * guest itself), N times each.
 * Usage: node bench/dist/lvm.js [count=20] [thin|thick=thin]
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { CreateSnapshotRequest, type Snapshot, SnapshotStatus } from "@cinderblock/proto";
import {
  availableVolume,
  backendScripts,
  backendUnavailable,
  call,
  freePort,
  identity,
  NO_RATE_LIMITS,
  startStack,
  untilEnd,
} from "@cinderblock/testing";

const execFileAsync = promisify(execFile);
const SCRIPTS = backendScripts("lvm-guest");
const VG = "cinder-volumes";

function summary(label: string, values: number[]): string {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
  const f = (n: number) => n.toFixed(0).padStart(6);
  return `${label.padEnd(52)} p50 ${f(at(50))} ms  p95 ${f(at(95))} ms  min ${f(s[0] ?? Number.NaN)} ms`;
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 20);
  const lvmType = process.argv[3] === "thick" ? "thick" : "thin";
  const unavailable = await backendUnavailable("lvm-guest");
  if (unavailable) throw new Error(`the LVM test guest cannot run here: ${unavailable}`);
  const runDir = await mkdtemp(join(tmpdir(), "cinderblock-lvm-bench-"));
  const port = await freePort();
  // Thick snapshots take their volume's size each: give the sparse disk room for all of them.
  const up = await execFileAsync(join(SCRIPTS, "up.sh"), [runDir, String(port), VG], {
    env: { ...process.env, LVM_GUEST_DISK_SIZE: `${2 * count + 8}G`, LVM_GUEST_OWNER_PID: String(process.pid) },
  });
  console.log(up.stdout.trim());
  const guest = async (script: string) =>
    (await execFileAsync(join(SCRIPTS, "run.sh"), [runDir, "sh", "-c", script])).stdout.trim();
  const stack = await startStack({
    env: {
      ...NO_RATE_LIMITS,
      CINDERBLOCK_QUOTA_SNAPSHOTS: String(count + 10),
      CINDERBLOCK_QUOTA_GIGABYTES: "-1",
      CINDERBLOCK_VOLUME_DRIVER: "lvm",
      CINDERBLOCK_BACKEND_NAME: "lvm",
      CINDERBLOCK_DRIVER_OPTIONS: JSON.stringify({ volumeGroup: VG, lvmType, runner: { kind: "agent", port } }),
    },
  });
  try {
    const md = identity("bench", "bench");
    const volumeId = await availableVolume(stack.volumes, md, "bench");

    // The same command the driver runs, with nothing around it. NOTE: interleaved with the stack's
    // snapshots, since lvcreate slows down as the group's metadata grows with every LV.
    const size = lvmType === "thick" ? "-L 1032m" : "";
    const stackMs: number[] = [];
    const hostMs: number[] = [];
    const guestMs: number[] = [];
    for (let i = 0; i < count; i++) {
      let t0 = performance.now();
      const res = await call<{ snapshot?: Snapshot }>((done) =>
        stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: `s${i}` }), md, done),
      );
      const seen = await untilEnd<{ snapshot?: Snapshot }>(
        stack.snapshots.watchSnapshot({ id: res.snapshot?.id ?? "" }, md),
      );
      const last = seen.at(-1)?.snapshot;
      if (last?.status !== SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE) {
        throw new Error(`snapshot ${i} ended ${last?.status}: ${last?.statusReason}`);
      }
      stackMs.push(performance.now() - t0);

      t0 = performance.now();
      const out = await guest(
        `read a _ < /proc/uptime; lvcreate -q -y -s ${size} -n raw-${i} ${VG}/volume-${volumeId} >/dev/null; ` +
          "read b _ < /proc/uptime; echo $a $b",
      );
      hostMs.push(performance.now() - t0);
      const [a, b] = out.split(" ").map(Number) as [number, number];
      guestMs.push((b - a) * 1000);
    }
    const lvCount = (await guest(`lvs --noheadings -o lv_name ${VG} | wc -l`)).trim();

    console.log(
      `snapshot create of one 1 GiB ${lvmType} volume, ${count} times each, one at a time; qemu TCG guest, Node ${process.versions.node}; ${lvCount} LVs at the end`,
    );
    console.log(summary("stack: CreateSnapshot → available (WatchSnapshot)", stackMs));
    console.log(summary("raw: lvcreate -s through the agent, seen from the host", hostMs));
    console.log(summary("raw: lvcreate -s inside the guest (10 ms clock)", guestMs));
    const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)] ?? Number.NaN;
    console.log(`stack overhead over raw (p50, host view): ${(median(stackMs) - median(hostMs)).toFixed(0)} ms`);
  } finally {
    await stack.stop();
    await execFileAsync(join(SCRIPTS, "down.sh"), [runDir]);
    await rm(runDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
