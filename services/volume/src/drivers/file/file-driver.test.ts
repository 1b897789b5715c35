import { randomBytes, randomUUID } from "node:crypto";
import {
  chmod,
  link,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { type FsNativeBinding, loadFsNative } from "@cinderblock/fs-native";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DriverError, type DriverSnapshot, type VolumeDriver } from "../driver.js";
import { createFileDriver } from "./file-driver.js";
import { copySparse } from "./sparse-copy.js";

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

let root: string;
let dataDir: string;
let driver: VolumeDriver;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "file-driver-test-"));
  dataDir = join(root, "data");
  driver = createFileDriver({ dataDir, reservedPercentage: 5, maxOverSubscriptionRatio: 10 });
  await driver.initialize();
});

afterEach(async () => {
  await driver.close();
  await rm(root, { recursive: true, force: true });
});

async function writeAt(path: string, position: number, bytes: Buffer): Promise<void> {
  const handle = await open(path, "r+");
  try {
    await handle.write(bytes, 0, bytes.length, position);
  } finally {
    await handle.close();
  }
}

async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, position);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Bytes actually allocated on disk (st_blocks is in 512-byte units whatever the fs block size). */
async function allocatedBytes(path: string): Promise<number> {
  return (await stat(path)).blocks * 512;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail");
}

describe("createFileDriver: volumes", () => {
  it("creates a sparse file of exactly sizeGb GiB", async () => {
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 2 });

    const path = join(dataDir, `volume-${id}.img`);
    const info = await stat(path);
    expect(info.size).toBe(2 * GIB);
    expect(await allocatedBytes(path)).toBeLessThan(MIB);
    // Only the image remains: no temp file left behind.
    expect(await readdir(dataDir)).toEqual([`volume-${id}.img`]);
  });

  it("is idempotent, and keeps the data when called again", async () => {
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 1 });
    const path = join(dataDir, `volume-${id}.img`);
    await writeAt(path, 4096, Buffer.from("keep me"));

    await driver.createVolume({ id, sizeGb: 1 });

    expect((await stat(path)).size).toBe(GIB);
    expect((await readAt(path, 4096, 7)).toString()).toBe("keep me");
  });

  it("refuses to reuse an existing file of another size", async () => {
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 1 });

    const err = await rejection(driver.createVolume({ id, sizeGb: 2 }));

    expect(err).toBeInstanceOf(DriverError);
    expect((err as DriverError).retryable).toBe(false);
    expect((await stat(join(dataDir, `volume-${id}.img`))).size).toBe(GIB);
  });

  it("maps an upper-case id to the same file", async () => {
    const id = randomUUID();
    await driver.createVolume({ id: id.toUpperCase(), sizeGb: 1 });
    await driver.createVolume({ id, sizeGb: 1 });

    expect(await readdir(dataDir)).toEqual([`volume-${id}.img`]);
  });

  it("rejects a size that is not a positive whole number of GiB", async () => {
    for (const sizeGb of [0, -1, 1.5, Number.NaN]) {
      const err = await rejection(driver.createVolume({ id: randomUUID(), sizeGb }));
      expect(err).toBeInstanceOf(DriverError);
      expect((err as DriverError).retryable).toBe(false);
    }
    expect(await readdir(dataDir)).toEqual([]);
  });

  it("deletes a volume, and deleting a missing one succeeds", async () => {
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 1 });

    await driver.deleteVolume({ id, sizeGb: 1 });
    await driver.deleteVolume({ id, sizeGb: 1 });

    expect(await readdir(dataDir)).toEqual([]);
  });
});

describe("createFileDriver: a migration's copy (readVolume, writeVolume)", () => {
  it("reads a volume in order in chunks, and writes chunks at their offsets leaving the gaps zero", async () => {
    const source = { id: randomUUID(), sizeGb: 1 };
    const target = { id: randomUUID(), sizeGb: 1 };
    await driver.createVolume(source);
    await driver.createVolume(target);
    const head = randomBytes(5000);
    const tail = randomBytes(100);
    await writeAt(join(dataDir, `volume-${source.id}.img`), 10, head);
    await writeAt(join(dataDir, `volume-${source.id}.img`), GIB - 100, tail);
    const read = driver.readVolume?.(source, 64 * 1024 * 1024);
    if (!read || !driver.writeVolume) throw new Error("the file driver copies");
    const offsets: number[] = [];
    const zeros = Buffer.alloc(64 * 1024 * 1024);
    async function* nonZero() {
      for await (const chunk of read ?? []) {
        offsets.push(chunk.offset);
        expect(chunk.data.byteLength).toBe(64 * 1024 * 1024);
        // Only the chunks with data go, as ReadVolume sends them.
        if (!zeros.equals(chunk.data)) yield chunk;
      }
    }
    await driver.writeVolume(target, nonZero());
    expect(offsets).toEqual(Array.from({ length: 16 }, (_, i) => i * 64 * 1024 * 1024));
    const copy = join(dataDir, `volume-${target.id}.img`);
    expect(await readAt(copy, 10, 5000)).toEqual(head);
    expect(await readAt(copy, GIB - 100, 100)).toEqual(tail);
    expect(await readAt(copy, 6000, 4096)).toEqual(Buffer.alloc(4096));
    expect((await stat(copy)).size).toBe(GIB);
    // A chunk past the end is refused, not written.
    const outside = await rejection(
      driver.writeVolume(
        target,
        (async function* () {
          yield { offset: GIB - 10, data: new Uint8Array(20) };
        })(),
      ),
    );
    expect(outside).toBeInstanceOf(DriverError);
    expect((await stat(copy)).size).toBe(GIB);
  }, 60_000);
});

