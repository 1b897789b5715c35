import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DriverError, type VolumeChunk } from "../driver.js";
import { type CommandRunner, CommandRunnerError, createLocalRunner, type RunOptions } from "./command-runner.js";
import { createLvm } from "./lvm.js";
import { createLvmDriver } from "./lvm-driver.js";
import { readBlocks, writeBlocks } from "./volume-copy.js";

// The migration copy's shell scripts run for real here (this machine's sh and GNU coreutils),
// on files standing in for LVs; the guest's busybox runs them in lvm-driver.integration.test.ts.
// Failures come from scripted runners.

const MIB = 1024 * 1024;
const SIZE = 24 * MIB;
const VOLUME = "0b5c1c8e-3c4f-4d5e-8f60-718293a4b5c6";

let dir: string;

/** The local runner, counting its calls (and able to drop the input, as a runner that lost it). */
function counting(options: { dropInput?: boolean } = {}) {
  const local = createLocalRunner();
  const counter = { calls: 0 };
  const runner: CommandRunner = {
    run(argv, opts: RunOptions) {
      counter.calls++;
      return local.run(argv, options.dropInput ? { timeoutMs: opts.timeoutMs } : opts);
    },
  };
  return { runner, counter, lvm: createLvm({ runner, vg: "vg", timeoutMs: 60_000 }) };
}

async function collect(chunks: AsyncIterable<VolumeChunk>): Promise<VolumeChunk[]> {
  const out: VolumeChunk[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

async function* from(chunks: VolumeChunk[]): AsyncIterable<VolumeChunk> {
  yield* chunks;
}

const sha256 = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");

async function rejection(promise: Promise<unknown>): Promise<DriverError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof DriverError)) throw new Error(`expected a DriverError, got ${String(outcome)}`);
  return outcome;
}

/** A runner answering every command with `reply` (or rejecting with it). */
function answering(reply: { code?: number; stdout?: string; stderr?: string } | Error) {
  const calls: Array<{ argv: readonly string[]; input?: Uint8Array }> = [];
  const runner: CommandRunner = {
    async run(argv, opts) {
      calls.push({ argv, ...(opts.input ? { input: opts.input } : {}) });
      if (reply instanceof Error) throw reply;
      return { code: 0, stdout: "", stderr: "", ...reply };
    },
  };
  return { calls, lvm: createLvm({ runner, vg: "vg", timeoutMs: 1000 }) };
}

describe("LV copy scripts on files", () => {
  let source: string;
  let pattern: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "cinderblock-lv-copy-"));
    source = join(dir, "source");
    const image = Buffer.alloc(SIZE);
    pattern = randomBytes(MIB);
    pattern.copy(image, 0);
    // A few bytes inside block 10, and the last MiB.
    randomBytes(100).copy(image, 10 * MIB + 4096);
    pattern.copy(image, SIZE - MIB);
    await writeFile(source, image);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads only the blocks that are not all zeros, in one command", async () => {
    const { lvm, counter } = counting();
    const chunks = await collect(readBlocks(lvm, source, SIZE, MIB, 60_000));
    expect(chunks.map((c) => [c.offset / MIB, c.data.byteLength])).toEqual([
      [0, MIB],
      [10, MIB],
      [23, MIB],
    ]);
    expect(Buffer.from(chunks[2]?.data ?? []).equals(pattern)).toBe(true);
    expect(counter.calls).toBe(1);
  });

  it("reads 8 MiB of data per command at most", async () => {
    const dense = join(dir, "dense");
    await writeFile(dense, randomBytes(10 * MIB));
    const { lvm, counter } = counting();
    const chunks = await collect(readBlocks(lvm, dense, 10 * MIB, MIB, 60_000));
    expect(chunks).toHaveLength(10);
    expect(counter.calls).toBe(2);
  });

  it("writes into a thick LV full of garbage: the gaps are zeroed on the storage side", async () => {
    const target = join(dir, "thick-target");
    await writeFile(target, Buffer.alloc(SIZE, 0xa5));
    const { lvm: reader } = counting();
    const chunks = await collect(readBlocks(reader, source, SIZE, MIB, 60_000));
    const { lvm, counter } = counting();
    await writeBlocks(lvm, target, SIZE, from(chunks), { zeroGaps: true, timeoutMs: 60_000 });
    expect(await sha256(target)).toBe(await sha256(source));
    expect(counter.calls).toBe(1);
  });

  it("writes into a fresh (zero) thin LV without touching the gaps", async () => {
    const target = join(dir, "thin-target");
    await writeFile(target, Buffer.alloc(SIZE));
    const { lvm: reader } = counting();
    const chunks = await collect(readBlocks(reader, source, SIZE, MIB, 60_000));
    const { lvm } = counting();
    await writeBlocks(lvm, target, SIZE, from(chunks), { zeroGaps: false, timeoutMs: 60_000 });
    expect(await sha256(target)).toBe(await sha256(source));
  });

  it("fails, and says so, when the data did not reach the storage host", async () => {
    const target = join(dir, "lost-input");
    await writeFile(target, Buffer.alloc(SIZE));
    const { lvm } = counting({ dropInput: true });
    const error = await rejection(
      writeBlocks(lvm, target, SIZE, from([{ offset: 0, data: pattern }]), { zeroGaps: false, timeoutMs: 60_000 }),
    );
    expect(error.message).toMatch(/did not reach the storage host/);
  });
});

