import { DriverError } from "../driver.js";
import { type CommandRunner, CommandRunnerError } from "./command-runner.js";

// The LVM2 command layer under the driver (os-brick's local_dev/lvm.py): argument vectors, the
// JSON reports of `lvs`/`vgs`, and the failures worth telling apart.

export const GIB = 1024 ** 3;

/**
 * A volume group or logical volume name as LVM accepts it: letters, digits and `+_.-`, not starting
 * with `-` (it would read as an option), at most 127 characters. No `/`, so it cannot reach
 * another VG or a device path.
 */
const LVM_NAME = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$/;

/** Parts LVM keeps for its own hidden sub-LVs. */
const RESERVED_PARTS = [
  "_cdata",
  "_cmeta",
  "_corig",
  "_mimage",
  "_mlog",
  "_pmspare",
  "_rimage",
  "_rmeta",
  "_tdata",
  "_tmeta",
  "_vorigin",
  "_vdata",
];

/** Whether `name` is a name LVM accepts for a volume group. */
export function isVgName(name: unknown): name is string {
  return typeof name === "string" && LVM_NAME.test(name) && name !== "." && name !== "..";
}

/** Whether `name` is a name LVM accepts for a logical volume. */
export function isLvName(name: unknown): name is string {
  return (
    isVgName(name) &&
    !name.startsWith("snapshot") &&
    !name.startsWith("pvmove") &&
    !RESERVED_PARTS.some((part) => name.includes(part))
  );
}

/** One logical volume, from `lvs -a`. */
export interface LogicalVolume {
  name: string;
  /** `lv_attr`, e.g. `Vwi-a-tz-k`: [0] type (o origin, s/S snapshot/merging, t thin pool, V thin volume, O merging origin). */
  attr: string;
  sizeBytes: number;
  /** For a thick snapshot, the size of its origin; otherwise its own size. */
  originSizeBytes: number;
  /** The LV this one is a snapshot of ("" for none; a thin LV keeps it until the origin is removed). */
  origin: string;
  /** The thin pool of a thin LV. */
  pool: string;
  /** For a thin pool, how full its data space is (0-100). */
  dataPercent: number;
  tags: string[];
  active: boolean;
  /** Held open by someone (mounted, attached, a process reading it). */
  open: boolean;
  /** LVM's internal sub-LVs (`[pool_tdata]`) and snapshots being merged are hidden. */
  hidden: boolean;
}

/** One volume group, from `vgs`. */
interface VolumeGroup {
  name: string;
  sizeBytes: number;
  freeBytes: number;
  extentBytes: number;
}

/** A failed LVM command: the message keeps the command line and what it wrote to stderr. */
class LvmCommandError extends DriverError {
  readonly argv: readonly string[];
  readonly code: number;
  readonly stderr: string;
  constructor(argv: readonly string[], result: { code: number; stderr: string }, retryable = true) {
    const detail = meaningfulLines(result.stderr).join("; ") || "no error output";
    super(`${argv.join(" ")} failed (exit ${result.code}): ${detail}`, { retryable });
    this.name = "LvmCommandError";
    this.argv = argv;
    this.code = result.code;
    this.stderr = result.stderr;
  }
}

/** stderr without LVM's advisory noise, so a reason shows what went wrong. */
function meaningfulLines(stderr: string): string[] {
  return stderr
    .split("\n")
    .map((line) => line.trim())
    .filter(
      (line) =>
        line !== "" && !/^WARNING: (You have not turned on protection|Set activation\/thin_pool_autoextend)/.test(line),
    );
}

/** Options of {@link createLvm}. */
export interface LvmOptions {
  runner: CommandRunner;
  vg: string;
  /** Deadline of an ordinary command (lvs, lvcreate, lvremove...). */
  timeoutMs: number;
}

/** LVM commands on one volume group. */
export interface Lvm {
  readonly vg: string;
  /**
   * Runs an LVM (or other) command. Rejects with {@link LvmCommandError} when it exits non-zero and
   * with a retryable DriverError when it cannot run or times out.
   */
  exec(argv: readonly string[], options?: { timeoutMs?: number; input?: Uint8Array }): Promise<string>;
  /** Every LV of the group, hidden ones included. */
  lvs(): Promise<LogicalVolume[]>;
  vgs(): Promise<VolumeGroup>;
  /** `vg/name`, the way commands name an LV. */
  path(lv: string): string;
  /** The device node of an active LV. */
  device(lv: string): string;
}

const LV_FIELDS = "lv_name,lv_attr,lv_size,origin,origin_size,pool_lv,data_percent,lv_tags,lv_active,lv_device_open";

