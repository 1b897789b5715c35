import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { backendScripts, backendUnavailable, freePort, mustRunInCI } from "@cinderblock/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DriverError, SnapshotBusyError, type VolumeChunk, type VolumeDriver } from "../driver.js";
import { type CommandRunner, createAgentRunner } from "./command-runner.js";
import { createLvmDriver, type LvmDriverOptions } from "./lvm-driver.js";

// The lvm driver against real LVM2 in a real kernel: the project's test guest (scripts/lvm-guest,
// Debian's kernel under qemu) with two volume groups, one per lvm_type. Nothing here is faked.

const execFileAsync = promisify(execFile);
const SCRIPTS = backendScripts("lvm-guest");
const GIB = 1024 ** 3;
const THICK_VG = "cinder-thick";
const THIN_VG = "cinder-thin";

const unavailable = mustRunInCI("the LVM integration suite", await backendUnavailable("lvm-guest"));

let runDir: string;
let runner: CommandRunner;

/** Runs a shell script in the guest (the test inspects storage as an administrator would). */
async function sh(script: string, timeoutMs = 120_000): Promise<string> {
  const result = await runner.run(["sh", "-c", script], { timeoutMs });
  if (result.code !== 0) throw new Error(`guest: ${script} exited ${result.code}: ${result.stderr}`);
  return result.stdout.trim();
}

interface Lv {
  lv_name: string;
  lv_attr: string;
  lv_size: string;
  origin: string;
  lv_tags: string;
}

async function lvs(vg: string): Promise<Lv[]> {
  const out = await sh(`lvs --reportformat json --units b --nosuffix -o lv_name,lv_attr,lv_size,origin,lv_tags ${vg}`);
  return (JSON.parse(out) as { report: Array<{ lv: Lv[] }> }).report[0]?.lv ?? [];
}

async function lv(vg: string, name: string): Promise<Lv | undefined> {
  return (await lvs(vg)).find((l) => l.lv_name === name);
}

/** First 4 MiB of a device, as a short hash. */
function checksum(device: string): Promise<string> {
  return sh(`dd if=${device} bs=1M count=4 iflag=direct status=none | sha256sum | cut -c1-16`);
}

async function write(device: string, pattern: "A" | "B"): Promise<void> {
  await sh(`dd if=/tmp/${pattern} of=${device} bs=1M oflag=direct conv=fsync status=none`);
}

async function rejection(promise: Promise<unknown>): Promise<DriverError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof DriverError)) throw new Error(`expected a DriverError, got ${String(outcome)}`);
  return outcome;
}

let patternA: string;
let patternB: string;
let zeros: string;

