import { status as grpcStatus } from "@grpc/grpc-js";
import { type FlagValues, intFlag, parseCommandLine, stringFlag, UsageError } from "./args.js";
import { type ConnectionOptions, createConnection, isServiceError } from "./client.js";
import { CliFailure, HANDLERS } from "./commands.js";
import { EXIT, exitCodeForStatus } from "./exit-codes.js";
import { createOutput, type Stream } from "./output.js";

/** What one run of the CLI reads and writes (main.ts passes the process's). */
export interface CliOptions {
  /** The environment: CINDERBLOCK_API, CINDERBLOCK_PROJECT, CINDERBLOCK_USER, CINDERBLOCK_ROLES, CINDERBLOCK_ADMIN, USER. */
  env: Record<string, string | undefined>;
  stdout: Stream;
  stderr: Stream;
  /** Aborted on SIGINT/SIGTERM: streams and waits stop. */
  signal: AbortSignal;
}

const DEFAULT_API = "127.0.0.1:50051";
const DEFAULT_TIMEOUT_S = 30;
const TRUE = /^(1|true|yes)$/i;
const FALSE = /^(0|false|no|)$/i;

/** Who to act as and where, from flags first, then the environment. */
export function connectionOptions(flags: FlagValues, env: CliOptions["env"]): ConnectionOptions {
  const address = (stringFlag(flags, "api") || env.CINDERBLOCK_API || DEFAULT_API).replace(/^https?:\/\//, "");
  const projectId = stringFlag(flags, "project") || env.CINDERBLOCK_PROJECT || "";
  if (!projectId) throw new UsageError("--project is required (or set CINDERBLOCK_PROJECT)");
  const userId = stringFlag(flags, "user") || env.CINDERBLOCK_USER || env.USER || "";
  if (!userId) throw new UsageError("--user is required (or set CINDERBLOCK_USER)");
  const roles = (stringFlag(flags, "roles") || env.CINDERBLOCK_ROLES || "")
    .split(",")
    .map((r) => r.trim())
    .filter((r) => r !== "");
  const adminEnv = env.CINDERBLOCK_ADMIN ?? "";
  if (!TRUE.test(adminEnv) && !FALSE.test(adminEnv)) {
    throw new UsageError(`CINDERBLOCK_ADMIN: expected 1/true/yes or 0/false/no, got '${adminEnv}'`);
  }
  if ((flags.admin === true || TRUE.test(adminEnv)) && !roles.includes("admin")) roles.push("admin");
  const timeoutMs = (intFlag(flags, "timeout", 1, 86_400) ?? DEFAULT_TIMEOUT_S) * 1000;
  return { address, projectId, userId, roles, timeoutMs };
}

function statusName(code: number): string {
  return grpcStatus[code] ?? `status ${code}`;
}

/**
 * Runs one command line (argv without node and the script) and returns the exit code. Results go
 * to stdout, progress and errors to stderr; never throws.
 */
export async function run(argv: string[], options: CliOptions): Promise<number> {
  const { stdout, stderr } = options;
  let command: string | undefined;
  let out = createOutput(stdout, stderr, false);
  try {
    const parsed = parseCommandLine(argv);
    if (parsed.kind === "help") {
      stdout.write(parsed.text);
      return EXIT.OK;
    }
    command = parsed.command.name;
    out = createOutput(stdout, stderr, parsed.flags.json === true);
    const handler = HANDLERS[command];
    if (!handler) throw new Error(`no handler for ${command}`);
    const conn = createConnection(connectionOptions(parsed.flags, options.env));
    try {
      return await handler({ conn, args: parsed.args, flags: parsed.flags, out, signal: options.signal });
    } finally {
      conn.close();
    }
  } catch (error) {
    const about = (error instanceof UsageError ? error.command : undefined) ?? command;
    const prefix = about ? `cinderblock ${about}` : "cinderblock";
    if (error instanceof UsageError) {
      out.note(`${prefix}: ${error.message}`);
      out.note(about ? `Run 'cinderblock ${about} --help' for usage.` : "Run 'cinderblock --help' for usage.");
      return EXIT.USAGE;
    }
    if (error instanceof CliFailure) {
      out.note(`${prefix}: ${error.message}`);
      return error.exitCode;
    }
    if (isServiceError(error)) {
      const requestId = error.metadata?.get("x-request-id")[0];
      const suffix = requestId && error.code === grpcStatus.INTERNAL ? ` (request ${String(requestId)})` : "";
      out.note(`${prefix}: ${statusName(error.code)}: ${error.details || error.message}${suffix}`);
      return exitCodeForStatus(error.code);
    }
    out.note(`${prefix}: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT.ERROR;
  }
}