describe("createFileDriver: a restart after a crash", () => {
  it("removes the temp files a killed host left, and nothing else", async () => {
    const volume = { id: randomUUID(), sizeGb: 1 };
    await driver.createVolume(volume);
    const leftover = join(dataDir, `.snapshot-${randomUUID()}.img.tmp-0123456789abcdef`);
    await writeFile(leftover, "half a copy");
    const restarted = createFileDriver({ dataDir, reservedPercentage: 5, maxOverSubscriptionRatio: 10 });
    await restarted.initialize();
    await restarted.close();
    expect(await readdir(dataDir)).toEqual([`volume-${volume.id}.img`]);
  });

  it("as a cluster member on a shared directory, removes its own leftovers and not a live member's work", async () => {
    const volume = { id: randomUUID(), sizeGb: 1 };
    await driver.createVolume(volume);
    const mine = join(dataDir, `.snapshot-${randomUUID()}.img.tmp-vol-a-0123456789abcdef`);
    const othersInFlight = `.snapshot-${randomUUID()}.img.tmp-vol-b-0123456789abcdef`;
    await writeFile(mine, "half a copy");
    await writeFile(join(dataDir, othersInFlight), "being written");
    const restarted = createFileDriver({ dataDir, member: "vol-a" });
    await restarted.initialize();
    await restarted.close();
    expect((await readdir(dataDir)).sort()).toEqual([othersInFlight, `volume-${volume.id}.img`]);
  });
});

describe("createFileDriver: ids", () => {
  const malformed = [
    "",
    "not-a-uuid",
    "../../etc/passwd",
    `${"0".repeat(8)}-0000-0000-0000-000000000000/../x`,
    "../00000000-0000-0000-0000-000000000000",
    "00000000-0000-0000-0000-00000000000g",
    "00000000-0000-0000-0000-000000000000\n",
  ];

  it.each(malformed)("refuses %j everywhere and creates nothing", async (bad) => {
    const good = randomUUID();
    const calls = [
      () => driver.createVolume({ id: bad, sizeGb: 1 }),
      () => driver.deleteVolume({ id: bad, sizeGb: 1 }),
      () => driver.createSnapshot({ id: bad, volumeId: good, volumeSizeGb: 1 }),
      () => driver.createSnapshot({ id: good, volumeId: bad, volumeSizeGb: 1 }),
      () => driver.deleteSnapshot({ id: bad, volumeId: good, volumeSizeGb: 1 }),
      () => driver.createVolumeFromSnapshot({ id: bad, sizeGb: 1 }, { id: good, volumeId: good, volumeSizeGb: 1 }),
      () => driver.createVolumeFromSnapshot({ id: good, sizeGb: 1 }, { id: bad, volumeId: good, volumeSizeGb: 1 }),
      () => driver.revertToSnapshot({ id: bad, sizeGb: 1 }, { id: good, volumeId: bad, volumeSizeGb: 1 }),
      () => driver.revertToSnapshot({ id: good, sizeGb: 1 }, { id: bad, volumeId: good, volumeSizeGb: 1 }),
      () => driver.extendVolume({ id: bad, sizeGb: 1 }, 2),
      () => driver.manageExistingSnapshot({ id: bad, volumeId: good, volumeSizeGb: 1 }, "x.img"),
      () => driver.unmanageSnapshot({ id: bad, volumeId: good, volumeSizeGb: 1 }),
    ];
    for (const call of calls) {
      const err = await rejection(call());
      expect(err).toBeInstanceOf(DriverError);
      expect((err as DriverError).retryable).toBe(false);
    }
    expect(await readdir(dataDir)).toEqual([]);
    expect(await readdir(root)).toEqual(["data"]);
  });
});

describe("createFileDriver: snapshots", () => {
  // Offsets in the first chunk, past 1 MiB (the copy's chunk size), deep inside, and at the end.
  const offsets = [0, 3 * 4096 + 5, MIB + 17, 300 * MIB, GIB - 16];
  const oldBytes = (i: number) => Buffer.from(`before-${i}-`.padEnd(16, "#"));
  const newBytes = (i: number) => Buffer.from(`after--${i}-`.padEnd(16, "%"));

  it("holds the volume's bytes as they were when it was taken", { timeout: 60_000 }, async () => {
    const volumeId = randomUUID();
    const id = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    const volume = join(dataDir, `volume-${volumeId}.img`);
    for (const [i, offset] of offsets.entries()) await writeAt(volume, offset, oldBytes(i));

    const update = await driver.createSnapshot({ id, volumeId, volumeSizeGb: 1 });

    const snapshot = join(dataDir, `snapshot-${id}.img`);
    expect(update).toEqual({ providerLocation: snapshot });
    for (const [i, offset] of offsets.entries()) await writeAt(volume, offset, newBytes(i));

    expect((await stat(snapshot)).size).toBe(GIB);
    for (const [i, offset] of offsets.entries()) {
      expect((await readAt(snapshot, offset, 16)).toString()).toBe(oldBytes(i).toString());
    }
    // Untouched regions read as zeros and stay unallocated (a reflink keeps holes too).
    expect((await readAt(snapshot, 200 * MIB, 4096)).equals(Buffer.alloc(4096))).toBe(true);
    expect(await allocatedBytes(snapshot)).toBeLessThan(16 * MIB);
    // No temp file left behind.
    expect((await readdir(dataDir)).sort()).toEqual([`snapshot-${id}.img`, `volume-${volumeId}.img`].sort());
  });

  it("does not copy again when the snapshot already exists", { timeout: 60_000 }, async () => {
    const volumeId = randomUUID();
    const id = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    const volume = join(dataDir, `volume-${volumeId}.img`);
    await writeAt(volume, MIB + 1, Buffer.from("first"));
    const first = await driver.createSnapshot({ id, volumeId, volumeSizeGb: 1 });
    await writeAt(volume, MIB + 1, Buffer.from("later"));

    const second = await driver.createSnapshot({ id, volumeId, volumeSizeGb: 1 });

    expect(second).toEqual(first);
    expect((await readAt(join(dataDir, `snapshot-${id}.img`), MIB + 1, 5)).toString()).toBe("first");
  });

  it("fails permanently, naming the volume, when the volume file is missing", async () => {
    const volumeId = randomUUID();
    const id = randomUUID();

    const err = await rejection(driver.createSnapshot({ id, volumeId, volumeSizeGb: 1 }));

    expect(err).toBeInstanceOf(DriverError);
    expect((err as DriverError).retryable).toBe(false);
    expect((err as DriverError).message).toContain(`volume-${volumeId}.img`);
    expect((err as DriverError).message).toMatch(/not found/);
    expect(await readdir(dataDir)).toEqual([]);
  });

  it("deletes a snapshot, and deleting a missing one succeeds", { timeout: 60_000 }, async () => {
    const volumeId = randomUUID();
    const id = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    await driver.createSnapshot({ id, volumeId, volumeSizeGb: 1 });

    await driver.deleteSnapshot({ id, volumeId, volumeSizeGb: 1 });
    await driver.deleteSnapshot({ id, volumeId, volumeSizeGb: 1 });

    expect(await readdir(dataDir)).toEqual([`volume-${volumeId}.img`]);
  });

  it("survives the deletion of its volume", { timeout: 60_000 }, async () => {
    const volumeId = randomUUID();
    const id = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    await writeAt(join(dataDir, `volume-${volumeId}.img`), 0, Buffer.from("data"));
    await driver.createSnapshot({ id, volumeId, volumeSizeGb: 1 });

    await driver.deleteVolume({ id: volumeId, sizeGb: 1 });

    expect((await readAt(join(dataDir, `snapshot-${id}.img`), 0, 4)).toString()).toBe("data");
  });
});

