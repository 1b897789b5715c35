import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { VolumeChunk } from "./driver.js";
import { digestOfVolume, VolumeDigest } from "./volume-digest.js";

async function* from(chunks: VolumeChunk[]): AsyncIterable<VolumeChunk> {
  yield* chunks;
}

describe("volume digest of a sparse stream", () => {
  const size = 3 * 1024 * 1024 + 512;
  const whole = Buffer.alloc(size);
  whole.fill(7, 1024 * 1024, 1024 * 1024 + 10);
  whole.fill(9, 2 * 1024 * 1024, 2 * 1024 * 1024 + 4096);
  const expected = createHash("sha256").update(whole).digest("hex");

  it("hashes the gaps and the tail as zeros: a sparse and a dense stream of one volume agree", async () => {
    const sparse = [
      { offset: 1024 * 1024, data: whole.subarray(1024 * 1024, 1024 * 1024 + 10) },
      { offset: 2 * 1024 * 1024, data: whole.subarray(2 * 1024 * 1024, 2 * 1024 * 1024 + 4096) },
    ];
    expect(await digestOfVolume(from(sparse), size)).toBe(expected);
    expect(await digestOfVolume(from([{ offset: 0, data: whole }]), size)).toBe(expected);
    expect(await digestOfVolume(from([]), 4)).toBe(createHash("sha256").update(Buffer.alloc(4)).digest("hex"));
  });

  it("refuses a chunk that goes back, overlaps or ends past the volume", () => {
    const digest = new VolumeDigest(8192);
    digest.update({ offset: 4096, data: new Uint8Array(10) });
    expect(() => digest.update({ offset: 4100, data: new Uint8Array(1) })).toThrow(RangeError);
    expect(() => new VolumeDigest(10).update({ offset: 5, data: new Uint8Array(6) })).toThrow(/outside the volume/);
  });
});
