import { execFile } from "node:child_process";
import { connect } from "node:net";

/** What a command printed and how it ended. */
export interface CommandResult {
  /** Exit status; a command killed by a signal reports 128 + the signal number, as a shell does. */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one command given as an argument vector: `argv[0]` is the program, the rest its arguments,
 * each passed as one argument (never through a shell on the storage host).
 */
export interface CommandRunner {
  /**
   * Resolves with the result whenever the command ran, whatever its exit status. Rejects with a
   * {@link CommandRunnerError} when it could not be started or reached, or did not finish within
   * `timeoutMs` (it is killed then).
   */
  run(argv: readonly string[], options: RunOptions): Promise<CommandResult>;
}

/** Options of one {@link CommandRunner.run}. */
export interface RunOptions {
  timeoutMs: number;
  /**
   * Bytes the command reads as its stdin (binary-safe; e.g. a block of a volume for `dd`).
   * Absent: an empty stdin.
   */
  input?: Uint8Array;
}

/** The command did not run to completion: not found, unreachable runner, or killed at its timeout. */
export class CommandRunnerError extends Error {
  readonly timedOut: boolean;
  constructor(message: string, options: { timedOut: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = "CommandRunnerError";
    this.timedOut = options.timedOut;
  }
}

/** Which runner a driver uses: this machine, or the command agent of the LVM test guest. */
export type CommandRunnerSpec =
  | { kind: "local"; rootHelper?: readonly string[] }
  | { kind: "agent"; host: string; port: number };

/** Builds the runner a spec describes. */
export function createCommandRunner(spec: CommandRunnerSpec): CommandRunner {
  return spec.kind === "local" ? createLocalRunner({ rootHelper: spec.rootHelper }) : createAgentRunner(spec);
}

/** Output a command may print before it is cut off (an `lvs` of thousands of LVs stays far below). */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** Options of {@link createLocalRunner}. */
export interface LocalRunnerOptions {
  /** Prefix for every command, e.g. `["sudo", "-n"]` when the service does not run as root. */
  rootHelper?: readonly string[];
}

/** Runs commands on this machine with `execFile` (no shell), for a real storage host. */
export function createLocalRunner(options: LocalRunnerOptions = {}): CommandRunner {
  const prefix = options.rootHelper ?? [];
  return {
    run(argv, { timeoutMs, input }) {
      const [file, ...args] = [...prefix, ...argv];
      if (file === undefined) return Promise.reject(new TypeError("empty argv"));
      return new Promise((resolve, reject) => {
        const child = execFile(
          file,
          args,
          { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: MAX_OUTPUT_BYTES, encoding: "utf8" },
          (error, stdout, stderr) => {
            if (!error) return resolve({ code: 0, stdout, stderr });
            const { code, killed, signal } = error as NodeJS.ErrnoException & { killed?: boolean; signal?: string };
            if (typeof code === "number") return resolve({ code, stdout, stderr });
            if (killed && signal === "SIGKILL") {
              reject(
                new CommandRunnerError(`${file} did not finish within ${timeoutMs} ms and was killed`, {
                  timedOut: true,
                  cause: error,
                }),
              );
              return;
            }
            if (signal) return resolve({ code: 128 + signalNumber(signal), stdout, stderr });
            reject(
              new CommandRunnerError(`cannot run ${file}: ${code ?? error.message}`, { timedOut: false, cause: error }),
            );
          },
        );
        // NOTE: a command that exits without reading all of its input breaks the pipe; its exit
        // status says what happened, so the write error is not the failure.
        child.stdin?.on("error", () => {});
        child.stdin?.end(input);
      });
    },
  };
}

function signalNumber(signal: string): number {
  const numbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };
  return numbers[signal] ?? 0;
}

/** Options of {@link createAgentRunner}. */
export interface AgentRunnerOptions {
  host: string;
  port: number;
}

/**
 * Runs commands inside the LVM test guest (scripts/lvm-guest) through its command agent: one TCP
 * connection per command; the request is one line, the base64 of a script (with input: then a
 * space and the input's byte count), then the input's raw bytes, the command's stdin; the reply is
 * `RC <status> <stderr bytes>\n`, then stderr, then stdout until the agent closes the connection.
 * NOTE: the agent hands the script to the guest's `sh`, so each argument is single-quoted here and
 * reaches the program verbatim; the guest's `timeout` kills the command at its deadline.
 */
export function createAgentRunner(options: AgentRunnerOptions): CommandRunner {
  return {
    run(argv, { timeoutMs, input }) {
      if (argv.length === 0) return Promise.reject(new TypeError("empty argv"));
      const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
      const script = `exec timeout -s KILL ${seconds} ${argv.map(shellQuote).join(" ")}`;
      const started = performance.now();
      return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        const socket = connect(options.port, options.host, () => {
          const request = Buffer.from(script).toString("base64");
          if (!input) return void socket.end(`${request}\n`);
          socket.write(`${request} ${input.byteLength}\n`);
          socket.end(input);
        });
        const where = `the LVM guest agent at ${options.host}:${options.port}`;
        // The guest kills the command itself; this only guards against a guest that stopped answering.
        socket.setTimeout(timeoutMs + 30_000, () => {
          socket.destroy(new CommandRunnerError(`${where} did not answer within ${timeoutMs} ms`, { timedOut: true }));
        });
        socket.on("data", (chunk: Buffer) => chunks.push(chunk));
        socket.on("error", (error) => {
          reject(
            error instanceof CommandRunnerError
              ? error
              : new CommandRunnerError(`cannot reach ${where}: ${error.message}`, { timedOut: false, cause: error }),
          );
        });
        socket.on("close", (hadError) => {
          if (hadError) return;
          const reply = Buffer.concat(chunks);
          const newline = reply.indexOf(10);
          const header = /^RC (\d+) (\d+)$/.exec(reply.subarray(0, Math.max(newline, 0)).toString());
          if (!header) {
            reject(new CommandRunnerError(`bad reply from ${where}`, { timedOut: false }));
            return;
          }
          const code = Number(header[1]);
          const stderrEnd = newline + 1 + Number(header[2]);
          // 137 = killed by SIGKILL: the guest's timeout fired (or something else killed it).
          if (code === 137 && performance.now() - started >= timeoutMs) {
            reject(
              new CommandRunnerError(`${argv[0]} did not finish within ${timeoutMs} ms and was killed`, {
                timedOut: true,
              }),
            );
            return;
          }
          resolve({
            code,
            stderr: reply.subarray(newline + 1, stderrEnd).toString(),
            stdout: reply.subarray(stderrEnd).toString(),
          });
        });
      });
    },
  };
}

/** POSIX single-quoting: the shell passes the word on exactly as given. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