describe("createFileDriver: each way of copying", { timeout: 60_000 }, () => {
  // Reflink fails on this machine's ext4 and tmpfs, so a driver copies with the fs-native addon
  // where it is built and with `cp` otherwise; both must give the same files.
  const native = loadFsNative();
  const copies: Array<[string, FsNativeBinding | null]> = [["cp", null]];
  if (native.binding) copies.unshift(["the fs-native addon", native.binding]);

  it.each(copies)(
    "%s: snapshot, volume from it and revert keep the bytes, the holes and cp's mode",
    async (_, fsNative) => {
      const own = createFileDriver({ dataDir }, { fsNative });
      try {
        const volumeId = randomUUID();
        const snapshot = { id: randomUUID(), volumeId, volumeSizeGb: 1 };
        await own.createVolume({ id: volumeId, sizeGb: 1 });
        await writePatterns(volumeFile(volumeId), "old");
        await own.createSnapshot(snapshot);
        await writePatterns(volumeFile(volumeId), "new");
        const copyId = randomUUID();
        await own.createVolumeFromSnapshot({ id: copyId, sizeGb: 2 }, snapshot);
        await own.revertToSnapshot({ id: volumeId, sizeGb: 1 }, snapshot);

        for (const path of [snapshotFile(snapshot.id), volumeFile(copyId), volumeFile(volumeId)]) {
          await expectPatterns(path, "old");
          await expectZeros(path, 200 * MIB);
          expect(await allocatedBytes(path)).toBeLessThan(16 * MIB);
        }
        expect((await stat(volumeFile(copyId))).size).toBe(2 * GIB);
        await expectZeros(volumeFile(copyId), 2 * GIB - 4096);
        const mode = (await stat(volumeFile(volumeId))).mode;
        expect((await stat(snapshotFile(snapshot.id))).mode).toBe(mode);
        expect((await stat(volumeFile(copyId))).mode).toBe(mode);
        // No temp file left behind.
        expect(await readdir(dataDir)).toHaveLength(3);
      } finally {
        await own.close();
      }
    },
  );
});

/** Names, sizes, inodes and mtimes of everything in the data directory: any change shows. */
async function dirState(): Promise<string[]> {
  const names = (await readdir(dataDir)).sort();
  return Promise.all(
    names.map(async (name) => {
      const info = await lstat(join(dataDir, name));
      return `${JSON.stringify(name)} size=${info.size} ino=${info.ino} mtime=${info.mtimeMs} mode=${info.mode}`;
    }),
  );
}

async function expectPermanentFailure(promise: Promise<unknown>, ...mentions: string[]): Promise<DriverError> {
  const err = await rejection(promise);
  expect(err).toBeInstanceOf(DriverError);
  expect((err as DriverError).retryable).toBe(false);
  for (const mention of mentions) expect((err as DriverError).message).toContain(mention);
  return err as DriverError;
}

// Offsets in the first chunk, past 1 MiB (the copy's chunk size), deep inside, and at the end of 1 GiB.
const patternOffsets = [0, 3 * 4096 + 5, MIB + 17, 300 * MIB, GIB - 16];
const pattern = (tag: string, i: number) => Buffer.from(`${tag}-${i}-`.padEnd(16, "#"));

async function writePatterns(path: string, tag: string): Promise<void> {
  for (const [i, offset] of patternOffsets.entries()) await writeAt(path, offset, pattern(tag, i));
}

async function expectPatterns(path: string, tag: string): Promise<void> {
  for (const [i, offset] of patternOffsets.entries()) {
    expect((await readAt(path, offset, 16)).toString()).toBe(pattern(tag, i).toString());
  }
}

async function expectZeros(path: string, offset: number, length = 4096): Promise<void> {
  expect((await readAt(path, offset, length)).equals(Buffer.alloc(length))).toBe(true);
}

/** A 1 GiB volume holding the "old" patterns and a snapshot of it, then the volume overwritten with "new". */
async function volumeWithSnapshot(): Promise<{ volumeId: string; snapshot: DriverSnapshot; volume: string }> {
  const volumeId = randomUUID();
  const snapshot = { id: randomUUID(), volumeId, volumeSizeGb: 1 };
  await driver.createVolume({ id: volumeId, sizeGb: 1 });
  const volume = join(dataDir, `volume-${volumeId}.img`);
  await writePatterns(volume, "old");
  await driver.createSnapshot(snapshot);
  await writePatterns(volume, "new");
  return { volumeId, snapshot, volume };
}

const snapshotFile = (id: string) => join(dataDir, `snapshot-${id}.img`);
const volumeFile = (id: string) => join(dataDir, `volume-${id}.img`);

