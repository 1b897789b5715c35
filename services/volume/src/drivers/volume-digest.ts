import { createHash } from "node:crypto";
import type { VolumeChunk } from "./driver.js";

/** Zeros hashed at once for a gap. */
const ZEROS = new Uint8Array(1024 * 1024);

/**
 * The SHA-256 of a volume's content from a (possibly sparse) readVolume stream: the chunks in
 * increasing offset order, every gap between them and the tail up to `sizeBytes` hashed as zeros
 * (the driver contract: a reader may leave out regions that read as zeros). A chunk that goes
 * back, overlaps the last one or ends past `sizeBytes` is refused with a RangeError.
 */
export class VolumeDigest {
  readonly sizeBytes: number;
  private readonly hash = createHash("sha256");
  private position = 0;

  constructor(sizeBytes: number) {
    this.sizeBytes = sizeBytes;
  }

  /** Adds one chunk (after the zeros of the gap before it, if any). */
  update(chunk: VolumeChunk): void {
    const end = chunk.offset + chunk.data.byteLength;
    if (!Number.isSafeInteger(chunk.offset) || chunk.offset < this.position || end > this.sizeBytes) {
      throw new RangeError(
        `a chunk of ${chunk.data.byteLength} bytes at offset ${chunk.offset} is out of order or outside the volume ` +
          `(${this.sizeBytes} bytes, next offset ${this.position})`,
      );
    }
    this.zeros(chunk.offset);
    this.hash.update(chunk.data);
    this.position = end;
  }

  /** The hex digest of the whole volume (its tail after the last chunk as zeros). */
  digest(): string {
    this.zeros(this.sizeBytes);
    return this.hash.digest("hex");
  }

  private zeros(until: number): void {
    while (this.position < until) {
      const n = Math.min(ZEROS.byteLength, until - this.position);
      this.hash.update(n === ZEROS.byteLength ? ZEROS : ZEROS.subarray(0, n));
      this.position += n;
    }
  }
}

/** SHA-256 (hex) of what a readVolume stream of a `sizeBytes` volume holds, gaps as zeros. */
export async function digestOfVolume(chunks: AsyncIterable<VolumeChunk>, sizeBytes: number): Promise<string> {
  const digest = new VolumeDigest(sizeBytes);
  for await (const chunk of chunks) digest.update(chunk);
  return digest.digest();
}

/** Whether every byte is zero (a chunk a sparse stream may leave out). */
export function isAllZero(data: Uint8Array): boolean {
  const words = data.byteLength >>> 3;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < words; i++) if (view.getBigUint64(i * 8) !== 0n) return false;
  for (let i = words * 8; i < data.byteLength; i++) if (data[i] !== 0) return false;
  return true;
}