describe("LV copy failures", () => {
  it("a runner that cannot run the read is a retryable DriverError", async () => {
    const { lvm } = answering(new CommandRunnerError("cannot reach the guest", { timedOut: false }));
    const error = await rejection(collect(readBlocks(lvm, "/dev/vg/lv", SIZE, MIB, 1000)));
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/reading \/dev\/vg\/lv from byte 0 failed: .*cannot reach the guest/);
  });

  it("a read that fails on the storage host names its stderr, not the script", async () => {
    const { lvm } = answering({ code: 1, stderr: "dd: /dev/vg/lv: Input/output error\n" });
    const error = await rejection(collect(readBlocks(lvm, "/dev/vg/lv", SIZE, MIB, 1000)));
    expect(error.message).toBe("reading /dev/vg/lv from byte 0 failed: exit 1: dd: /dev/vg/lv: Input/output error");
  });

  it("a short block and a missing end marker are DriverErrors", async () => {
    const short = Buffer.alloc(MIB - 512, 1).toString("base64");
    const { lvm } = answering({ stdout: `D 0 ${MIB}\n${short}\nE ${MIB}\n` });
    const error = await rejection(collect(readBlocks(lvm, "/dev/vg/lv", SIZE, MIB, 1000)));
    expect(error.message).toMatch(/the block at 0 came back with 1048064 of its 1048576 bytes/);

    const { lvm: cut } = answering({ stdout: `D 0 4096\n${Buffer.alloc(4096, 1).toString("base64")}\n` });
    expect((await rejection(collect(readBlocks(cut, "/dev/vg/lv", SIZE, MIB, 1000)))).message).toMatch(
      /ended before its end marker/,
    );

    const { lvm: outside } = answering({ stdout: `D ${SIZE} 4096\nAAAA\nE ${SIZE}\n` });
    expect((await rejection(collect(readBlocks(outside, "/dev/vg/lv", SIZE, MIB, 1000)))).message).toMatch(
      /outside the volume/,
    );
  });

  it("refuses chunks outside the volume, out of order or unaligned, before running anything", async () => {
    const cases: VolumeChunk[][] = [
      [{ offset: SIZE - 4096, data: new Uint8Array(8192) }],
      [
        { offset: MIB, data: new Uint8Array(4096) },
        { offset: 0, data: new Uint8Array(4096) },
      ],
      [{ offset: 512, data: new Uint8Array(4096) }],
    ];
    for (const chunks of cases) {
      const { lvm, calls } = answering({});
      const error = await rejection(
        writeBlocks(lvm, "/dev/vg/lv", SIZE, from(chunks), { zeroGaps: true, timeoutMs: 1 }),
      );
      expect(error.retryable).toBe(false);
      expect(error.kind).toBe("invalid");
      expect(calls).toEqual([]);
    }
  });

  it("batches writes by 8 MiB, merges adjacent chunks, and zeroes a thick LV's gaps without shipping them", async () => {
    const { lvm, calls } = answering({});
    const chunks = Array.from({ length: 10 }, (_, i) => ({
      offset: (i < 5 ? i : i + 2) * MIB,
      data: new Uint8Array(MIB),
    }));
    await writeBlocks(lvm, "/dev/vg/lv", SIZE, from(chunks), { zeroGaps: true, timeoutMs: 1 });
    expect(calls.map((c) => c.argv.slice(5))).toEqual([
      // blocks 0-4 written, 5-6 zeroed, 7-9 written (8 MiB of data: the batch is full)
      ["w", String(MIB), "0", "5", "z", String(MIB), "5", "2", "w", String(MIB), "7", "3"],
      // blocks 10-11 written, the rest up to the end zeroed
      ["w", String(MIB), "10", "2", "z", String(MIB), "12", "12"],
    ]);
    expect(calls.map((c) => c.input?.byteLength)).toEqual([16 + 8 * MIB, 16 + 2 * MIB]);
  });

  it("a failed write is a retryable DriverError", async () => {
    const { lvm } = answering({ code: 4, stderr: "w at block 0 of 1048576 bytes: dd: No space left on device\n" });
    const error = await rejection(
      writeBlocks(lvm, "/dev/vg/lv", SIZE, from([{ offset: 0, data: new Uint8Array(MIB) }]), {
        zeroGaps: false,
        timeoutMs: 1,
      }),
    );
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/writing \/dev\/vg\/lv from byte 0 failed: exit 4: .*No space left/);
  });

  it("the driver reads and writes only its own, existing LV", async () => {
    const runner: CommandRunner = {
      async run() {
        return { code: 0, stdout: JSON.stringify({ report: [{ lv: [] }] }), stderr: "" };
      },
    };
    const driver = createLvmDriver({ runner, volumeGroup: "vg" });
    const error = await rejection(collect(driver.readVolume?.({ id: VOLUME, sizeGb: 1 }, MIB) ?? from([])));
    expect(error.kind).toBe("not_found");
    expect(error.message).toBe(`volume volume-${VOLUME} not found in volume group vg`);
    const bad = await rejection(collect(driver.readVolume?.({ id: "../etc", sizeGb: 1 }, MIB) ?? from([])));
    expect(bad.kind).toBe("invalid");
  });
});