describe("createFileDriver: createVolumeFromSnapshot", { timeout: 60_000 }, () => {
  it("copies the snapshot's bytes and grows the copy to the volume's size", async () => {
    const { volumeId, snapshot, volume } = await volumeWithSnapshot();
    const id = randomUUID();

    await driver.createVolumeFromSnapshot({ id, sizeGb: 3 }, snapshot);

    const created = volumeFile(id);
    expect((await stat(created)).size).toBe(3 * GIB);
    await expectPatterns(created, "old");
    await expectZeros(created, 200 * MIB);
    await expectZeros(created, 2 * GIB);
    await expectZeros(created, 3 * GIB - 4096);
    expect(await allocatedBytes(created)).toBeLessThan(16 * MIB);
    // The source volume and the snapshot are untouched, and no temp file is left.
    await expectPatterns(volume, "new");
    await expectPatterns(snapshotFile(snapshot.id), "old");
    expect((await stat(snapshotFile(snapshot.id))).size).toBe(GIB);
    expect((await readdir(dataDir)).sort()).toEqual(
      [`snapshot-${snapshot.id}.img`, `volume-${id}.img`, `volume-${volumeId}.img`].sort(),
    );
  });

  it("makes an independent copy: writing to the new volume leaves the snapshot alone", async () => {
    const { snapshot } = await volumeWithSnapshot();
    const id = randomUUID();
    await driver.createVolumeFromSnapshot({ id, sizeGb: 1 }, snapshot);

    await writePatterns(volumeFile(id), "mine");

    expect((await stat(volumeFile(id))).size).toBe(GIB);
    await expectPatterns(volumeFile(id), "mine");
    await expectPatterns(snapshotFile(snapshot.id), "old");
  });

  it("is idempotent and does not copy again, even once the snapshot is gone", async () => {
    const { snapshot } = await volumeWithSnapshot();
    const id = randomUUID();
    await driver.createVolumeFromSnapshot({ id, sizeGb: 2 }, snapshot);
    await writeAt(volumeFile(id), MIB + 17, Buffer.from("written after"));
    const before = await lstat(volumeFile(id));

    await driver.createVolumeFromSnapshot({ id, sizeGb: 2 }, snapshot);
    await driver.deleteSnapshot(snapshot);
    await driver.createVolumeFromSnapshot({ id, sizeGb: 2 }, snapshot);

    expect((await lstat(volumeFile(id))).ino).toBe(before.ino);
    expect((await readAt(volumeFile(id), MIB + 17, 13)).toString()).toBe("written after");
    expect((await stat(volumeFile(id))).size).toBe(2 * GIB);
  });

  it("refuses a volume smaller than the snapshot and changes nothing", async () => {
    const volumeId = randomUUID();
    const snapshot = { id: randomUUID(), volumeId, volumeSizeGb: 2 };
    await driver.createVolume({ id: volumeId, sizeGb: 2 });
    await driver.createSnapshot(snapshot);
    const before = await dirState();
    const id = randomUUID();

    await expectPermanentFailure(
      driver.createVolumeFromSnapshot({ id, sizeGb: 1 }, snapshot),
      `volume-${id}.img`,
      `snapshot-${snapshot.id}.img`,
    );

    expect(await dirState()).toEqual(before);
  });

  it("refuses when a file of another size already has the volume's name", async () => {
    const { snapshot } = await volumeWithSnapshot();
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 2 });
    await writeAt(volumeFile(id), 0, Buffer.from("other data"));
    const before = await dirState();

    await expectPermanentFailure(driver.createVolumeFromSnapshot({ id, sizeGb: 1 }, snapshot), `volume-${id}.img`);

    expect(await dirState()).toEqual(before);
    expect((await readAt(volumeFile(id), 0, 10)).toString()).toBe("other data");
  });

  it("fails permanently, naming the snapshot, when the snapshot file is missing", async () => {
    const snapshot = { id: randomUUID(), volumeId: randomUUID(), volumeSizeGb: 1 };

    const err = await expectPermanentFailure(
      driver.createVolumeFromSnapshot({ id: randomUUID(), sizeGb: 1 }, snapshot),
      `snapshot-${snapshot.id}.img`,
    );

    expect(err.message).toMatch(/not found/);
    expect(await readdir(dataDir)).toEqual([]);
  });

  it("pads a snapshot that is not a whole number of GiB", async () => {
    const snapshot = { id: randomUUID(), volumeId: randomUUID(), volumeSizeGb: 1 };
    const content = Buffer.alloc(3 * MIB + 5, "s");
    await writeFile(snapshotFile(snapshot.id), content);
    const id = randomUUID();

    await driver.createVolumeFromSnapshot({ id, sizeGb: 1 }, snapshot);

    expect((await stat(volumeFile(id))).size).toBe(GIB);
    expect((await readAt(volumeFile(id), 0, content.length)).equals(content)).toBe(true);
    await expectZeros(volumeFile(id), content.length, 4096);
  });

  it("rejects an invalid size", async () => {
    const { snapshot } = await volumeWithSnapshot();
    const before = await dirState();
    for (const sizeGb of [0, -1, 1.5]) {
      await expectPermanentFailure(driver.createVolumeFromSnapshot({ id: randomUUID(), sizeGb }, snapshot));
    }
    expect(await dirState()).toEqual(before);
  });
});

describe("createFileDriver: createClonedVolume", { timeout: 60_000 }, () => {
  it("copies the source volume's bytes as they are now and grows the clone to its size", async () => {
    const { volumeId, volume } = await volumeWithSnapshot();
    const id = randomUUID();

    await driver.createClonedVolume({ id, sizeGb: 3 }, { id: volumeId, sizeGb: 1 });

    const clone = volumeFile(id);
    expect((await stat(clone)).size).toBe(3 * GIB);
    await expectPatterns(clone, "new");
    await expectZeros(clone, 200 * MIB);
    await expectZeros(clone, 3 * GIB - 4096);
    expect(await allocatedBytes(clone)).toBeLessThan(16 * MIB);
    // Every byte of the source's GiB is the clone's.
    for (const offset of [0, MIB, 300 * MIB, GIB - MIB]) {
      expect((await readAt(clone, offset, MIB)).equals(await readAt(volume, offset, MIB))).toBe(true);
    }
    // Independent: writing to either leaves the other alone; no temp file is left.
    await writePatterns(clone, "mine");
    await expectPatterns(volume, "new");
    await writePatterns(volume, "later");
    await expectPatterns(clone, "mine");
    expect((await readdir(dataDir)).filter((f) => f.startsWith("."))).toEqual([]);
  });

  it("is idempotent and does not copy again, even once the source is gone", async () => {
    const { volumeId } = await volumeWithSnapshot();
    const id = randomUUID();
    await driver.createClonedVolume({ id, sizeGb: 1 }, { id: volumeId, sizeGb: 1 });
    await writeAt(volumeFile(id), 17, Buffer.from("written after"));
    const before = await lstat(volumeFile(id));

    await driver.deleteVolume({ id: volumeId, sizeGb: 1 });
    await driver.createClonedVolume({ id, sizeGb: 1 }, { id: volumeId, sizeGb: 1 });

    expect((await lstat(volumeFile(id))).ino).toBe(before.ino);
    expect((await readAt(volumeFile(id), 17, 13)).toString()).toBe("written after");
  });

  it("refuses a clone smaller than its source, or of a missing source, and changes nothing", async () => {
    const sourceId = randomUUID();
    await driver.createVolume({ id: sourceId, sizeGb: 2 });
    const before = await dirState();
    const id = randomUUID();

    await expectPermanentFailure(
      driver.createClonedVolume({ id, sizeGb: 1 }, { id: sourceId, sizeGb: 2 }),
      `volume-${id}.img`,
      `volume-${sourceId}.img`,
      "at least as large",
    );
    const missing = randomUUID();
    const err = await expectPermanentFailure(
      driver.createClonedVolume({ id, sizeGb: 1 }, { id: missing, sizeGb: 1 }),
      `volume-${missing}.img`,
    );
    expect(err.message).toMatch(/not found/);
    expect(await dirState()).toEqual(before);
  });
});

