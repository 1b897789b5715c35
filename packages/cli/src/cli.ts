import { status as grpcStatus } from "@grpc/grpc-js";
import { type FlagValues, intFlag, parseCommandLine, stringFlag, UsageError } from "./args.js";
import { type ConnectionOptions, createConnection, isServiceError } from "./client.js";
import { CliFailure, HANDLERS } from "./commands.js";
import {
  type Credentials,
  credentialsFrom,
  keystonePasswordLogin,
  readCaFile,
  type TlsOption,
  tlsFrom,
} from "./credentials.js";
import { EXIT, exitCodeForStatus } from "./exit-codes.js";
import { createOutput, type Stream } from "./output.js";

/** What one run of the CLI reads and writes (main.ts passes the process's). */
export interface CliOptions {
  /**
   * The environment: CINDERBLOCK_API, CINDERBLOCK_TOKEN, CINDERBLOCK_TOKEN_TYPE, CINDERBLOCK_CACERT,
   * CINDERBLOCK_TLS, the OS_* of an openrc file; for noauth CINDERBLOCK_PROJECT, CINDERBLOCK_USER,
   * CINDERBLOCK_ROLES, CINDERBLOCK_ADMIN, USER.
   */
  env: Record<string, string | undefined>;
  stdout: Stream;
  stderr: Stream;
  /** Aborted on SIGINT/SIGTERM: streams and waits stop. */
  signal: AbortSignal;
}

const DEFAULT_API = "127.0.0.1:50051";
const DEFAULT_TIMEOUT_S = 30;

/** Where the api is, who to act as and how to reach it, from flags first, then the environment. */
export interface Settings {
  address: string;
  credentials: Credentials;
  tls: TlsOption;
  timeoutMs: number;
}

/** Parses the connection's flags and environment (nothing is read or sent yet). */
export function connectionSettings(flags: FlagValues, env: CliOptions["env"]): Settings {
  const api = stringFlag(flags, "api") || env.CINDERBLOCK_API || DEFAULT_API;
  const address = api.replace(/^https?:\/\//, "");
  const timeoutMs = (intFlag(flags, "timeout", 1, 86_400) ?? DEFAULT_TIMEOUT_S) * 1000;
  return {
    address,
    credentials: credentialsFrom(flags, env),
    tls: tlsFrom(flags, env, /^https:\/\//.test(api)),
    timeoutMs,
  };
}

/** The connection's options: CA read, and a Keystone login done when the credentials need one. */
export async function connectionOptions(settings: Settings): Promise<ConnectionOptions> {
  const { credentials } = settings;
  const tls = settings.tls
    ? settings.tls.caFile
      ? { ca: await readCaFile(settings.tls.caFile, "--cacert") }
      : {}
    : undefined;
  const identity =
    credentials.kind === "keystone-password"
      ? {
          kind: "token" as const,
          token: await keystonePasswordLogin(credentials.login, settings.timeoutMs),
          tokenType: "keystone" as const,
        }
      : credentials;
  return { address: settings.address, identity, ...(tls ? { tls } : {}), timeoutMs: settings.timeoutMs };
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
    const conn = createConnection(await connectionOptions(connectionSettings(parsed.flags, options.env)));
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
