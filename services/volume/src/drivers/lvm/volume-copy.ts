import { DriverError, type VolumeChunk } from "../driver.js";
import type { Lvm } from "./lvm.js";

// A migration's reads and writes of an LV's bytes on the storage host, through the command
// runner: a few MiB per command, base64 on the way out (stdout is text), raw bytes on the way in
// (the command's stdin). Zeros never travel: the reader finds all-zero blocks where the LV is and
// leaves them out (the stream is sparse, see driver.ts); the writer zeroes the gaps of a thick LV
// there. The scripts run under POSIX sh with GNU coreutils or busybox (the test guest).

/** Data one command reads or writes at most (its base64 is a third larger). */
const BATCH_BYTES = 8 * 1024 * 1024;
/** Blocks the reader checks at once before looking at them one by one. */
const WINDOW_BLOCKS = 64;
/** Largest block size of a write's dd (and the smallest one O_DIRECT may use, see below). */
const MAX_BS = 1024 * 1024;
/** Alignment of every chunk a writer takes: a page (O_DIRECT needs 512; LVs are GiB multiples). */
const ALIGN = 4096;
/** What the writer's input starts with, so that a runner that lost the input is told apart. */
const INPUT_MAGIC = "CINDERBLOCK-DATA";
/** Operations (zero or write runs) in one write command at most (each is 4 arguments). */
const MAX_OPS = 256;

/**
 * Prints, for the blocks of `bs` bytes from `off` to `end` (multiples of bs, or `end` the LV's
 * end), `D <offset> <length>` and the base64 of each block that is not all zeros, until `max`
 * blocks are printed; then `E <offset>` where it stopped. A window of blocks is checked first
 * (`tr -d '\0' | wc -c` counts its non-zero bytes); only a window with data is looked at block
 * by block. A read that fails counts as data (`|| echo X`) and fails again, loudly, when the
 * block is printed (the driver checks each block's length).
 */
const READ_SCRIPT = `
dev=$1 off=$2 end=$3 bs=$4 max=$5 win=$6 n=0
nz() { { dd if="$dev" bs="$bs" skip=$(($1 / bs)) count="$2" iflag=direct 2>/dev/null || echo X; } | tr -d '\\000' | wc -c; }
while [ "$off" -lt "$end" ] && [ "$n" -lt "$max" ]; do
  blocks=$(( (end - off + bs - 1) / bs )); [ "$blocks" -gt "$win" ] && blocks=$win
  if [ $(nz "$off" "$blocks") -eq 0 ]; then off=$((off + blocks * bs)); continue; fi
  stop=$((off + blocks * bs)); [ "$stop" -gt "$end" ] && stop=$end
  while [ "$off" -lt "$stop" ] && [ "$n" -lt "$max" ]; do
    len=$bs; [ $((end - off)) -lt "$len" ] && len=$((end - off))
    if [ $(nz "$off" 1) -ne 0 ]; then
      echo "D $off $len"
      dd if="$dev" bs="$bs" skip=$((off / bs)) count=1 iflag=direct 2>/dev/null | base64
      n=$((n + 1))
    fi
    off=$((off + len))
  done
done
[ "$off" -gt "$end" ] && off=$end
echo "E $off"
`;

/**
 * Reads its input's magic, then for each `z|w BS SEEK COUNT`: zeroes COUNT blocks of BS bytes at
 * block SEEK, or writes them from the input. Checks every dd wrote all its blocks (a short input
 * writes fewer). O_DIRECT only with blocks of 1 MiB, which dd's buffer is aligned for; smaller
 * blocks go through the page cache and are synced.
 */