describe("createFileDriver: revertToSnapshot", { timeout: 60_000 }, () => {
  it("puts the snapshot's bytes back, including zeros where it had holes", async () => {
    const { volumeId, snapshot, volume } = await volumeWithSnapshot();
    // Data where the snapshot has a hole must go too.
    await writeAt(volume, 500 * MIB, Buffer.from("written after the snapshot"));
    await chmod(volume, 0o640);

    await driver.revertToSnapshot({ id: volumeId, sizeGb: 1 }, snapshot);

    expect((await stat(volume)).size).toBe(GIB);
    await expectPatterns(volume, "old");
    await expectZeros(volume, 500 * MIB);
    expect(await allocatedBytes(volume)).toBeLessThan(16 * MIB);
    expect((await stat(volume)).mode & 0o777).toBe(0o640);
    // The snapshot stays, unchanged, and no temp file is left.
    await expectPatterns(snapshotFile(snapshot.id), "old");
    expect((await readdir(dataDir)).sort()).toEqual([`snapshot-${snapshot.id}.img`, `volume-${volumeId}.img`].sort());
  });

  it("leaves the snapshot independent of the reverted volume", async () => {
    const { volumeId, snapshot, volume } = await volumeWithSnapshot();
    await driver.revertToSnapshot({ id: volumeId, sizeGb: 1 }, snapshot);

    await writePatterns(volume, "again");

    await expectPatterns(snapshotFile(snapshot.id), "old");
    await expectPatterns(volume, "again");
  });

  it("keeps the size of a volume extended since the snapshot, zeroing the extension", async () => {
    const { volumeId, snapshot, volume } = await volumeWithSnapshot();
    await driver.extendVolume({ id: volumeId, sizeGb: 1 }, 2);
    await writeAt(volume, GIB + 3 * MIB, Buffer.from("in the extension"));
    await writeAt(volume, 2 * GIB - 16, Buffer.from("at the very end"));

    await driver.revertToSnapshot({ id: volumeId, sizeGb: 2 }, snapshot);

    expect((await stat(volume)).size).toBe(2 * GIB);
    await expectPatterns(volume, "old");
    await expectZeros(volume, GIB + 3 * MIB);
    await expectZeros(volume, 2 * GIB - 16, 16);
    expect((await stat(snapshotFile(snapshot.id))).size).toBe(GIB);
  });

  it("is idempotent: reverting again gives the same content", async () => {
    const { volumeId, snapshot, volume } = await volumeWithSnapshot();

    await driver.revertToSnapshot({ id: volumeId, sizeGb: 1 }, snapshot);
    await driver.revertToSnapshot({ id: volumeId, sizeGb: 1 }, snapshot);

    expect((await stat(volume)).size).toBe(GIB);
    await expectPatterns(volume, "old");
    expect((await readdir(dataDir)).length).toBe(2);
  });

  it("fails permanently, naming the file, when the volume or the snapshot is missing", async () => {
    const { volumeId, snapshot, volume } = await volumeWithSnapshot();
    const before = await dirState();

    const otherVolume = randomUUID();
    await expectPermanentFailure(
      driver.revertToSnapshot({ id: otherVolume, sizeGb: 1 }, { ...snapshot, volumeId: otherVolume }),
      `volume-${otherVolume}.img`,
      "not found",
    );
    const missing = { ...snapshot, id: randomUUID() };
    await expectPermanentFailure(
      driver.revertToSnapshot({ id: volumeId, sizeGb: 1 }, missing),
      `snapshot-${missing.id}.img`,
      "not found",
    );

    expect(await dirState()).toEqual(before);
    await expectPatterns(volume, "new");
  });

  it("refuses a snapshot of another volume and changes nothing", async () => {
    const { snapshot } = await volumeWithSnapshot();
    const otherId = randomUUID();
    await driver.createVolume({ id: otherId, sizeGb: 1 });
    await writePatterns(volumeFile(otherId), "other");
    const before = await dirState();

    await expectPermanentFailure(driver.revertToSnapshot({ id: otherId, sizeGb: 1 }, snapshot), "another volume");

    expect(await dirState()).toEqual(before);
    await expectPatterns(volumeFile(otherId), "other");
  });

  it("refuses a snapshot larger than the volume and changes nothing", async () => {
    const { volumeId, snapshot, volume } = await volumeWithSnapshot();
    await truncate(snapshotFile(snapshot.id), 2 * GIB);
    const before = await dirState();

    await expectPermanentFailure(driver.revertToSnapshot({ id: volumeId, sizeGb: 1 }, snapshot), "larger");

    expect(await dirState()).toEqual(before);
    await expectPatterns(volume, "new");
  });
});

