import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import * as proto from "@cinderblock/proto";
import {
  backendScripts,
  backendUnavailable,
  call,
  createBackendType,
  createSettledVolume,
  freePort,
  identity,
  mustRunInCI,
  readAt,
  type Stack,
  settle,
  startStack,
  uniqueName,
  writeAt,
} from "@cinderblock/testing";
import { credentials, type Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Every kind of backend at once (issue 15), each its own volume process beside the others:
//   vol1@file-a (az1) and vol2@file-b (az2): file backends;
//   vol3@lvm (az1): thin LVM in the project's LVM test guest (scripts/lvm-guest);
//   vol4@rbd (az1): a single-node Ceph cluster (scripts/ceph).
// Volume types pick the backend and its pool; a retype moves a volume's bytes from one kind of
// backend to the next (host-assisted migration over mTLS, verified by SHA-256 on both ends);
// attached volumes on LVM and RBD are extended and snapshotted in use.

const execFileAsync = promisify(execFile);
const VG = "cinder-volumes";
const POOL = "rbd";
const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

const unavailable = mustRunInCI(
  "the all-backends end-to-end test",
  (await backendUnavailable("lvm-guest")) ?? (await backendUnavailable("ceph")),
);

let stack: Stack;
let guestDir: string;
let cephRoot: string;
let types: proto.VolumeTypesServiceClient;
// Types, pools and hosts are the admin's to see; the volumes are the project's like anyone's.
const admin = identity(uniqueName("all-"), "root", "admin");
const typeOf: Record<string, string> = {};

async function guest(script: string): Promise<string> {
  const { stdout } = await execFileAsync(join(backendScripts("lvm-guest"), "run.sh"), [guestDir, "sh", "-c", script], {
    maxBuffer: 64 * MIB,
  });
  return stdout.trim();
}

async function rbd(...args: string[]): Promise<string> {
  const cluster = join(cephRoot, "cluster");
  const auth = ["--conf", join(cluster, "ceph.conf"), "--keyring", join(cluster, "keyring")];
  const { stdout } = await execFileAsync("rbd", [...args, ...auth], { timeout: 120_000, maxBuffer: 64 * MIB });
  return stdout;
}

/** `length` bytes at `offset` of a volume, wherever it lives now. */
async function bytesAt(volume: proto.Volume, offset: number, length: number): Promise<Buffer> {
  const [host] = volume.host.split("@");
  if (host === "vol3") {
    const b64 = await guest(
      `dd if=/dev/${VG}/volume-${volume.id} iflag=skip_bytes,count_bytes skip=${offset} count=${length} status=none | base64 -w0`,
    );
    return Buffer.from(b64, "base64");
  }
  if (host === "vol4") {
    const image = join(cephRoot, `export-${volume.id}.img`);
    await rbd("export", "--no-progress", `${POOL}/volume-${volume.id}`, image);
    try {
      return await readAt(image, offset, length);
    } finally {
      await rm(image, { force: true });
    }
  }
  const dir = host === "vol1" ? stack.dataDir : (stack.volumeHosts.get(host ?? "")?.dataDir ?? "");
  return readAt(join(dir, `volume-${volume.id}.img`), offset, length);
}

const createType = (backend: string) => createBackendType(types, admin, backend);

const getVolume = (md: Metadata, id: string) =>
  call<proto.GetVolumeResponse>((done) => stack.volumes.getVolume({ id }, md, done)).then(
    (r) => r.volume as proto.Volume,
  );

const volumeOfType = (backend: string, availabilityZone = "az1") =>
  createSettledVolume(
    stack.volumes,
    admin,
    { volumeType: typeOf[backend] ?? "", availabilityZone },
    { timeoutMs: 120_000 },
  );

async function retypeTo(volume: proto.Volume, backend: string): Promise<proto.Volume> {
  await call<proto.RetypeVolumeResponse>((done) =>
    stack.volumes.retypeVolume(
      { id: volume.id, newType: typeOf[backend] ?? "", migrationPolicy: "on-demand" },
      admin,
      done,
    ),
  );
  return settle(
    () => getVolume(admin, volume.id),
    (v) => v.status !== proto.VolumeStatus.VOLUME_STATUS_RETYPING,
    { timeoutMs: 240_000 },
  );
}

describe.skipIf(unavailable)("all backends at once: file, file, LVM, RBD", { timeout: 300_000 }, () => {
  beforeAll(async () => {
    guestDir = await mkdtemp(join(tmpdir(), "cinderblock-all-lvm-"));
    cephRoot = await mkdtemp(join(tmpdir(), "cinderblock-all-rbd-"));
    const guestPort = await freePort();
    // The guest and the cluster come up side by side.
    await Promise.all([
      (async () => {
        for (let attempt = 1; ; attempt++) {
          try {
            await execFileAsync(join(backendScripts("lvm-guest"), "up.sh"), [guestDir, String(guestPort), VG], {
              timeout: 240_000,
              env: { ...process.env, LVM_GUEST_OWNER_PID: String(process.pid) },
            });
            return;
          } catch (error) {
            if (attempt === 3) throw error;
          }
        }
      })(),
      execFileAsync(join(backendScripts("ceph"), "up.sh"), [join(cephRoot, "cluster")], {
        env: { ...process.env, WAIT_HEALTH: "0" },
        timeout: 240_000,
      }),
    ]);
    const cluster = join(cephRoot, "cluster");
    stack = await startStack({
      env: { CINDERBLOCK_REPORT_INTERVAL: "2" },
      serviceEnv: { volume: { CINDERBLOCK_BACKEND_NAME: "file-a", CINDERBLOCK_AVAILABILITY_ZONE: "az1" } },
      volumeHosts: [
        { host: "vol2", backend: "file-b", availabilityZone: "az2" },
        {
          host: "vol3",
          backend: "lvm",
          availabilityZone: "az1",
          env: {
            CINDERBLOCK_VOLUME_DRIVER: "lvm",
            CINDERBLOCK_DRIVER_OPTIONS: JSON.stringify({
              volumeGroup: VG,
              lvmType: "thin",
              runner: { kind: "agent", host: "127.0.0.1", port: guestPort },
            }),
          },
        },
        {
          host: "vol4",
          backend: "rbd",
          availabilityZone: "az1",
          env: {
            CINDERBLOCK_VOLUME_DRIVER: "rbd",
            CINDERBLOCK_DRIVER_OPTIONS: JSON.stringify({
              pool: POOL,
              confPath: join(cluster, "ceph.conf"),
              keyring: join(cluster, "keyring"),
            }),
          },
        },
      ],
    });
    types = new proto.VolumeTypesServiceClient(stack.address, credentials.createInsecure());
    for (const backend of ["file-a", "file-b", "lvm", "rbd"]) typeOf[backend] = await createType(backend);
  }, 600_000);

  afterAll(async () => {
    types?.close();
    const codes = await stack?.stop();
    if (guestDir) {
      await execFileAsync(join(backendScripts("lvm-guest"), "down.sh"), [guestDir]);
      await rm(guestDir, { recursive: true, force: true });
    }
    if (cephRoot) {
      await execFileAsync(join(backendScripts("ceph"), "down.sh"), [join(cephRoot, "cluster")], { timeout: 60_000 });
      await rm(cephRoot, { recursive: true, force: true });
    }
    expect(codes).toMatchObject({ api: 0, scheduler: 0, volume: 0 });
  }, 120_000);

  it("places each type's volume on its backend and pool, and the storage holds it", async () => {
    const lvm = await volumeOfType("lvm");
    expect(lvm).toMatchObject({
      status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE,
      host: "vol3@lvm",
      // A thin LVM backend's pool is its thin pool.
      pool: `${VG}-pool`,
    });
    expect(await guest(`lvs --noheadings -o lv_size --units b --nosuffix ${VG}/volume-${lvm.id}`)).toBe(String(GIB));

    const ceph = await volumeOfType("rbd");
    expect(ceph).toMatchObject({ status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE, host: "vol4@rbd", pool: POOL });
    expect(
      (JSON.parse(await rbd("info", "--format", "json", `${POOL}/volume-${ceph.id}`)) as { size: number }).size,
    ).toBe(GIB);

    const fileB = await volumeOfType("file-b", "az2");
    expect(fileB).toMatchObject({
      host: "vol2@file-b",
      pool: basename(stack.volumeHosts.get("vol2")?.dataDir ?? "?"),
    });
    // A type whose backend is in another zone than the one asked for: no valid backend, each named.
    const misplaced = await createSettledVolume(
      stack.volumes,
      admin,
      { volumeType: typeOf["file-b"] ?? "", availabilityZone: "az1" },
      { timeoutMs: 60_000 },
    );
    expect(misplaced).toMatchObject({
      status: proto.VolumeStatus.VOLUME_STATUS_ERROR,
      statusReason: "no valid backend was found",
    });
    for (const pool of [`vol3@lvm#${VG}-pool`, `vol4@rbd#${POOL}`]) expect(misplaced.statusDetail).toContain(pool);
  });

  it("moves a volume's bytes file → LVM → RBD → file on retypes, the old copies removed", async () => {
    const volume = await volumeOfType("file-a");
    expect(volume.host).toBe("vol1@file-a");
    const marks = new Map<number, Buffer>();
    for (const offset of [0, 5 * MIB + 3, 512 * MIB, GIB - 32]) {
      const bytes = Buffer.from(`${volume.id}@${offset}`.slice(0, 32).padEnd(32, "#"));
      await writeAt(join(stack.dataDir, `volume-${volume.id}.img`), offset, bytes);
      marks.set(offset, bytes);
    }
    const original = await readFile(join(stack.dataDir, `volume-${volume.id}.img`));

    const onLvm = await retypeTo(volume, "lvm");
    expect(onLvm).toMatchObject({
      status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE,
      host: "vol3@lvm",
      pool: `${VG}-pool`,
      volumeType: typeOf.lvm,
      migrationStatus: "success",
      statusReason: "",
    });
    for (const [offset, bytes] of marks) expect((await bytesAt(onLvm, offset, bytes.length)).equals(bytes)).toBe(true);

    const onRbd = await retypeTo(onLvm, "rbd");
    expect(onRbd).toMatchObject({ status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE, host: "vol4@rbd", pool: POOL });
    for (const [offset, bytes] of marks) expect((await bytesAt(onRbd, offset, bytes.length)).equals(bytes)).toBe(true);
    // The LV went once the volume had moved off LVM.
    await settle(
      () => guest(`lvs --noheadings -o lv_name ${VG}`),
      (names) => !names.includes(`volume-${volume.id}`),
      { timeoutMs: 30_000 },
    );

    const back = await retypeTo(onRbd, "file-a");
    expect(back).toMatchObject({ status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE, host: "vol1@file-a" });
    // Every byte made the round trip, zeros included.
    const returned = await readFile(join(stack.dataDir, `volume-${volume.id}.img`));
    expect(returned.length).toBe(original.length);
    expect(returned.equals(original)).toBe(true);
    await settle(
      () => rbd("ls", POOL),
      (names) => !names.split("\n").includes(`volume-${volume.id}`),
      { timeoutMs: 30_000 },
    );
  });

  it("extends and snapshots attached volumes on LVM and RBD without force", async () => {
    for (const backend of ["lvm", "rbd"]) {
      const volume = await volumeOfType(backend);
      await call((done) =>
        stack.volumes.attachVolume(
          {
            volumeId: volume.id,
            instanceId: uniqueName("vm-"),
            mountpoint: "/dev/vdb",
            connector: { host: "compute1" },
          },
          admin,
          done,
        ),
      );
      expect((await getVolume(admin, volume.id)).status).toBe(proto.VolumeStatus.VOLUME_STATUS_IN_USE);

      await call((done) => stack.volumes.extendVolume({ id: volume.id, newSizeGb: 2 }, admin, done));
      const grown = await settle(
        () => getVolume(admin, volume.id),
        (v) => v.status !== proto.VolumeStatus.VOLUME_STATUS_EXTENDING,
        { timeoutMs: 60_000 },
      );
      expect(grown).toMatchObject({ status: proto.VolumeStatus.VOLUME_STATUS_IN_USE, sizeGb: 2 });
      const size =
        backend === "lvm"
          ? Number(await guest(`lvs --noheadings -o lv_size --units b --nosuffix ${VG}/volume-${volume.id}`))
          : (JSON.parse(await rbd("info", "--format", "json", `${POOL}/volume-${volume.id}`)) as { size: number }).size;
      expect(size).toBe(2 * GIB);

      const created = await call<proto.CreateSnapshotResponse>((done) =>
        stack.snapshots.createSnapshot(
          proto.CreateSnapshotRequest.fromPartial({ volumeId: volume.id, name: "in-use" }),
          admin,
          done,
        ),
      );
      const snapshot = await settle(
        () =>
          call<proto.GetSnapshotResponse>((done) =>
            stack.snapshots.getSnapshot({ id: created.snapshot?.id ?? "" }, admin, done),
          ).then((r) => r.snapshot as proto.Snapshot),
        (s) => s.status !== proto.SnapshotStatus.SNAPSHOT_STATUS_CREATING,
        { timeoutMs: 60_000 },
      );
      expect(snapshot).toMatchObject({ status: proto.SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE, volumeSizeGb: 2 });
    }
  });
});
