import { accessSync, constants, mkdirSync } from "node:fs";
import { delimiter, join } from "node:path";
import { LaunchError } from "./errors.js";
import { acquireLockFile } from "./lock-file.js";
import { describeExit, type ExitInfo, type ManagedProcess, startProcess } from "./processes.js";
import { canConnect, getFreePort, type HostPort, waitForPort } from "./tcp.js";

/** The NATS server `npm start` uses when NATS_URL is not set. */
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

/** A NATS server (with JetStream, when we start it) the services can use. */
export interface NatsHandle {
  /** URL to hand to the services as NATS_URL. */
  url: string;
  /** True when we started nats-server ourselves. */
  embedded: boolean;
  /** For an embedded server: resolves if it exits, so the caller can treat that as fatal. */
  exited?: Promise<ExitInfo>;
  /** Stops what we started (nothing for an external server). Idempotent. */
  stop(): Promise<void>;
}

/** Options for {@link ensureNats}. */
export interface EnsureNatsOptions {
  /** Server to use (default {@link DEFAULT_NATS_URL}); only the first of a comma list is probed. */
  url?: string;
  /** JetStream store directory for an embedded server, e.g. `<repo>/data/nats`. */
  dataDir: string;
  /** How long a TCP connect may take before the server counts as unreachable (default 2 s). */
  connectTimeoutMs?: number;
  /** How long an embedded server may take to accept connections (default 15 s). */
  startTimeoutMs?: number;
  /** Progress messages (default console.log). */
  log?: (message: string) => void;
}

/** Thrown when NATS is unreachable and no nats-server binary can be found to start one. */
class NatsServerNotFoundError extends LaunchError {
  constructor(url: string) {
    super(
      [
        `No NATS server answers at ${url}, and nats-server (with JetStream) was not found on PATH to start one.`,
        "Install it, then run npm start again:",
        "  Debian/Ubuntu:  sudo apt-get install nats-server",
        "  macOS:          brew install nats-server",
        "  other:          https://docs.nats.io/running-a-nats-service/introduction/installation",
        "Or point NATS_URL at a running server started with -js (JetStream).",
      ].join("\n"),
    );
    this.name = "NatsServerNotFoundError";
  }
}

/** Reads host and port from the first server of a NATS URL list; the scheme is optional. */
function natsEndpoint(url: string): HostPort {
  const first = url.split(",")[0]?.trim() ?? "";
  const parsed = new URL(first.includes("://") ? first : `nats://${first}`);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1") || "127.0.0.1";
  return { host, port: parsed.port ? Number(parsed.port) : 4222 };
}

/**
 * Finds an executable by name on PATH. The sbin directories are tried after PATH because
 * Debian's nats-server package installs to /usr/sbin, which a non-root user's PATH lacks.
 */
function findExecutable(name: string, extraDirs = ["/usr/local/sbin", "/usr/sbin", "/sbin"]): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; keep looking.
    }
  }
  return undefined;
}

/** Keeps the last lines of a process's output, to show when it fails to start. */
function tail(limit: number) {
  const lines: string[] = [];
  return {
    push(line: string) {
      lines.push(line);
      if (lines.length > limit) lines.shift();
    },
    text: () => lines.map((l) => `  nats-server | ${l}`).join("\n"),
  };
}

/**
 * Makes sure the services have NATS: uses the server at `url` when it accepts TCP connections,
 * otherwise starts `nats-server -js -a 127.0.0.1 -p <free port> -sd <dataDir>` and waits until
 * it accepts connections. When nats-server is missing, throws a {@link LaunchError} that says how
 * to install it.
 */
export async function ensureNats(options: EnsureNatsOptions): Promise<NatsHandle> {
  const log = options.log ?? ((message: string) => console.log(message));
  const url = options.url ?? DEFAULT_NATS_URL;
  const endpoint = natsEndpoint(url);
  if (await canConnect(endpoint, options.connectTimeoutMs ?? 2000)) {
    return { url, embedded: false, stop: async () => {} };
  }

  const binary = findExecutable("nats-server");
  if (!binary) throw new NatsServerNotFoundError(url);

  const host = "127.0.0.1";
  const port = await getFreePort(host);
  mkdirSync(options.dataDir, { recursive: true });
  const lock = acquireLockFile(join(options.dataDir, "..", "nats.lock"), options.dataDir);
  log(`no NATS at ${endpoint.host}:${endpoint.port}: starting ${binary} on ${host}:${port} (${options.dataDir})`);

  // The startup banner is noise once the server works: keep it for a failure report and only
  // pass warnings and errors through while it runs.
  const recent = tail(40);
  let started = false;
  let server: ManagedProcess;
  try {
    server = startProcess({
      name: "nats",
      command: binary,
      args: ["-js", "-a", host, "-p", String(port), "-sd", options.dataDir],
      onLine: (line) => {
        recent.push(line);
        if (started && /\[(ERR|WRN|FTL)\]/.test(line)) console.error(`nats      | ${line}`);
      },
    });
  } catch (err) {
    lock.release();
    throw err;
  }

  const died = new AbortController();
  void server.exited.then(() => died.abort());
  const ready = await waitForPort({ host, port }, { timeoutMs: options.startTimeoutMs ?? 15_000, signal: died.signal });
  if (!ready) {
    const how = server.hasExited() ? describeExit(await server.exited) : "did not accept connections in time";
    await server.stop(Date.now() + 2000);
    lock.release();
    throw new LaunchError(`nats-server ${how}. Its last output:\n${recent.text()}`);
  }
  started = true;

  return {
    url: `nats://${host}:${port}`,
    embedded: true,
    exited: server.exited,
    stop: async () => {
      try {
        await server.stop(Date.now() + 10_000);
      } finally {
        lock.release();
      }
    },
  };
}