const WRITE_SCRIPT = `
dev=$1; shift
m=$(dd bs=${INPUT_MAGIC.length} count=1 iflag=fullblock 2>/dev/null)
[ "$m" = ${INPUT_MAGIC} ] || { echo "the data did not reach the storage host (no input)" >&2; exit 3; }
while [ $# -ge 4 ]; do
  op=$1 bs=$2 seek=$3 count=$4; shift 4
  if [ "$bs" -ge ${MAX_BS} ]; then flags=oflag=direct; else flags=conv=fsync; fi
  if [ "$op" = z ]; then r=$(dd if=/dev/zero of="$dev" bs="$bs" seek="$seek" count="$count" $flags conv=notrunc 2>&1)
  else r=$(dd of="$dev" bs="$bs" seek="$seek" count="$count" iflag=fullblock $flags conv=notrunc 2>&1); fi
  case $r in *"
$count+0 records out"*) ;; *) echo "$op at block $seek of $bs bytes: $r" >&2; exit 4 ;; esac
done
`;

/** A failed copy command as a DriverError that says what failed, without the script's text. */
function copyError(what: string, error: unknown): DriverError {
  const detail = error as { code?: unknown; stderr?: unknown; cause?: unknown; message?: unknown };
  // An LvmCommandError carries the exit status and stderr; one that did not complete, its cause.
  const why =
    typeof detail.stderr === "string"
      ? `exit ${String(detail.code)}: ${detail.stderr.trim() || "no error output"}`
      : detail.cause instanceof Error
        ? detail.cause.message
        : String(detail.message ?? error);
  // A command that did not complete (runner unreachable, timeout) may work next time; one that
  // failed on the storage host (an I/O error) is worth a retry too: the migration starts over.
  return new DriverError(`${what} failed: ${why}`, { retryable: true, cause: error });
}

/**
 * The non-zero blocks of `chunkBytes` of the device `device` (an LV, `sizeBytes` long), in order:
 * one command per batch of up to {@link BATCH_BYTES} of data (the whole LV when it is all zeros).
 */
export async function* readBlocks(
  lvm: Lvm,
  device: string,
  sizeBytes: number,
  chunkBytes: number,
  timeoutMs: number,
): AsyncIterable<VolumeChunk> {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0 || chunkBytes % ALIGN !== 0) {
    throw new DriverError(`chunkBytes must be a positive multiple of ${ALIGN}, got ${chunkBytes}`, {
      retryable: false,
      kind: "invalid",
    });
  }
  const maxBlocks = Math.max(1, Math.floor(BATCH_BYTES / chunkBytes));
  let offset = 0;
  while (offset < sizeBytes) {
    const argv = [
      "sh",
      "-c",
      READ_SCRIPT,
      "sh",
      device,
      String(offset),
      String(sizeBytes),
      String(chunkBytes),
      String(maxBlocks),
      String(WINDOW_BLOCKS),
    ];
    let stdout: string;
    try {
      stdout = await lvm.exec(argv, { timeoutMs });
    } catch (error) {
      throw copyError(`reading ${device} from byte ${offset}`, error);
    }
    const { chunks, next } = parseBlocks(stdout, device, offset, sizeBytes);
    yield* chunks;
    offset = next;
  }
}

/** The blocks and the end offset a {@link READ_SCRIPT} printed; anything malformed is a DriverError. */
function parseBlocks(
  stdout: string,
  device: string,
  from: number,
  sizeBytes: number,
): { chunks: VolumeChunk[]; next: number } {
  const chunks: VolumeChunk[] = [];
  let current: { offset: number; length: number; lines: string[] } | undefined;
  let next: number | undefined;
  const bad = (why: string) => new DriverError(`reading ${device} from byte ${from}: ${why}`, { retryable: true });
  const finish = () => {
    if (!current) return;
    const data = Buffer.from(current.lines.join(""), "base64");
    if (data.byteLength !== current.length) {
      throw bad(`the block at ${current.offset} came back with ${data.byteLength} of its ${current.length} bytes`);
    }
    chunks.push({ offset: current.offset, data });
    current = undefined;
  };
  let position = from;
  for (const line of stdout.split("\n")) {
    const header = /^([DE]) (\d+)(?: (\d+))?$/.exec(line);
    if (!header) {
      if (line === "") continue;
      if (!current) throw bad(`unexpected output ${JSON.stringify(line.slice(0, 80))}`);
      current.lines.push(line);
      continue;
    }
    finish();
    const offset = Number(header[2]);
    if (header[1] === "E") {
      next = offset;
      break;
    }
    const length = Number(header[3]);
    if (offset < position || length <= 0 || offset + length > sizeBytes) {
      throw bad(`a block of ${length} bytes at ${offset} is out of order or outside the volume`);
    }
    current = { offset, length, lines: [] };
    position = offset + length;
  }
  if (next === undefined) throw bad("the output ended before its end marker");
  if (next < position || next > sizeBytes || (next === from && chunks.length === 0)) {
    throw bad(`the end marker ${next} does not follow the blocks read`);
  }
  return { chunks, next };
}