/** Builds the command layer for one volume group. */
export function createLvm(options: LvmOptions): Lvm {
  const { runner, vg } = options;

  async function exec(argv: readonly string[], opts: { timeoutMs?: number; input?: Uint8Array } = {}): Promise<string> {
    const timeoutMs = opts.timeoutMs ?? options.timeoutMs;
    let result: Awaited<ReturnType<CommandRunner["run"]>>;
    try {
      result = await runner.run(argv, opts.input ? { timeoutMs, input: opts.input } : { timeoutMs });
    } catch (error) {
      const why = error instanceof CommandRunnerError || error instanceof Error ? error.message : String(error);
      throw new DriverError(`${argv.join(" ")} did not complete: ${why}`, { retryable: true, cause: error });
    }
    if (result.code !== 0) throw new LvmCommandError(argv, result);
    return result.stdout;
  }

  return {
    vg,
    exec,
    async lvs() {
      const out = await exec([
        "lvs",
        "-a",
        "--reportformat",
        "json",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        LV_FIELDS,
        vg,
      ]);
      return report(out, "lv").map((row) => {
        const raw = text(row.lv_name);
        const hidden = raw.startsWith("[") && raw.endsWith("]");
        const sizeBytes = bytes(row.lv_size);
        return {
          name: hidden ? raw.slice(1, -1) : raw,
          attr: text(row.lv_attr),
          sizeBytes,
          originSizeBytes: bytes(row.origin_size) || sizeBytes,
          origin: text(row.origin),
          pool: text(row.pool_lv),
          dataPercent: Number(text(row.data_percent)) || 0,
          tags: text(row.lv_tags)
            .split(",")
            .filter((tag) => tag !== ""),
          active: text(row.lv_active) === "active",
          open: text(row.lv_device_open) === "open",
          hidden,
        };
      });
    },
    async vgs() {
      const out = await exec([
        "vgs",
        "--reportformat",
        "json",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "vg_name,vg_size,vg_free,vg_extent_size",
        vg,
      ]);
      const row = report(out, "vg")[0];
      if (!row) throw new DriverError(`vgs printed no row for volume group ${vg}`, { retryable: true });
      return {
        name: text(row.vg_name),
        sizeBytes: bytes(row.vg_size),
        freeBytes: bytes(row.vg_free),
        extentBytes: bytes(row.vg_extent_size),
      };
    },
    path: (lv) => `${vg}/${lv}`,
    device: (lv) => `/dev/${vg}/${lv}`,
  };
}

/** The rows of one report (`lv` or `vg`) in the JSON that `--reportformat json` prints. */
function report(stdout: string, kind: "lv" | "vg"): Record<string, unknown>[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch (error) {
    throw new DriverError(`cannot parse the ${kind}s report: ${String(error)}`, { retryable: true, cause: error });
  }
  const reports = (parsed as { report?: Array<Record<string, unknown>> }).report ?? [];
  const rows = reports.flatMap((r) => (Array.isArray(r[kind]) ? (r[kind] as Record<string, unknown>[]) : []));
  return rows;
}

function text(value: unknown): string {
  return typeof value === "string" ? value.trim() : "";
}

/** A `--units b` figure ("1073741824", or "1073741824B" without --nosuffix). */
function bytes(value: unknown): number {
  const n = Number(text(value).replace(/B$/, ""));
  return Number.isFinite(n) ? n : 0;
}

/** What a failed command's stderr says, in the cases the driver treats specially. */
export type LvmFailure =
  | { kind: "exists" }
  | { kind: "lv-not-found" }
  | { kind: "vg-not-found" }
  | { kind: "no-space"; requiredExtents?: number }
  | { kind: "in-use" }
  | { kind: "other" };

/** Classifies a failed LVM command by the messages LVM 2.02/2.03 print. */
export function classify(error: unknown): LvmFailure {
  if (!(error instanceof LvmCommandError)) return { kind: "other" };
  const stderr = error.stderr;
  if (/Logical [Vv]olume "[^"]*" already exists/.test(stderr)) return { kind: "exists" };
  if (/Volume group "[^"]*" not found/.test(stderr)) return { kind: "vg-not-found" };
  if (/Failed to find logical volume|origin LV \S+ not found|Logical volume \S+ not found/.test(stderr))
    return { kind: "lv-not-found" };
  const space =
    /insufficient free space \(\d+ extents?\): (\d+) required|Insufficient free space: (\d+) extents? needed/.exec(
      stderr,
    );
  if (space) return { kind: "no-space", requiredExtents: Number(space[1] ?? space[2]) };
  if (/in use|contains a filesystem in use|is open|Can't remove open/.test(stderr)) return { kind: "in-use" };
  return { kind: "other" };
}

/** A size for people: GiB with at most two decimals, rounded the cautious way (`up` for needs). */
export function gib(bytesValue: number, round: "up" | "down"): string {
  const scaled = (bytesValue / GIB) * 100;
  // The epsilon keeps 4 GiB from showing as 4.01 through floating-point noise.
  const hundredths = round === "up" ? Math.ceil(scaled - 1e-9) : Math.floor(scaled + 1e-9);
  return `${Number((hundredths / 100).toFixed(2))} GiB`;
}
