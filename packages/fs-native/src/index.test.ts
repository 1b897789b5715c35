import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type FsNativeError, loadFsNative } from "./index.js";

// Real files in a temp directory. Where the addon was not built the suite says why and skips; in
// CI (which has g++) it must have been built.
const native = loadFsNative();
if (native.error && process.env.CI === "true") {
  throw new Error(`the fs-native addon must be built in CI, but ${native.error.message}`);
}
if (native.error) console.warn(`skipping the fs-native tests: ${native.error.message}`);

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const execFileAsync = promisify(execFile);

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "fs-native-test-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A sparse file of `size` bytes holding `chunks` at their offsets and holes everywhere else. */
async function sparseFile(name: string, size: number, chunks: Array<[number, Buffer]>): Promise<string> {
  const path = join(dir, name);
  const handle = await open(path, "wx");
  try {
    for (const [position, bytes] of chunks) await handle.write(bytes, 0, bytes.length, position);
    await handle.truncate(size);
  } finally {
    await handle.close();
  }
  return path;
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

async function rejection(promise: Promise<unknown>): Promise<FsNativeError> {
  try {
    await promise;
  } catch (error) {
    return error as FsNativeError;
  }
  throw new Error("expected a rejection");
}

describe.skipIf(native.error !== undefined)("copySparse (fs-native addon)", () => {
  const copySparse = (src: string, dst: string, options?: { fsync?: boolean }) => {
    if (!native.binding) throw new Error("unreachable: the suite is skipped without the addon");
    return native.binding.copySparse(src, dst, options);
  };

  it("copies data between holes byte for byte, keeps the holes and the length, and gives cp's mode", async () => {
    const chunks: Array<[number, Buffer]> = [
      [0, randomBytes(256 * 1024)],
      [5 * MIB + 4096, randomBytes(256 * 1024)],
      [20 * MIB + 123, randomBytes(256 * 1024)],
      [40 * MIB, randomBytes(256 * 1024)],
    ];
    // The last 24 MiB are a trailing hole.
    const src = await sparseFile("src.img", 64 * MIB, chunks);
    const dst = join(dir, "dst.img");

    await copySparse(src, dst, { fsync: true });

    const [srcInfo, dstInfo] = await Promise.all([stat(src), stat(dst)]);
    expect(dstInfo.size).toBe(64 * MIB);
    expect((await readFile(dst)).equals(await readFile(src))).toBe(true);
    // About 1 MiB allocated, as in the source (the file system may round extents differently).
    expect(dstInfo.blocks * 512).toBeLessThan(4 * MIB);
    expect(dstInfo.blocks).toBeLessThanOrEqual(srcInfo.blocks * 2);
    // The mode `cp` (the driver's other copy) gives the same source.
    await execFileAsync("cp", ["--sparse=always", "--", src, join(dir, "cp.img")]);
    expect(dstInfo.mode).toBe((await stat(join(dir, "cp.img"))).mode);
  });

  it("copies a sparse file larger than 4 GiB with data above the 32-bit offsets", async () => {
    const high = randomBytes(64 * 1024);
    const higher = randomBytes(4096);
    const src = await sparseFile("big.img", 5 * GIB, [
      [3 * GIB + 123, high],
      [4 * GIB + 512 * MIB, higher],
    ]);
    const dst = join(dir, "big-copy.img");

    await copySparse(src, dst);

    const info = await stat(dst);
    expect(info.size).toBe(5 * GIB);
    expect(info.blocks * 512).toBeLessThan(4 * MIB);
    expect((await readAt(dst, 3 * GIB + 123, high.length)).equals(high)).toBe(true);
    expect((await readAt(dst, 4 * GIB + 512 * MIB, higher.length)).equals(higher)).toBe(true);
    // Around the data, and in the trailing hole: zeros.
    expect((await readAt(dst, 3 * GIB, 123)).equals(Buffer.alloc(123))).toBe(true);
    expect((await readAt(dst, 5 * GIB - 4096, 4096)).equals(Buffer.alloc(4096))).toBe(true);
  });

  it("copies an empty file and a file that is one hole", async () => {
    const empty = await sparseFile("empty.img", 0, []);
    const hole = await sparseFile("hole.img", 10 * GIB, []);

    await copySparse(empty, join(dir, "empty-copy.img"));
    await copySparse(hole, join(dir, "hole-copy.img"));

    expect((await stat(join(dir, "empty-copy.img"))).size).toBe(0);
    const info = await stat(join(dir, "hole-copy.img"));
    expect(info.size).toBe(10 * GIB);
    expect(info.blocks).toBe(0);
  });

  it("refuses an existing destination with EEXIST and leaves it as it was", async () => {
    const src = await sparseFile("src.img", MIB, [[0, randomBytes(4096)]]);
    const dst = join(dir, "taken.img");
    await writeFile(dst, "someone else's file");

    const error = await rejection(copySparse(src, dst));

    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ code: "EEXIST", errno: -17, syscall: "open", path: dst });
    expect(error.message).toBe(`EEXIST: file already exists, open '${dst}'`);
    expect(await readFile(dst, "utf8")).toBe("someone else's file");
  });

  it("rejects a missing source with ENOENT naming it, and creates no destination", async () => {
    const src = join(dir, "missing.img");
    const dst = join(dir, "never.img");

    const error = await rejection(copySparse(src, dst));

    expect(error).toMatchObject({ code: "ENOENT", syscall: "open", path: src });
    expect(error.message).toContain(`open '${src}'`);
    await expect(stat(dst)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("rejects a directory as the source and a destination in a missing directory", async () => {
    const src = await sparseFile("src.img", MIB, []);
    await mkdir(join(dir, "sub"));

    expect(await rejection(copySparse(join(dir, "sub"), join(dir, "x.img")))).toMatchObject({ code: "EISDIR" });
    const dst = join(dir, "nowhere", "x.img");
    expect(await rejection(copySparse(src, dst))).toMatchObject({ code: "ENOENT", syscall: "open", path: dst });
    await expect(stat(join(dir, "x.img"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("refuses bad arguments before touching any file", async () => {
    const src = await sparseFile("src.img", MIB, []);
    const call = native.binding?.copySparse as unknown as (...args: unknown[]) => Promise<void>;

    expect(() => call(src)).toThrow(TypeError);
    expect(() => call(src, "")).toThrow(TypeError);
    expect(() => call(src, `${join(dir, "a")}\0b`)).toThrow(TypeError);
    expect(() => call(src, join(dir, "a.img"), { fsync: "yes" })).toThrow(TypeError);
    await expect(stat(join(dir, "a.img"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
