/**
 * CreateSnapshot → available, one at a time: starts api, scheduler and a file-backed volume host
 * on a fresh database and NATS prefix, then times N snapshots of one 1 GiB volume: the
 * CreateSnapshot call itself, and the time until WatchSnapshot reports `available`.
 * Usage: node bench/dist/roundtrip.js [count=200]
 */
import {
  CreateSnapshotRequest,
  CreateVolumeRequest,
  type Snapshot,
  SnapshotStatus,
  type SnapshotsServiceClient,
  VolumeStatus,
} from "@cinderblock/proto";
import { startStack } from "@cinderblock/testing";
import { Metadata, type ServiceError } from "@grpc/grpc-js";

function unary<Res>(invoke: (done: (err: ServiceError | null, res?: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => invoke((err, res) => (err ? reject(err) : resolve(res as Res))));
}

function untilTerminal(client: SnapshotsServiceClient, id: string, md: Metadata): Promise<Snapshot | undefined> {
  return new Promise((resolve, reject) => {
    let last: Snapshot | undefined;
    const stream = client.watchSnapshot({ id }, md);
    stream.on("data", (m: { snapshot?: Snapshot }) => {
      last = m.snapshot;
    });
    stream.on("error", reject);
    stream.on("end", () => resolve(last));
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function summary(label: string, values: number[]): string {
  const s = [...values].sort((a, b) => a - b);
  const f = (n: number) => n.toFixed(2).padStart(8);
  return `${label.padEnd(34)} p50 ${f(percentile(s, 50))} ms  p95 ${f(percentile(s, 95))} ms  p99 ${f(percentile(s, 99))} ms`;
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 200);
  const stack = await startStack({
    env: { CINDERBLOCK_QUOTA_SNAPSHOTS: String(count + 10), CINDERBLOCK_QUOTA_GIGABYTES: "-1" },
  });
  try {
    const md = new Metadata();
    md.set("x-project-id", "bench");
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
      await new Promise((r) => setTimeout(r, 20));
    }
    const createMs: number[] = [];
    const availableMs: number[] = [];
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const res = await unary<{ snapshot?: Snapshot }>((done) =>
        stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: `s${i}` }), md, done),
      );
      const t1 = performance.now();
      const last = await untilTerminal(stack.snapshots, res.snapshot?.id ?? "", md);
      const t2 = performance.now();
      if (last?.status !== SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE)
        throw new Error(`snapshot ${i} ended ${last?.status}`);
      createMs.push(t1 - t0);
      availableMs.push(t2 - t0);
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(`snapshots: ${count} of a 1 GiB file-backed volume, one at a time, Node ${process.versions.node}`);
    console.log(summary("CreateSnapshot call", createMs));
    console.log(summary("CreateSnapshot → available", availableMs));
    console.log(`sequential throughput               ${(count / seconds).toFixed(1)} snapshots/s`);
  } finally {
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
