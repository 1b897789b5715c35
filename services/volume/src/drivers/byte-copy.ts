import { open } from "node:fs/promises";
import type { VolumeChunk } from "./driver.js";

/**
 * The bytes of the file or device at `path`, `sizeBytes` of them, in order, `chunkBytes` at a
 * time. Each chunk is read only when the consumer asks for the next one, into a buffer of its own
 * (the consumer may hold it while it is sent), so memory stays at what the consumer holds.
 */
export async function* readChunks(path: string, sizeBytes: number, chunkBytes: number): AsyncIterable<VolumeChunk> {
  const handle = await open(path, "r");
  try {
    let offset = 0;
    while (offset < sizeBytes) {
      const length = Math.min(chunkBytes, sizeBytes - offset);
      const data = Buffer.allocUnsafe(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await handle.read(data, filled, length - filled, offset + filled);
        if (bytesRead === 0) throw new Error(`${path} ended at ${offset + filled} bytes, ${sizeBytes} expected`);
        filled += bytesRead;
      }
      yield { offset, data };
      offset += length;
    }
  } finally {
    await handle.close();
  }
}

/**
 * Writes each chunk at its offset into the existing file or device at `path` (never past
 * `sizeBytes`), one at a time (the next is asked for once the last is written), then fsyncs.
 */
export async function writeChunks(path: string, sizeBytes: number, chunks: AsyncIterable<VolumeChunk>): Promise<void> {
  const handle = await open(path, "r+");
  try {
    for await (const chunk of chunks) {
      if (chunk.offset < 0 || chunk.offset + chunk.data.byteLength > sizeBytes) {
        throw new Error(
          `a chunk of ${chunk.data.byteLength} bytes at ${chunk.offset} is outside the volume (${sizeBytes} bytes)`,
        );
      }
      let written = 0;
      while (written < chunk.data.byteLength) {
        const { bytesWritten } = await handle.write(
          chunk.data,
          written,
          chunk.data.byteLength - written,
          chunk.offset + written,
        );
        written += bytesWritten;
      }
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}
