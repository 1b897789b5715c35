import { execFile } from "node:child_process";
import { z } from "zod";
import { DriverError } from "../driver.js";
import { CephError, Errno, tolerate } from "./ceph-error.js";
import type { RbdChild, RbdClient, RbdImageInfo, RbdSnapshot } from "./rbd-client.js";

/** Output of a command that exited 0. */
export interface CommandOutput {
  stdout: string;
  stderr: string;
}

/**
 * Runs a program without a shell. Rejects, like `execFile`, with an error carrying `code` (the
 * exit status, or a string such as "ENOENT" when it could not start), `killed`/`signal` and
 * `stderr`. Injected so unit tests can fake the CLIs.
 */
export type RunCommand = (file: string, args: readonly string[], timeoutMs: number) => Promise<CommandOutput>;

/** How the CLIs reach the cluster. */
export interface CliClientOptions {
  pool: string;
  user: string;
  clusterName: string;
  confPath?: string;
  keyring?: string;
  /** The first call, which checks the cluster answers (a host must not hang at start-up). */
  connectTimeoutMs: number;
  /** Per call. */
  timeoutMs: number;
  /** For calls that move data: flatten, rollback, remove, resize. */
  longTimeoutMs: number;
  run?: RunCommand;
}

const MAX_OUTPUT = 64 * 1024 * 1024;

const runExecFile: RunCommand = (file, args, timeoutMs) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      // SIGKILL: a client stuck hunting for a monitor does not always honour SIGTERM.
      { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: MAX_OUTPUT, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (error) reject(Object.assign(error, { stdout, stderr }));
        else resolve({ stdout, stderr });
      },
    );
  });

const infoSchema = z.object({
  size: z.number(),
  parent: z
    .object({ pool: z.string(), pool_namespace: z.string().default(""), image: z.string(), snapshot: z.string() })
    .optional(),
});
const listSchema = z.array(z.object({ image: z.string(), size: z.number(), snapshot: z.string().optional() }));
// NOTE: in the rbd CLI's JSON, `protected` is the string "true"/"false".
const snapsSchema = z.array(
  z.object({ name: z.string(), size: z.number(), protected: z.union([z.string(), z.boolean()]).optional() }),
);
const childrenSchema = z.array(
  z.object({
    pool: z.string(),
    pool_namespace: z.string().default(""),
    image: z.string(),
    trash: z.boolean().default(false),
  }),
);

/**
 * The rbd driver's cluster calls through `rbd ... --format json` and `ceph ... --format json`,
 * one process per call: the fallback where the native addon cannot load. Exit statuses are
 * errnos (2 ENOENT, 16 EBUSY, 17 EEXIST...); stderr goes into the error message.
 */
