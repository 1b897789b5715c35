import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { styleText } from "node:util";

/** How a child process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. ENOENT). */
  error?: Error;
}

/** A child process we started and are responsible for stopping. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number | undefined;
  /** Resolves once the process has exited and its output has been forwarded. */
  readonly exited: Promise<ExitInfo>;
  hasExited(): boolean;
  /**
   * Sends SIGTERM and waits until `deadline` (epoch ms, default now + 10 s); then SIGKILLs the
   * whole process group, so helpers the process spawned do not outlive it. Idempotent.
   */
  stop(deadline?: number): Promise<ExitInfo>;
}

/** Where a line of child output goes; `stream` says which of the child's pipes it came from. */
export type LineSink = (line: string, stream: "stdout" | "stderr") => void;

/** Options for {@link startProcess}. */
export interface StartProcessOptions {
  /** Label used in prefixes and messages. */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Receives every output line; the default prints it prefixed with the name. */
  onLine?: LineSink;
}

const COLORS = ["cyan", "magenta", "yellow", "green", "blue"] as const;
let nextColor = 0;
const PREFIX_WIDTH = 10;

/**
 * Returns a sink that prints each line as `name | line` on the matching stream of this process.
 * The line itself is untouched (services log pino JSON, which must stay parseable after the
 * prefix is cut off). The name is coloured only where the stream is a colour terminal.
 */
export function prefixedSink(name: string): LineSink {
  const color = COLORS[nextColor++ % COLORS.length] ?? "cyan";
  const label = `${name.padEnd(PREFIX_WIDTH)}|`;
  const out = `${styleText(color, label, { stream: process.stdout })} `;
  const err = `${styleText(color, label, { stream: process.stderr })} `;
  return (line, stream) => {
    if (stream === "stdout") process.stdout.write(`${out}${line}\n`);
    else process.stderr.write(`${err}${line}\n`);
  };
}

/** Describes an exit for humans: "exited with code 1", "was killed by SIGKILL", ... */
export function describeExit(info: ExitInfo): string {
  if (info.error) return `could not be started: ${info.error.message}`;
  if (info.signal) return `was killed by ${info.signal}`;
  return `exited with code ${info.code ?? "unknown"}`;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Last resort when the launcher exits without having stopped its children (an uncaught error):
 * children run in their own process groups, so nothing else would kill them.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) killGroup(child, "SIGKILL");
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

function forwardLines(stream: Readable | null, kind: "stdout" | "stderr", sink: LineSink): Promise<void> {
  if (!stream) return Promise.resolve();
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  lines.on("line", (line) => sink(line, kind));
  return once(lines, "close").then(() => undefined);
}

/**
 * Spawns a long-running child with piped output forwarded line by line. The child gets its own
 * process group (`detached`) so that Ctrl-C in the terminal reaches only the launcher, which then
 * stops the children in a chosen order instead of all of them at once.
 */
export function startProcess(options: StartProcessOptions): ManagedProcess {
  installExitHook();
  const sink = options.onLine ?? prefixedSink(options.name);
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  live.add(child);
  let done = false;
  const outputDone = Promise.all([
    forwardLines(child.stdout, "stdout", sink),
    forwardLines(child.stderr, "stderr", sink),
  ]);

  const exited = new Promise<ExitInfo>((resolve) => {
    const finish = async (info: ExitInfo) => {
      if (done) return;
      done = true;
      live.delete(child);
      // Let the last lines through before anyone reports the exit, but don't wait on pipes a
      // grandchild may still hold open.
      await Promise.race([outputDone, sleep(500)]);
      resolve(info);
    };
    child.once("exit", (code, signal) => void finish({ code, signal }));
    child.once("error", (error) => void finish({ code: null, signal: null, error }));
  });

  let stopping: Promise<ExitInfo> | undefined;
  return {
    name: options.name,
    pid: child.pid,
    exited,
    hasExited: () => done,
    stop(deadline = Date.now() + 10_000) {
      stopping ??= (async () => {
        if (done) return exited;
        child.kill("SIGTERM");
        const cancel = new AbortController();
        const timer = sleep(Math.max(0, deadline - Date.now()), "timeout" as const, { signal: cancel.signal }).catch(
          () => "cancelled" as const,
        );
        const first = await Promise.race([exited, timer]);
        cancel.abort();
        if (first === "timeout") {
          console.error(`${options.name} did not exit in time: sending SIGKILL`);
          killGroup(child, "SIGKILL");
        }
        return exited;
      })();
      return stopping;
    },
  };
}

/**
 * Stops processes group by group (each group concurrently, groups in order) under one shared
 * deadline, with at least 1 s for each group; whatever is still running then is SIGKILLed.
 */
export async function stopInOrder(groups: ManagedProcess[][], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const group of groups) {
    // A slow first group must not leave the next one no time at all to shut down cleanly.
    const groupDeadline = Math.max(deadline, Date.now() + 1000);
    await Promise.all(group.map((p) => p.stop(groupDeadline)));
  }
}

/**
 * How long the launcher waits for the services to stop before it SIGKILLs them: their drain
 * (`CINDERBLOCK_SHUTDOWN_GRACE`, default 20 s) plus the 5 s they may take to close connections
 * and a margin, as an orchestrator is told to allow. Shorter, and a drain that uses its grace
 * period (a slow cast, a call in flight) is cut off by SIGKILL.
 */
export function stopTimeoutMs(env: NodeJS.ProcessEnv): number {
  const grace = Number(env.CINDERBLOCK_SHUTDOWN_GRACE ?? "20");
  return ((Number.isFinite(grace) && grace >= 1 ? grace : 20) + 10) * 1000;
}