interface WriteOp {
  op: "z" | "w";
  offset: number;
  length: number;
}

/** Largest power of two up to {@link MAX_BS} that divides both numbers. */
function blockSize(offset: number, length: number): number {
  let bs = MAX_BS;
  while (bs > 1 && (offset % bs !== 0 || length % bs !== 0)) bs /= 2;
  return bs;
}

/**
 * Writes `chunks` (increasing offsets, no overlap, multiples of 4 KiB) into the device
 * `device` (`sizeBytes` long): contiguous chunks become one run; with `zeroGaps` what no chunk
 * covers is zeroed on the storage host. One command per {@link BATCH_BYTES} of data (fewer
 * for zeros only: a gap is one dd, however long).
 */
export async function writeBlocks(
  lvm: Lvm,
  device: string,
  sizeBytes: number,
  chunks: AsyncIterable<VolumeChunk>,
  options: { zeroGaps: boolean; timeoutMs: number },
): Promise<void> {
  let ops: WriteOp[] = [];
  let data: Uint8Array[] = [];
  let dataBytes = 0;
  /** Where the last chunk (or zeroed gap) ended. */
  let position = 0;

  const flush = async () => {
    if (ops.length === 0) return;
    const argv = ["sh", "-c", WRITE_SCRIPT, "sh", device];
    for (const { op, offset, length } of ops) {
      const bs = blockSize(offset, length);
      argv.push(op, String(bs), String(offset / bs), String(length / bs));
    }
    const input = Buffer.concat([Buffer.from(INPUT_MAGIC), ...data]);
    const first = ops[0]?.offset ?? 0;
    ops = [];
    data = [];
    dataBytes = 0;
    try {
      await lvm.exec(argv, { timeoutMs: options.timeoutMs, input });
    } catch (error) {
      throw copyError(`writing ${device} from byte ${first}`, error);
    }
  };

  const zero = async (until: number) => {
    if (!options.zeroGaps || until <= position) return;
    ops.push({ op: "z", offset: position, length: until - position });
    if (ops.length >= MAX_OPS) await flush();
  };

  for await (const chunk of chunks) {
    const length = chunk.data.byteLength;
    const end = chunk.offset + length;
    if (
      !Number.isSafeInteger(chunk.offset) ||
      chunk.offset < position ||
      end > sizeBytes ||
      chunk.offset % ALIGN !== 0 ||
      length % ALIGN !== 0
    ) {
      throw new DriverError(
        `a chunk of ${length} bytes at offset ${chunk.offset} cannot be written into ${device} (${sizeBytes} bytes, ` +
          `next offset ${position}): chunks must come in order, without overlap, inside the volume, in multiples of ${ALIGN} bytes`,
        { retryable: false, kind: "invalid" },
      );
    }
    if (length === 0) continue;
    await zero(chunk.offset);
    const last = ops.at(-1);
    if (last?.op === "w" && last.offset + last.length === chunk.offset) last.length += length;
    else ops.push({ op: "w", offset: chunk.offset, length });
    data.push(chunk.data);
    dataBytes += length;
    position = end;
    if (dataBytes >= BATCH_BYTES || ops.length >= MAX_OPS) await flush();
  }
  await zero(sizeBytes);
  position = sizeBytes;
  await flush();
}