describe.skipIf(unavailable)("lvm driver on real LVM in the test guest", { timeout: 120_000 }, () => {
  beforeAll(async () => {
    runDir = await mkdtemp(join(tmpdir(), "cinderblock-lvm-it-"));
    let port = 0;
    // Another process may take the free port before qemu binds it: try again with another.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        const { stdout } = await execFileAsync(join(SCRIPTS, "up.sh"), [runDir, String(port), THICK_VG, THIN_VG], {
          timeout: 240_000,
          // Should this process die before afterAll, the guest goes with it.
          env: { ...process.env, LVM_GUEST_OWNER_PID: String(process.pid) },
        });
        console.log(stdout.trim());
        break;
      } catch (error) {
        if (attempt === 3) throw error;
      }
    }
    runner = createAgentRunner({ host: "127.0.0.1", port });
    [patternA, patternB, zeros] = (
      await sh(
        "cd /tmp && head -c 4194304 /dev/urandom > A && head -c 4194304 /dev/urandom > B && " +
          "sha256sum A | cut -c1-16 && sha256sum B | cut -c1-16 && head -c 4194304 /dev/zero | sha256sum | cut -c1-16",
      )
    ).split("\n") as [string, string, string];
  }, 300_000);

  afterAll(async () => {
    if (runDir) {
      await execFileAsync(join(SCRIPTS, "down.sh"), [runDir]);
      await rm(runDir, { recursive: true, force: true });
    }
  });

  describe.each([
    { lvmType: "thick" as const, vg: THICK_VG },
    { lvmType: "thin" as const, vg: THIN_VG },
  ])("$lvmType", ({ lvmType, vg }) => {
    let driver: VolumeDriver;
    const pool = `${vg}-pool`;
    const dev = (name: string) => `/dev/${vg}/${name}`;
    /** A thin snapshot is created with activation skipped; reading it needs -K. */
    const activate = (name: string) => sh(`lvchange -ay -K ${vg}/${name}`);
    const options = (extra: Partial<LvmDriverOptions> = {}): LvmDriverOptions => ({
      runner,
      volumeGroup: vg,
      lvmType,
      volumeClear: "none",
      ...extra,
    });

    beforeAll(async () => {
      driver = createLvmDriver(options());
      await driver.initialize();
      // Idempotent: a second start finds the pool (thin) and the group as they are.
      await driver.initialize();
    });

    afterEach(async () => {
      // Leave the group empty (but for the thin pool) for the next test.
      const leftovers = (await lvs(vg)).filter((l) => l.lv_name !== pool).map((l) => `${vg}/${l.lv_name}`);
      if (leftovers.length > 0) await sh(`lvremove -q -y ${leftovers.join(" ")}`);
    });

    it("initialize makes the thin pool (thin) and nothing else", async () => {
      const names = (await lvs(vg)).map((l) => l.lv_name);
      expect(names).toEqual(lvmType === "thin" ? [pool] : []);
      if (lvmType === "thin") expect((await lv(vg, pool))?.lv_attr[0]).toBe("t");
    });

    it("creates volume-<id> of the requested size, idempotently", async () => {
      const id = randomUUID();
      await driver.createVolume({ id, sizeGb: 1 });
      await write(dev(`volume-${id}`), "A");
      await driver.createVolume({ id, sizeGb: 1 });
      const made = await lv(vg, `volume-${id}`);
      expect(made?.lv_size).toBe(String(GIB));
      expect(made?.lv_attr[0]).toBe(lvmType === "thin" ? "V" : "-");
      // The retry kept the data.
      expect(await checksum(dev(`volume-${id}`))).toBe(patternA);
      const clash = await rejection(driver.createVolume({ id, sizeGb: 2 }));
      expect(clash.message).toMatch(/already exists .* not 2 GiB/);
    });

    it("snapshot, volume from snapshot and revert keep the data of the moment of the snapshot", async () => {
      const volumeId = randomUUID();
      const snapshotId = randomUUID();
      const cloneId = randomUUID();
      const volume = { id: volumeId, sizeGb: 1 };
      const snapshot = { id: snapshotId, volumeId, volumeSizeGb: 1 };
      const snap = `_snapshot-${snapshotId}`;
      await driver.createVolume(volume);
      await write(dev(`volume-${volumeId}`), "A");

      expect(await driver.createSnapshot(snapshot)).toEqual({ providerLocation: `${vg}/${snap}` });
      // A retried create finds the snapshot it took and leaves it alone.
      expect(await driver.createSnapshot(snapshot)).toEqual({ providerLocation: `${vg}/${snap}` });
      const made = await lv(vg, snap);
      expect(made?.origin).toBe(`volume-${volumeId}`);
      expect(made?.lv_attr[0]).toBe(lvmType === "thin" ? "V" : "s");
      // Thick: the copy-on-write store holds a full overwrite of the volume (and its metadata).
      if (lvmType === "thick") expect(Number(made?.lv_size)).toBeGreaterThan(GIB);

      await write(dev(`volume-${volumeId}`), "B");
      if (lvmType === "thin") await activate(snap);
      expect(await checksum(dev(snap))).toBe(patternA);
      expect(await checksum(dev(`volume-${volumeId}`))).toBe(patternB);

      // A larger volume from the snapshot: the snapshot's data, then room to grow.
      await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 2 }, snapshot);
      await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 2 }, snapshot);
      const clone = await lv(vg, `volume-${cloneId}`);
      expect(clone?.lv_size).toBe(String(2 * GIB));
      expect(await checksum(dev(`volume-${cloneId}`))).toBe(patternA);
      // It is a volume of its own: writing it changes neither the snapshot nor the volume.
      await write(dev(`volume-${cloneId}`), "B");
      expect(await checksum(dev(snap))).toBe(patternA);
      expect(await checksum(dev(`volume-${volumeId}`))).toBe(patternB);

      if (lvmType === "thin") await sh(`lvchange -an ${vg}/${snap}`);
      await driver.revertToSnapshot(volume, snapshot);
      expect(await checksum(dev(`volume-${volumeId}`))).toBe(patternA);
      // The snapshot exists again, of the same volume, with the same data; the volume is writable.
      const again = await lv(vg, snap);
      expect(again?.origin).toBe(`volume-${volumeId}`);
      expect(again?.lv_tags).toBe("");
      expect((await lv(vg, `volume-${volumeId}`))?.lv_tags).toBe("");
      if (lvmType === "thin") await activate(snap);
      expect(await checksum(dev(snap))).toBe(patternA);
      await write(dev(`volume-${volumeId}`), "B");
      expect(await checksum(dev(snap))).toBe(patternA);
    });

    it("a revert retried after its merge takes the snapshot again", async () => {
      const volumeId = randomUUID();
      const snapshotId = randomUUID();
      const volume = { id: volumeId, sizeGb: 1 };
      const snapshot = { id: snapshotId, volumeId, volumeSizeGb: 1 };
      await driver.createVolume(volume);
      await write(dev(`volume-${volumeId}`), "A");
      await driver.createSnapshot(snapshot);
      await write(dev(`volume-${volumeId}`), "B");
      // What a first attempt does before a crash: mark the volume, merge; no new snapshot yet.
      await sh(
        `lvchange --addtag cinderblock-revert-${snapshotId} ${vg}/volume-${volumeId} && ` +
          `lvconvert -q -i 1 --merge ${vg}/_snapshot-${snapshotId}`,
      );
      expect(await lv(vg, `_snapshot-${snapshotId}`)).toBeUndefined();
      await driver.revertToSnapshot(volume, snapshot);
      expect(await checksum(dev(`volume-${volumeId}`))).toBe(patternA);
      expect((await lv(vg, `_snapshot-${snapshotId}`))?.origin).toBe(`volume-${volumeId}`);
      expect((await lv(vg, `volume-${volumeId}`))?.lv_tags).toBe("");
      // Without the mark, a missing snapshot is an error, not a silent "revert".
      await sh(`lvremove -q -y ${vg}/_snapshot-${snapshotId}`);
      const missing = await rejection(driver.revertToSnapshot(volume, snapshot));
      expect(missing.message).toBe(`snapshot _snapshot-${snapshotId} not found in volume group ${vg}`);
      expect(missing.retryable).toBe(false);
    });

    it("extends a volume, also one with a snapshot, keeping its data; never shrinks", async () => {
      const volumeId = randomUUID();
      const volume = { id: volumeId, sizeGb: 1 };
      await driver.createVolume(volume);
      await write(dev(`volume-${volumeId}`), "A");
      await driver.extendVolume(volume, 2);
      expect((await lv(vg, `volume-${volumeId}`))?.lv_size).toBe(String(2 * GIB));
      await driver.extendVolume(volume, 1);
      expect((await lv(vg, `volume-${volumeId}`))?.lv_size).toBe(String(2 * GIB));
      const snapshot = { id: randomUUID(), volumeId, volumeSizeGb: 2 };
      await driver.createSnapshot(snapshot);
      await driver.extendVolume({ ...volume, sizeGb: 2 }, 3);
      expect((await lv(vg, `volume-${volumeId}`))?.lv_size).toBe(String(3 * GIB));
      expect(await checksum(dev(`volume-${volumeId}`))).toBe(patternA);
      if (lvmType === "thin") await activate(`_snapshot-${snapshot.id}`);
      expect(await checksum(dev(`_snapshot-${snapshot.id}`))).toBe(patternA);
      const missing = await rejection(driver.extendVolume({ id: randomUUID(), sizeGb: 1 }, 2));
      expect(missing.message).toMatch(/^volume volume-\S+ not found in volume group /);
    });

    it("refuses to delete a volume with snapshots or a snapshot in use; deletes are idempotent", async () => {
      const volumeId = randomUUID();
      const volume = { id: volumeId, sizeGb: 1 };
      const snapshot = { id: randomUUID(), volumeId, volumeSizeGb: 1 };
      const snap = `_snapshot-${snapshot.id}`;
      await driver.createVolume(volume);
      await driver.createSnapshot(snapshot);

      const busyVolume = await rejection(driver.deleteVolume(volume));
      expect(busyVolume.message).toBe(`volume-${volumeId} has snapshots (${snap}): delete them first`);
      expect(busyVolume.retryable).toBe(false);
      expect(await lv(vg, `volume-${volumeId}`)).toBeDefined();

      if (lvmType === "thin") await activate(snap);
      const holder = await sh(`sleep 60 < ${dev(snap)} > /dev/null 2>&1 & echo $!`);
      try {
        const busySnapshot = await rejection(driver.deleteSnapshot(snapshot));
        expect(busySnapshot).toBeInstanceOf(SnapshotBusyError);
        expect(busySnapshot.message).toBe(`${snap} is in use (its device is open)`);
      } finally {
        await sh(`kill ${holder}; while kill -0 ${holder} 2>/dev/null; do sleep 0.1; done`);
      }
      expect(await lv(vg, snap)).toBeDefined();

      await driver.deleteSnapshot(snapshot);
      await driver.deleteSnapshot(snapshot);
      await driver.deleteVolume(volume);
      await driver.deleteVolume(volume);
      expect(await lvs(vg)).toEqual(lvmType === "thin" ? [expect.objectContaining({ lv_name: pool })] : []);
    });

    it("reports capacity, provisioned space and volume count from lvs/vgs", async () => {
      const before = await driver.getStats();
      expect(before).toMatchObject({
        driver: "lvm",
        // Its pool: the thin pool, or the VG for thick volumes.
        poolName: lvmType === "thin" ? pool : vg,
        thinProvisioning: lvmType === "thin",
        backendState: "up",
        totalVolumes: 0,
        provisionedCapacityGb: 0,
      });
      // An 8 GiB disk: the group (thick) or the pool in it (thin) is a bit less.
      expect(before.totalCapacityGb).toBeGreaterThan(7);
      expect(before.totalCapacityGb).toBeLessThan(8);
      const volumeId = randomUUID();
      await driver.createVolume({ id: volumeId, sizeGb: 2 });
      await driver.createVolume({ id: randomUUID(), sizeGb: 1 });
      await write(dev(`volume-${volumeId}`), "A");
      const after = await driver.getStats();
      expect(after.totalVolumes).toBe(2);
      expect(after.provisionedCapacityGb).toBe(3);
      if (lvmType === "thin") {
        // Thin: only what was written is used (4 MiB), so free space barely moves.
        expect(after.freeCapacityGb).toBeGreaterThan(before.freeCapacityGb - 0.1);
        expect(after.maxOverSubscriptionRatio).toBe(20);
      } else {
        expect(after.freeCapacityGb).toBeCloseTo(before.freeCapacityGb - 3, 1);
      }
    });

    it("lists manageable snapshots, manages one by renaming it, and unmanages", async () => {
      const volumeId = randomUUID();
      const otherId = randomUUID();
      const owned = { id: randomUUID(), volumeId, volumeSizeGb: 1 };
      await driver.createVolume({ id: volumeId, sizeGb: 1 });
      await driver.createVolume({ id: otherId, sizeGb: 1 });
      await driver.createSnapshot(owned);
      const size = lvmType === "thin" ? "" : "-l 100%ORIGIN";
      await sh(`lvcreate -q -y -s ${size} -n backup-1 ${vg}/volume-${volumeId}`);
      await sh(`lvcreate -q -y -s ${size} -n backup-2 ${vg}/volume-${otherId}`);

      const listed = await driver.listManageableSnapshots(new Set([owned.id]));
      expect(listed).toEqual([
        {
          reference: `_snapshot-${owned.id}`,
          sourceVolumeId: volumeId,
          sizeGb: 1,
          safeToManage: false,
          reasonNotSafe: "already managed",
        },
        { reference: "backup-1", sourceVolumeId: volumeId, sizeGb: 1, safeToManage: true },
        { reference: "backup-2", sourceVolumeId: otherId, sizeGb: 1, safeToManage: true },
      ]);

      const adopted = { id: randomUUID(), volumeId, volumeSizeGb: 1 };
      const wrongVolume = await rejection(driver.manageExistingSnapshot(adopted, "backup-2"));
      expect(wrongVolume.message).toBe(`backup-2 is a snapshot of volume-${otherId}, not of volume-${volumeId}`);
      const notSnapshot = await rejection(driver.manageExistingSnapshot(adopted, `volume-${otherId}`));
      expect(notSnapshot.message).toBe(`volume-${otherId} is not a snapshot`);
      const missing = await rejection(driver.manageExistingSnapshot(adopted, "nope"));
      expect(missing.message).toBe(`logical volume nope not found in volume group ${vg}`);
      const bad = await rejection(driver.manageExistingSnapshot(adopted, "../../dev/sda"));
      expect(bad.message).toMatch(/^invalid reference/);

      expect(await driver.manageExistingSnapshot(adopted, "backup-1")).toEqual({ sizeGb: 1 });
      // A retry after the rename finds it under its new name.
      expect(await driver.manageExistingSnapshot(adopted, "backup-1")).toEqual({ sizeGb: 1 });
      expect((await lv(vg, `_snapshot-${adopted.id}`))?.origin).toBe(`volume-${volumeId}`);
      expect(await lv(vg, "backup-1")).toBeUndefined();
      const now = await driver.listManageableSnapshots(new Set([owned.id, adopted.id]));
      expect(now.find((s) => s.reference === `_snapshot-${adopted.id}`)?.reasonNotSafe).toBe("already managed");

      await driver.unmanageSnapshot(adopted);
      const released = await driver.listManageableSnapshots(new Set([owned.id]));
      expect(released.find((s) => s.reference === `_snapshot-${adopted.id}`)?.safeToManage).toBe(true);
    });

    it("fails with a reason a user can act on", async () => {
      const orphan = { id: randomUUID(), volumeId: randomUUID(), volumeSizeGb: 1 };
      const noVolume = await rejection(driver.createSnapshot(orphan));
      expect(noVolume.message).toBe(`volume volume-${orphan.volumeId} not found in volume group ${vg}`);
      expect(noVolume.retryable).toBe(false);
      const noSnapshot = await rejection(driver.createVolumeFromSnapshot({ id: randomUUID(), sizeGb: 1 }, orphan));
      expect(noSnapshot.message).toBe(`snapshot _snapshot-${orphan.id} not found in volume group ${vg}`);
      if (lvmType === "thick") {
        const tooBig = await rejection(driver.createVolume({ id: randomUUID(), sizeGb: 100 }));
        expect(tooBig.message).toMatch(new RegExp(`^volume group ${vg} has \\d+(\\.\\d+)? GiB free, 100 GiB needed$`));
        expect(tooBig.retryable).toBe(false);
        // A snapshot needs as much room as its volume: fill the group, then ask for one.
        const volumeId = randomUUID();
        await driver.createVolume({ id: volumeId, sizeGb: 4 });
        await driver.createVolume({ id: randomUUID(), sizeGb: 3 });
        const noRoom = await rejection(driver.createSnapshot({ id: randomUUID(), volumeId, volumeSizeGb: 4 }));
        expect(noRoom.message).toMatch(new RegExp(`^volume group ${vg} has 0\\.\\d+ GiB free, 4\\.0\\d GiB needed$`));
      }
      const wrongGroup = createLvmDriver(options({ volumeGroup: "no-such-vg" }));
      const down = await rejection(wrongGroup.initialize());
      expect(down.message).toBe("volume group no-such-vg not found on this host");
      expect((await wrongGroup.getStats()).backendState).toBe("down");
    });

    it("migrates by copy into a fresh LV of the other kind: same bytes, zeros not shipped", {
      timeout: 900_000,
    }, async () => {
      const otherType = lvmType === "thick" ? ("thin" as const) : ("thick" as const);
      const otherVg = lvmType === "thick" ? THIN_VG : THICK_VG;
      let calls = 0;
      const counting: CommandRunner = {
        run(argv, opts) {
          calls++;
          return runner.run(argv, opts);
        },
      };
      const source = createLvmDriver({ ...options(), runner: counting });
      const target = createLvmDriver({
        runner: counting,
        volumeGroup: otherVg,
        lvmType: otherType,
        volumeClear: "none",
      });
      await target.initialize();
      const from = { id: randomUUID(), sizeGb: 1 };
      const to = { id: randomUUID(), sizeGb: 1 };
      const targetDev = `/dev/${otherVg}/volume-${to.id}`;
      try {
        await source.createVolume(from);
        const sourceDev = dev(`volume-${from.id}`);
        // A thick LV starts with what its extents held: zero it first, as a user's volume would be.
        if (lvmType === "thick") await sh(`dd if=/dev/zero of=${sourceDev} bs=1M oflag=direct status=none || true`);
        // A pattern at a few offsets: the first MiB, a 4 KiB piece inside a MiB, the last MiB.
        await sh(
          `dd if=/tmp/A of=${sourceDev} bs=1M count=1 oflag=direct conv=notrunc status=none && ` +
            `dd if=/tmp/B of=${sourceDev} bs=4096 count=1 seek=$((300 * 256 + 5)) oflag=direct conv=notrunc status=none && ` +
            `dd if=/tmp/B of=${sourceDev} bs=1M count=1 seek=500 oflag=direct conv=notrunc status=none && ` +
            `dd if=/tmp/A of=${sourceDev} bs=1M count=1 seek=1023 oflag=direct conv=notrunc status=none`,
        );
        await target.createVolume(to);
        // The thick target is filled with garbage first: what no chunk covers must be zeroed.
        if (otherType === "thick") {
          await sh(
            `i=0; while [ $i -lt 256 ]; do dd if=/tmp/A of=${targetDev} bs=4M seek=$i oflag=direct conv=notrunc status=none; i=$((i + 1)); done`,
            600_000,
          );
        }
        calls = 0;
        let started = performance.now();
        const chunks: VolumeChunk[] = [];
        for await (const chunk of source.readVolume?.(from, 1024 * 1024) ?? []) chunks.push(chunk);
        const read = { ms: Math.round(performance.now() - started), calls };
        // Only the MiB blocks holding data (4 MiB of the 1 GiB): 0, 300, 500, 1023.
        expect(chunks.map((c) => c.offset / (1024 * 1024))).toEqual([0, 300, 500, 1023]);
        calls = 0;
        started = performance.now();
        await target.writeVolume?.(
          to,
          (async function* () {
            yield* chunks;
          })(),
        );
        const written = { ms: Math.round(performance.now() - started), calls };
        console.log(
          `lvm ${lvmType} -> ${otherType}, 1 GiB holding 4 MiB: readVolume ${read.ms} ms in ${read.calls} runner calls, ` +
            `writeVolume ${written.ms} ms in ${written.calls} runner calls`,
        );
        const sums = (await sh(`sha256sum ${sourceDev} ${targetDev} | cut -c1-64`, 600_000)).split("\n");
        expect(sums).toHaveLength(2);
        expect(sums[1]).toBe(sums[0]);
      } finally {
        await target.deleteVolume(to);
      }
    });

    if (lvmType === "thick") {
      it("volumeClear zero keeps a deleted volume's data from showing up in the next one", async () => {
        const first = randomUUID();
        await driver.createVolume({ id: first, sizeGb: 1 });
        await write(dev(`volume-${first}`), "A");
        // Without clearing, a new LV on the same extents reads the old data (lvcreate zeroes 4 KiB only).
        await driver.deleteVolume({ id: first, sizeGb: 1 });
        const second = randomUUID();
        await driver.createVolume({ id: second, sizeGb: 1 });
        const leaked = await sh(
          `dd if=${dev(`volume-${second}`)} bs=1M count=3 skip=1 iflag=direct status=none | sha256sum | cut -c1-16`,
        );
        const patternTail = await sh("tail -c 3145728 /tmp/A | sha256sum | cut -c1-16");
        expect(leaked).toBe(patternTail);

        const clearing = createLvmDriver(options({ volumeClear: "zero" }));
        await write(dev(`volume-${second}`), "A");
        await clearing.deleteVolume({ id: second, sizeGb: 1 });
        const third = randomUUID();
        await clearing.createVolume({ id: third, sizeGb: 1 });
        expect(await checksum(dev(`volume-${third}`))).toBe(zeros);
        // A thick snapshot's copy-on-write store is cleared too, then removed.
        const snapshot = { id: randomUUID(), volumeId: third, volumeSizeGb: 1 };
        await clearing.createSnapshot(snapshot);
        await write(dev(`volume-${third}`), "B");
        await clearing.deleteSnapshot(snapshot);
        expect(await lv(vg, `_snapshot-${snapshot.id}`)).toBeUndefined();
        expect(await checksum(dev(`volume-${third}`))).toBe(patternB);
      });
    }
  });
});