describe("createFileDriver: extendVolume", () => {
  it("grows the file with a hole and keeps the data", async () => {
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 1 });
    await writePatterns(volumeFile(id), "keep");
    const { ino } = await stat(volumeFile(id));

    await driver.extendVolume({ id, sizeGb: 1 }, 3);

    const info = await stat(volumeFile(id));
    expect(info.size).toBe(3 * GIB);
    expect(info.ino).toBe(ino);
    await expectPatterns(volumeFile(id), "keep");
    await expectZeros(volumeFile(id), 3 * GIB - 4096);
    expect(await allocatedBytes(volumeFile(id))).toBeLessThan(MIB);
    expect(await readdir(dataDir)).toEqual([`volume-${id}.img`]);
  });

  it("is idempotent when the volume already has the new size", async () => {
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 1 });
    await driver.extendVolume({ id, sizeGb: 1 }, 2);
    await writeAt(volumeFile(id), GIB + 1, Buffer.from("tail"));
    const before = await dirState();

    await driver.extendVolume({ id, sizeGb: 1 }, 2);
    await driver.extendVolume({ id, sizeGb: 2 }, 2);

    expect(await dirState()).toEqual(before);
    expect((await readAt(volumeFile(id), GIB + 1, 4)).toString()).toBe("tail");
  });

  it("refuses to shrink, a bad size, or a missing volume, and changes nothing", async () => {
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 2 });
    await writeAt(volumeFile(id), 2 * GIB - 4, Buffer.from("last"));
    const before = await dirState();

    await expectPermanentFailure(driver.extendVolume({ id, sizeGb: 2 }, 1), "shrink");
    for (const size of [0, -1, 2.5, Number.NaN]) {
      await expectPermanentFailure(driver.extendVolume({ id, sizeGb: 2 }, size));
    }
    const missing = randomUUID();
    await expectPermanentFailure(driver.extendVolume({ id: missing, sizeGb: 1 }, 2), `volume-${missing}.img`);

    expect(await dirState()).toEqual(before);
    expect((await readAt(volumeFile(id), 2 * GIB - 4, 4)).toString()).toBe("last");
  });
});

describe("createFileDriver: deleteSnapshot with dependants", { timeout: 60_000 }, () => {
  it("deletes a snapshot that volumes were made from and reverted to; they keep their bytes", async () => {
    const { volumeId, snapshot, volume } = await volumeWithSnapshot();
    const cloneId = randomUUID();
    await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 1 }, snapshot);
    await driver.revertToSnapshot({ id: volumeId, sizeGb: 1 }, snapshot);

    await driver.deleteSnapshot(snapshot);

    await expectPatterns(volumeFile(cloneId), "old");
    await expectPatterns(volume, "old");
    expect((await readdir(dataDir)).sort()).toEqual([`volume-${cloneId}.img`, `volume-${volumeId}.img`].sort());
  });
});