export function createCliClient(options: CliClientOptions): RbdClient {
  const run = options.run ?? runExecFile;
  const { pool } = options;
  const common = ["--cluster", options.clusterName, "--id", options.user];
  if (options.confPath) common.push("--conf", options.confPath);
  if (options.keyring) common.push("--keyring", options.keyring);

  const spec = (image: string) => `${pool}/${image}`;
  const snapSpec = (image: string, snapshot: string) => `${pool}/${image}@${snapshot}`;

  async function call(file: "rbd" | "ceph", args: string[], timeoutMs = options.timeoutMs): Promise<string> {
    const command = `${file} ${args[0] === "snap" ? `snap ${args[1]}` : args[0]}`;
    try {
      const extra = file === "ceph" ? ["--connect-timeout", String(Math.ceil(timeoutMs / 1000))] : [];
      const { stdout } = await run(file, [...args, ...common, ...extra], timeoutMs);
      return stdout;
    } catch (error) {
      throw cliError(error, file, command, timeoutMs);
    }
  }

  async function json(file: "rbd" | "ceph", args: string[], timeoutMs?: number): Promise<unknown> {
    const stdout = await call(file, [...args, "--format", "json"], timeoutMs);
    try {
      return JSON.parse(stdout);
    } catch (cause) {
      throw new Error(`${file} ${args[0]}: output is not JSON: ${stdout.slice(0, 200)}`, { cause });
    }
  }

  const sizeArg = (size: number) => `${size}B`;

  return {
    kind: "cli",
    async connect() {
      await json("rbd", ["ls", pool], options.connectTimeoutMs);
    },
    async close() {
      // Nothing is held between calls.
    },
    async createImage(image, size) {
      await call("rbd", ["create", "--size", sizeArg(size), spec(image)]);
    },
    async removeImage(image) {
      await call("rbd", ["rm", "--no-progress", spec(image)], options.longTimeoutMs);
    },
    async imageInfo(image): Promise<RbdImageInfo> {
      const info = infoSchema.parse(await json("rbd", ["info", spec(image)]));
      return info.parent
        ? {
            size: info.size,
            parent: {
              pool: info.parent.pool,
              namespace: info.parent.pool_namespace,
              image: info.parent.image,
              snapshot: info.parent.snapshot,
            },
          }
        : { size: info.size };
    },
    async imageSizes(prefix) {
      const entries = listSchema.parse(await json("rbd", ["ls", "--long", pool]));
      return entries
        .filter((e) => e.snapshot === undefined && e.image.startsWith(prefix))
        .map((e) => ({ name: e.image, size: e.size }));
    },
    async listSnapshots(image): Promise<RbdSnapshot[]> {
      const snaps = snapsSchema.parse(await json("rbd", ["snap", "ls", spec(image)]));
      return snaps.map((s) => ({
        name: s.name,
        size: s.size,
        protected: s.protected === true || s.protected === "true",
      }));
    },
    async createSnapshot(image, snapshot) {
      await call("rbd", ["snap", "create", "--no-progress", snapSpec(image, snapshot)]);
    },
    async protectSnapshot(image, snapshot) {
      await call("rbd", ["snap", "protect", snapSpec(image, snapshot)]);
    },
    async createProtectedSnapshot(image, snapshot) {
      // Two processes, each opening the image: the CLI has no single command for both.
      await tolerate(call("rbd", ["snap", "create", "--no-progress", snapSpec(image, snapshot)]), Errno.EEXIST);
      await tolerate(call("rbd", ["snap", "protect", snapSpec(image, snapshot)]), Errno.EBUSY);
    },
    async unprotectSnapshot(image, snapshot) {
      await call("rbd", ["snap", "unprotect", snapSpec(image, snapshot)]);
    },
    async removeSnapshot(image, snapshot) {
      await call("rbd", ["snap", "rm", "--no-progress", snapSpec(image, snapshot)]);
    },
    async renameSnapshot(image, snapshot, newName) {
      await call("rbd", ["snap", "rename", snapSpec(image, snapshot), snapSpec(image, newName)]);
    },
    async rollbackSnapshot(image, snapshot) {
      await call("rbd", ["snap", "rollback", "--no-progress", snapSpec(image, snapshot)], options.longTimeoutMs);
    },
    async listChildren(image, snapshot): Promise<RbdChild[]> {
      // --all: also children in the trash, as librbd's rbd_list_children3 reports them.
      const children = childrenSchema.parse(await json("rbd", ["children", "--all", snapSpec(image, snapshot)]));
      return children.map((c) => ({ pool: c.pool, namespace: c.pool_namespace, image: c.image, trash: c.trash }));
    },
    async clone(parent, snapshot, child) {
      await call("rbd", ["clone", snapSpec(parent, snapshot), spec(child)]);
    },
    async flatten(target) {
      const where = [target.pool ?? pool, ...(target.namespace ? [target.namespace] : []), target.image].join("/");
      await call("rbd", ["flatten", "--no-progress", where], options.longTimeoutMs);
    },
    async resize(image, size) {
      await call("rbd", ["resize", "--no-progress", "--size", sizeArg(size), spec(image)], options.longTimeoutMs);
    },
    async df() {
      return json("ceph", ["df"]);
    },
    async poolQuota() {
      return json("ceph", ["osd", "pool", "get-quota", pool]);
    },
    async monDump() {
      return json("ceph", ["mon", "dump"]);
    },
  };
}

/** The exit status of rbd/ceph is the errno; a kill by our timeout is ETIMEDOUT. */
function cliError(error: unknown, file: string, command: string, timeoutMs: number): Error {
  const e = (typeof error === "object" && error !== null ? error : {}) as {
    code?: unknown;
    killed?: boolean;
    signal?: unknown;
    stderr?: unknown;
    path?: unknown;
  };
  const stderr = typeof e.stderr === "string" ? lastLines(e.stderr) : "";
  if (typeof e.code === "string") {
    // It never ran: a missing binary is a setup problem no retry cures.
    return new DriverError(`cannot run ${file} (${e.code}): is ceph-common installed?`, {
      retryable: e.code !== "ENOENT" && e.code !== "EACCES",
      cause: error,
    });
  }
  if (e.killed) {
    return new CephError(Errno.ETIMEDOUT, `${command} timed out after ${timeoutMs / 1000} s${suffix(stderr)}`, {
      cause: error,
    });
  }
  if (typeof e.signal === "string") return new Error(`${command} was killed by ${e.signal}${suffix(stderr)}`);
  if (typeof e.code === "number" && e.code > 0) {
    return new CephError(e.code, `${command} failed (exit status ${e.code})${suffix(stderr)}`, { cause: error });
  }
  return new Error(`${command} failed: ${String(error)}`, { cause: error });
}

function lastLines(text: string): string {
  // Progress and librados log lines come first; the reason is at the end. Kept short for status_reason.
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.includes("% complete"));
  return lines.slice(-3).join(" | ").slice(-500);
}

function suffix(stderr: string): string {
  return stderr ? `: ${stderr}` : "";
}
