import { type FileHandle, open } from "node:fs/promises";

/** Options for {@link copySparse}. */
export interface CopySparseOptions {
  /**
   * Bytes read per step; a chunk of all zeros becomes a hole in the destination. Smaller chunks
   * keep more holes but cost more system calls. Defaults to 1 MiB.
   */
  chunkSize?: number;
}

const DEFAULT_CHUNK_SIZE = 1024 * 1024;

/**
 * Copy `src` to a new file `dst`, leaving every all-zero chunk of the source as a hole in the
 * destination, so a mostly empty volume image stays mostly unallocated.
 *
 * `dst` must not exist (it is opened with `wx`, so a copy never clobbers another file). The copy
 * has the source's length at the time the copy starts. It is not fsynced: the caller decides
 * when durability is needed. On failure a partly written `dst` may remain; the caller removes it.
 */
export async function copySparse(src: string, dst: string, options: CopySparseOptions = {}): Promise<void> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
    throw new RangeError(`chunkSize must be a positive integer, got ${chunkSize}`);
  }

  const source = await open(src, "r");
  try {
    const destination = await open(dst, "wx");
    try {
      // Copy exactly the length seen now; bytes appended during the copy are not part of it.
      const { size } = await source.stat();
      const buffer = Buffer.allocUnsafe(chunkSize);
      const zeros = Buffer.alloc(chunkSize);

      for (let position = 0; position < size; position += chunkSize) {
        const length = Math.min(chunkSize, size - position);
        const filled = await readFully(source, buffer, length, position);
        // A short read means the source shrank under us; the rest stays a hole, which reads as
        // zeros, the same as a truncated-then-extended file would.
        const chunk = buffer.subarray(0, filled);
        if (chunk.equals(zeros.subarray(0, filled))) continue;
        await writeFully(destination, chunk, position);
      }

      // Skipped chunks at the end would otherwise leave the file short; truncate extends it with
      // a hole to the source's length.
      await destination.truncate(size);
    } finally {
      await destination.close();
    }
  } finally {
    await source.close();
  }
}

/** Read until `length` bytes are in `buffer` or the file ends; returns the bytes read. */
async function readFully(handle: FileHandle, buffer: Buffer, length: number, position: number): Promise<number> {
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}

/** Write all of `chunk` at `position`; a single write may be partial. */
async function writeFully(handle: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, written, chunk.length - written, position + written);
    written += bytesWritten;
  }
}