describe("createFileDriver: manage and unmanage snapshots", { timeout: 60_000 }, () => {
  it("lists unowned snapshots and other .img files, flagging the unsafe ones", async () => {
    const volumeId = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    const owned = randomUUID();
    const unowned = randomUUID();
    await driver.createSnapshot({ id: owned, volumeId, volumeSizeGb: 1 });
    await driver.createSnapshot({ id: unowned, volumeId, volumeSizeGb: 1 });
    const backup = join(dataDir, "backup.img");
    await writeFile(backup, "b");
    await truncate(backup, GIB + 1);
    await writeFile(join(dataDir, "small.img"), "s");
    await writeFile(join(dataDir, "empty.img"), "");
    await writeFile(join(dataDir, "a..b.img"), "x");
    await writeFile(join(dataDir, "tab\there.img"), "x");
    await writeFile(join(dataDir, "linked.img"), "x");
    await link(join(dataDir, "linked.img"), join(root, "elsewhere"));
    await mkdir(join(dataDir, "dir.img"));
    await symlink(backup, join(dataDir, "link.img"));
    // Not listed: not .img, hidden (temp files), volumes.
    await writeFile(join(dataDir, "notes.txt"), "x");
    await writeFile(join(dataDir, ".hidden.img"), "x");
    await writeFile(join(dataDir, `volume-${randomUUID()}.img`), "x");
    await writeFile(join(dataDir, "volume-custom.img"), "x");
    const before = await dirState();

    // Owned ids may come in any case.
    const list = await driver.listManageableSnapshots(new Set([owned.toUpperCase()]));

    expect(list).toEqual(
      [
        { reference: "a..b.img", sizeGb: 1, safeToManage: false, reasonNotSafe: expect.stringContaining("..") },
        { reference: "backup.img", sizeGb: 2, safeToManage: true },
        { reference: "dir.img", sizeGb: 0, safeToManage: false, reasonNotSafe: expect.stringContaining("directory") },
        { reference: "empty.img", sizeGb: 0, safeToManage: false, reasonNotSafe: expect.stringContaining("empty") },
        { reference: "link.img", sizeGb: 0, safeToManage: false, reasonNotSafe: expect.stringContaining("symbolic") },
        {
          reference: "linked.img",
          sizeGb: 1,
          safeToManage: false,
          reasonNotSafe: expect.stringContaining("hard link"),
        },
        { reference: "small.img", sizeGb: 1, safeToManage: true },
        { reference: `snapshot-${unowned}.img`, sizeGb: 1, safeToManage: true },
        {
          reference: "tab\there.img",
          sizeGb: 1,
          safeToManage: false,
          reasonNotSafe: expect.stringContaining("control"),
        },
      ].sort((a, b) => (a.reference < b.reference ? -1 : 1)),
    );
    expect(await dirState()).toEqual(before);
  });

  it("lists nothing in an empty directory or when every snapshot is owned", async () => {
    expect(await driver.listManageableSnapshots(new Set())).toEqual([]);
    const volumeId = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    const id = randomUUID();
    await driver.createSnapshot({ id, volumeId, volumeSizeGb: 1 });
    expect(await driver.listManageableSnapshots(new Set([id]))).toEqual([]);
  });

  it("manages a file by renaming it, keeping its bytes, and a retry succeeds", async () => {
    const content = Buffer.alloc(2 * MIB, "m");
    content.write("start", 0);
    await writeFile(join(dataDir, "backup.img"), content);
    await truncate(join(dataDir, "backup.img"), GIB + 5);
    const { ino } = await stat(join(dataDir, "backup.img"));
    const snapshot = { id: randomUUID(), volumeId: randomUUID(), volumeSizeGb: 2 };

    expect(await driver.manageExistingSnapshot(snapshot, "backup.img")).toEqual({ sizeGb: 2 });
    expect(await driver.manageExistingSnapshot(snapshot, "backup.img")).toEqual({ sizeGb: 2 });

    expect(await readdir(dataDir)).toEqual([`snapshot-${snapshot.id}.img`]);
    const managed = snapshotFile(snapshot.id);
    expect((await stat(managed)).ino).toBe(ino);
    expect((await readAt(managed, 0, content.length)).equals(content)).toBe(true);
    expect(await driver.listManageableSnapshots(new Set([snapshot.id]))).toEqual([]);

    // A managed snapshot works like any other.
    const volumeId = randomUUID();
    await driver.createVolumeFromSnapshot({ id: volumeId, sizeGb: 2 }, snapshot);
    expect((await readAt(volumeFile(volumeId), 0, content.length)).equals(content)).toBe(true);
    expect((await stat(volumeFile(volumeId))).size).toBe(2 * GIB);
  });

  it("takes an unowned snapshot-<id>.img file under a new id, or as it is under its own id", async () => {
    const volumeId = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    await writePatterns(volumeFile(volumeId), "snap");
    const [first, second] = [randomUUID(), randomUUID()];
    await driver.createSnapshot({ id: first, volumeId, volumeSizeGb: 1 });
    await driver.createSnapshot({ id: second, volumeId, volumeSizeGb: 1 });
    const renamed = { id: randomUUID(), volumeId, volumeSizeGb: 1 };

    expect(await driver.manageExistingSnapshot(renamed, `snapshot-${first}.img`)).toEqual({ sizeGb: 1 });
    const before = await dirState();
    expect(
      await driver.manageExistingSnapshot({ id: second, volumeId, volumeSizeGb: 1 }, `snapshot-${second}.img`),
    ).toEqual({ sizeGb: 1 });

    expect(await dirState()).toEqual(before);
    expect((await readdir(dataDir)).sort()).toEqual(
      [`snapshot-${renamed.id}.img`, `snapshot-${second}.img`, `volume-${volumeId}.img`].sort(),
    );
    await expectPatterns(snapshotFile(renamed.id), "snap");
  });

  it("finishes a manage that stopped between link and unlink", async () => {
    await writeFile(join(dataDir, "backup.img"), "half done");
    const snapshot = { id: randomUUID(), volumeId: randomUUID(), volumeSizeGb: 1 };
    await link(join(dataDir, "backup.img"), snapshotFile(snapshot.id));

    expect(await driver.manageExistingSnapshot(snapshot, "backup.img")).toEqual({ sizeGb: 1 });

    expect(await readdir(dataDir)).toEqual([`snapshot-${snapshot.id}.img`]);
    expect(await readFile(snapshotFile(snapshot.id), "utf8")).toBe("half done");
    expect((await stat(snapshotFile(snapshot.id))).nlink).toBe(1);
  });

  it("refuses bad references, never overwrites, and changes nothing", async () => {
    const volumeId = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    await writeFile(join(dataDir, "backup.img"), "backup");
    await writeFile(join(dataDir, "empty.img"), "");
    await writeFile(join(dataDir, "a..b.img"), "x");
    await writeFile(join(dataDir, "notes.txt"), "x");
    await writeFile(join(dataDir, ".hidden.img"), "x");
    await writeFile(join(root, "outside.img"), "outside");
    await mkdir(join(dataDir, "dir.img"));
    await mkdir(join(dataDir, "sub"));
    await writeFile(join(dataDir, "sub", "inner.img"), "x");
    await symlink(join(dataDir, "backup.img"), join(dataDir, "link.img"));
    const taken = { id: randomUUID(), volumeId, volumeSizeGb: 1 };
    await writeFile(snapshotFile(taken.id), "already a snapshot");
    const before = await dirState();

    const snapshot = { id: randomUUID(), volumeId, volumeSizeGb: 1 };
    for (const reference of [
      "",
      "../outside.img",
      "sub/inner.img",
      `${dataDir}/backup.img`,
      "a..b.img",
      "..",
      ".hidden.img",
      "notes.txt",
      `volume-${volumeId}.img`,
      "missing.img",
      "dir.img",
      "link.img",
      "empty.img",
      "bad\nname.img",
    ]) {
      await expectPermanentFailure(driver.manageExistingSnapshot(snapshot, reference));
    }
    // The snapshot's own name is taken by another file: never overwritten.
    await expectPermanentFailure(driver.manageExistingSnapshot(taken, "backup.img"), "already exists");

    expect(await dirState()).toEqual(before);
    expect(await readFile(snapshotFile(taken.id), "utf8")).toBe("already a snapshot");
    expect(await readFile(join(root, "outside.img"), "utf8")).toBe("outside");
  });

  it("unmanages by renaming to unmanaged-snapshot-<id>.img, which is listed again", async () => {
    const { snapshot } = await volumeWithSnapshot();
    const { ino } = await stat(snapshotFile(snapshot.id));

    await driver.unmanageSnapshot(snapshot);
    await driver.unmanageSnapshot(snapshot);

    const unmanaged = join(dataDir, `unmanaged-snapshot-${snapshot.id}.img`);
    expect((await stat(unmanaged)).ino).toBe(ino);
    await expectPatterns(unmanaged, "old");
    expect((await readdir(dataDir)).filter((name) => name.startsWith("snapshot-"))).toEqual([]);
    expect(await driver.listManageableSnapshots(new Set([snapshot.id]))).toEqual([
      { reference: `unmanaged-snapshot-${snapshot.id}.img`, sizeGb: 1, safeToManage: true },
    ]);

    // And it can be managed again under a new row.
    const again = { ...snapshot, id: randomUUID() };
    expect(await driver.manageExistingSnapshot(again, `unmanaged-snapshot-${snapshot.id}.img`)).toEqual({
      sizeGb: 1,
    });
    await expectPatterns(snapshotFile(again.id), "old");
  });

  it("unmanaging a snapshot that is not there succeeds and creates nothing", async () => {
    await driver.unmanageSnapshot({ id: randomUUID(), volumeId: randomUUID(), volumeSizeGb: 1 });
    expect(await readdir(dataDir)).toEqual([]);
  });

  it("finishes an unmanage that stopped between link and unlink", async () => {
    const snapshot = { id: randomUUID(), volumeId: randomUUID(), volumeSizeGb: 1 };
    await writeFile(snapshotFile(snapshot.id), "half");
    await link(snapshotFile(snapshot.id), join(dataDir, `unmanaged-snapshot-${snapshot.id}.img`));

    await driver.unmanageSnapshot(snapshot);

    expect(await readdir(dataDir)).toEqual([`unmanaged-snapshot-${snapshot.id}.img`]);
  });

  it("refuses to unmanage over another file of the unmanaged name", async () => {
    const snapshot = { id: randomUUID(), volumeId: randomUUID(), volumeSizeGb: 1 };
    await writeFile(snapshotFile(snapshot.id), "ours");
    await writeFile(join(dataDir, `unmanaged-snapshot-${snapshot.id}.img`), "someone else's");
    const before = await dirState();

    await expectPermanentFailure(driver.unmanageSnapshot(snapshot), `unmanaged-snapshot-${snapshot.id}.img`);

    expect(await dirState()).toEqual(before);
    expect(await readFile(snapshotFile(snapshot.id), "utf8")).toBe("ours");
  });
});

