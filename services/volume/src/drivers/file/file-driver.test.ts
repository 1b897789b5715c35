import { randomUUID } from "node:crypto";
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DriverError, type VolumeDriver } from "../driver.js";
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