describe("createFileDriver: getStats", () => {
  it("reports capacity and the sum of volume sizes", { timeout: 60_000 }, async () => {
    const volumeId = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    await driver.createVolume({ id: randomUUID(), sizeGb: 3 });
    // Snapshots and unrelated files are not volumes.
    await driver.createSnapshot({ id: randomUUID(), volumeId, volumeSizeGb: 1 });
    await writeFile(join(dataDir, "notes.txt"), "x");

    const stats = await driver.getStats();

    expect(stats).toMatchObject({
      driver: "file",
      // Its pool is its directory.
      poolName: basename(dataDir),
      storageProtocol: "file",
      multiattach: true,
      backendState: "up",
      thinProvisioning: true,
      provisionedCapacityGb: 4,
      totalVolumes: 2,
      reservedPercentage: 5,
      maxOverSubscriptionRatio: 10,
    });
    expect(stats.totalCapacityGb).toBeGreaterThan(0);
    expect(stats.freeCapacityGb).toBeGreaterThanOrEqual(0);
    expect(stats.freeCapacityGb).toBeLessThanOrEqual(stats.totalCapacityGb);
  });

  it("reports the backend down when the data directory is gone", async () => {
    await rm(dataDir, { recursive: true });

    const stats = await driver.getStats();

    expect(stats.backendState).toBe("down");
    expect(stats.driver).toBe("file");
  });
});

describe("createFileDriver: options", () => {
  it("rejects a relative data directory and out-of-range ratios", () => {
    expect(() => createFileDriver({ dataDir: "data" })).toThrow(TypeError);
    expect(() => createFileDriver({ dataDir, reservedPercentage: 101 })).toThrow(RangeError);
    expect(() => createFileDriver({ dataDir, maxOverSubscriptionRatio: 0.5 })).toThrow(RangeError);
  });
});

describe("copySparse", () => {
  it("copies the bytes and length, leaving zero chunks as holes", async () => {
    const src = join(root, "src.img");
    const dst = join(root, "dst.img");
    // Real, allocated zeros over 8 MiB with data in two chunks: the copy must drop the rest.
    const content = Buffer.alloc(8 * MIB);
    content.write("head", 10);
    content.write("tail", 5 * MIB + 3);
    await writeFile(src, content);
    expect(await allocatedBytes(src)).toBeGreaterThanOrEqual(8 * MIB);

    await copySparse(src, dst);

    expect((await readFile(dst)).equals(content)).toBe(true);
    expect(await allocatedBytes(dst)).toBeLessThanOrEqual(2 * MIB + 64 * 1024);
  });

  it("keeps a trailing hole and an odd final length", async () => {
    const src = join(root, "src.img");
    const dst = join(root, "dst.img");
    const length = 3 * MIB + 123;
    const handle = await open(src, "w");
    await handle.truncate(length);
    await handle.write(Buffer.from("only"), 0, 4, MIB);
    await handle.close();

    await copySparse(src, dst, { chunkSize: 64 * 1024 });

    expect((await stat(dst)).size).toBe(length);
    expect((await readAt(dst, MIB, 4)).toString()).toBe("only");
    expect((await readAt(dst, length - 100, 200)).equals(Buffer.alloc(100))).toBe(true);
    expect(await allocatedBytes(dst)).toBeLessThanOrEqual(128 * 1024);
  });

  it("copies an empty file", async () => {
    const src = join(root, "src.img");
    const dst = join(root, "dst.img");
    await writeFile(src, "");

    await copySparse(src, dst);

    expect((await stat(dst)).size).toBe(0);
  });

  it("never overwrites an existing destination", async () => {
    const src = join(root, "src.img");
    const dst = join(root, "dst.img");
    await writeFile(src, "new");
    await writeFile(dst, "old");

    await expect(copySparse(src, dst)).rejects.toMatchObject({ code: "EEXIST" });
    expect(await readFile(dst, "utf8")).toBe("old");
  });
});

describe("connections", () => {
  it("gives the image file as a local device, and refuses a volume that does not exist", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cinderblock-file-conn-"));
    try {
      const driver = createFileDriver({ dataDir: dir });
      await driver.initialize();
      const id = "0d9b5c1e-6f5a-4b7e-9a51-3c2d1e0f9a8b";
      await driver.createVolume({ id, sizeGb: 1 });
      expect(await driver.initializeConnection({ id, sizeGb: 1 }, { host: "compute1" })).toEqual({
        driverVolumeType: "local",
        data: { device_path: join(dir, `volume-${id}.img`) },
      });
      await expect(driver.terminateConnection({ id, sizeGb: 1 }, { host: "compute1" })).resolves.toBeUndefined();
      const missing = "1d9b5c1e-6f5a-4b7e-9a51-3c2d1e0f9a8b";
      await expect(driver.initializeConnection({ id: missing, sizeGb: 1 }, {})).rejects.toThrow(
        `volume file volume-${missing}.img not found on backend`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
