import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { accessSync, constants, readdirSync } from "node:fs";
import { chmod, chown, copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { sleep } from "./net.js";
import { freePort } from "./ports.js";

const run = promisify(execFile);

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`, or throws after `timeoutMs`. */
async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** A PostgreSQL server of the test's own, in a temporary directory, on a free port. */
export interface PrivatePostgres {
  /** Superuser URL of its `postgres` database (trust auth). */
  readonly url: string;
  readonly port: number;
  /** The postmaster's process id (from its postmaster.pid), undefined when it is not running. */
  pid(): Promise<number | undefined>;
  /** Stops it at once (`pg_ctl stop -m immediate`, a crash as far as clients can tell) and starts it again. */
  restart(): Promise<void>;
  /** Stops it at once (`pg_ctl stop -m immediate`) and leaves it stopped, its directory kept. */
  kill(): Promise<void>;
  /** Makes a standby ({@link PrivatePostgresOptions.standbyOf}) a primary: `pg_ctl promote`, waiting until done. */
  promote(): Promise<void>;
  /** Stops it and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Where PostgreSQL's server binaries are (`initdb`, `pg_ctl`): `$CINDERBLOCK_PG_BIN`, else the
 * newest /usr/lib/postgresql/<version>/bin; undefined when there are none.
 */
export function findPostgresBin(): string | undefined {
  const candidates = process.env.CINDERBLOCK_PG_BIN ? [process.env.CINDERBLOCK_PG_BIN] : [];
  try {
    const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => join("/usr/lib/postgresql", v, "bin")));
  } catch {
    // No Debian-style install.
  }
  return candidates.find((dir) => executable(join(dir, "initdb")) && executable(join(dir, "pg_ctl")));
}

/**
 * Why a private PostgreSQL cannot be run here, or undefined when it can: server binaries (and each
 * of `tools` beside them, e.g. pg_basebackup), and, as root, a `postgres` OS user to run it as.
 */
export function privatePostgresUnavailable(tools: readonly string[] = []): string | undefined {
  const pgBin = findPostgresBin();
  if (!pgBin) return "no PostgreSQL server binaries (initdb, pg_ctl under /usr/lib/postgresql/<version>/bin)";
  const absent = tools.find((tool) => !executable(join(pgBin, tool)));
  if (absent) return `no ${absent} in ${pgBin}`;
  if (process.getuid?.() === 0) {
    try {
      execFileSync("id", ["-u", "postgres"], { stdio: "ignore" });
    } catch {
      return "running as root and there is no `postgres` OS user to run a private PostgreSQL as";
    }
  }
  return undefined;
}

/** Options for {@link startPrivatePostgres}. */
export interface PrivatePostgresOptions {
  /** Serve TLS with this certificate and key (PEM; copied into the server's directory). */
  ssl?: { certFile: string; keyFile: string };
  /**
   * Roles other than `postgres` must log in with a password (scram-sha-256), over TLS only when
   * `ssl` is given (`hostssl`); `postgres` keeps trust auth (the helper's {@link PrivatePostgres.url}).
   */
  passwordAuth?: boolean;
  /**
   * Durable as the machine's own server: fsync and full_page_writes on (the default is off, for
   * speed: tests crash the server process, never the machine).
   */
  durable?: boolean;
  /** More server settings (`-c name=value`; values without spaces), e.g. shared_preload_libraries. */
  settings?: Record<string, string>;
  /**
   * Start as a streaming standby of this server (which must run as the same OS user): its data is
   * `pg_basebackup -R` of it instead of a fresh initdb, so it follows it until {@link PrivatePostgres.promote}.
   */
  standbyOf?: PrivatePostgres;
}

/**
 * Starts a private PostgreSQL (initdb + pg_ctl from `binDir`) on a free port with trust auth
 * (optionally TLS and password auth, see {@link PrivatePostgresOptions}).
 * PostgreSQL refuses to run as root, so as root it runs as the `postgres` OS user (runuser).
 * NOTE: fsync is off unless `durable`: the test crashes the server process, never the machine, and
 * the OS keeps what was written; synchronous_commit stays on so a commit the client saw survives the crash.
 */
export async function startPrivatePostgres(
  binDir: string,
  options: PrivatePostgresOptions = {},
): Promise<PrivatePostgres> {
  const dir = await mkdtemp(join(tmpdir(), "cinderblock-pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  let uid = -1;
  let gid = -1;
  if (asRoot) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    uid = Number(stdout.trim());
    gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
    await chown(dir, uid, gid);
  }
  const pg = (tool: string, args: string[]) =>
    asRoot ? run("runuser", ["-u", "postgres", "--", join(binDir, tool), ...args]) : run(join(binDir, tool), args);
  const port = await freePort();
  if (options.standbyOf) {
    // -R writes standby.signal and primary_conninfo; the default pg_hba lets 127.0.0.1 replicate (trust).
    const from = ["-h", "127.0.0.1", "-p", String(options.standbyOf.port), "-U", "postgres"];
    await pg("pg_basebackup", ["-D", data, ...from, "-R", "-X", "stream", "-c", "fast", "-N"]);
  } else {
    await pg("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "-N", "-E", "UTF8", "--locale=C"]);
  }
  const settings = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-k ${dir}`,
    `-c fsync=${options.durable ? "on" : "off"}`,
    `-c full_page_writes=${options.durable ? "on" : "off"}`,
    "-c max_connections=200",
    "-c shared_buffers=64MB",
  ];
  for (const [name, value] of Object.entries(options.settings ?? {})) {
    if (/\s/.test(`${name}${value}`)) throw new Error(`settings.${name}: no spaces in a setting's name or value`);
    settings.push(`-c ${name}=${value}`);
  }
  if (options.ssl) {
    // PostgreSQL wants its key readable by its own user only.
    const cert = join(dir, "server.crt");
    const key = join(dir, "server.key");
    await copyFile(options.ssl.certFile, cert);
    await copyFile(options.ssl.keyFile, key);
    await chmod(key, 0o600);
    if (asRoot) for (const file of [cert, key]) await chown(file, uid, gid);
    settings.push("-c ssl=on", `-c ssl_cert_file=${cert}`, `-c ssl_key_file=${key}`);
  }
  if (options.passwordAuth) {
    const hba = join(dir, "pg_hba.conf");
    const others = options.ssl ? "hostssl" : "host";
    const lines = ["local all postgres trust"];
    for (const net of ["127.0.0.1/32", "::1/128"]) {
      lines.push(`host all postgres ${net} trust`, `${others} all all ${net} scram-sha-256`);
    }
    await writeFile(hba, `${lines.join("\n")}\n`);
    if (asRoot) await chown(hba, uid, gid);
    settings.push(`-c hba_file=${hba}`, "-c password_encryption=scram-sha-256");
  }
  const serverOptions = settings.join(" ");
  const start = async () => {
    await pg("pg_ctl", ["-D", data, "-l", join(dir, "server.log"), "-o", serverOptions, "-w", "-t", "60", "start"]);
    await waitForPort(port, 30_000);
  };
  const stopNow = () => pg("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async pid() {
      const first = (await readFile(join(data, "postmaster.pid"), "utf8").catch(() => "")).split("\n")[0];
      return first ? Number(first) : undefined;
    },
    async restart() {
      await stopNow();
      await start();
    },
    async kill() {
      await stopNow();
    },
    async promote() {
      await pg("pg_ctl", ["-D", data, "-w", "-t", "60", "promote"]);
    },
    async stop() {
      await stopNow().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A nats-server with JetStream of the test's own, on a free port with its own store directory. */
export interface PrivateNats {
  readonly url: string;
  readonly port: number;
  /** Its monitoring endpoint (`http://127.0.0.1:<port>`: /varz...), when started with {@link PrivateNatsOptions.monitor}. */
  readonly monitorUrl: string | undefined;
  /** The server's process id while it runs. */
  readonly pid: number | undefined;
  /** SIGKILLs the server and resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store (after {@link kill}). */
  start(): Promise<void>;
  /** Stops it and removes its store. */
  stop(): Promise<void>;
}

/** Where nats-server is: `$CINDERBLOCK_NATS_SERVER`, else /usr/sbin or /usr/local/bin; undefined when missing. */
export function findNatsServer(): string | undefined {
  return [
    process.env.CINDERBLOCK_NATS_SERVER,
    "/usr/sbin/nats-server",
    "/usr/local/bin/nats-server",
    "/usr/bin/nats-server",
  ]
    .filter((p): p is string => Boolean(p))
    .find(executable);
}

/** Options for {@link startPrivateNats}. */
export interface PrivateNatsOptions {
  /** A server configuration file (`-c`), e.g. deploy/nats/nats-server.conf; address and store stay the test's. */
  configFile?: string;
  /** Environment the server is started with, added to this process's (the variables the config file reads). */
  env?: Record<string, string>;
  /** Serve the HTTP monitoring endpoints (`-m`) on a free port of their own. */
  monitor?: boolean;
}

/** Starts `nats-server -js` on a free port with a temporary store directory. */
export async function startPrivateNats(binary: string, options: PrivateNatsOptions = {}): Promise<PrivateNats> {
  const dir = await mkdtemp(join(tmpdir(), "cinderblock-nats-"));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const config = options.configFile ? ["-c", options.configFile] : [];
  const monitorPort = options.monitor ? await freePort() : undefined;
  const monitor = monitorPort === undefined ? [] : ["-m", String(monitorPort)];
  const start = async () => {
    const next = spawn(binary, [...config, ...monitor, "-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir], {
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let output = "";
    next.stderr?.on("data", (chunk: Buffer) => {
      output = (output + chunk.toString("utf8")).slice(-4000);
    });
    child = next;
    exited = new Promise((resolve) => next.once("exit", () => resolve()));
    // A server that refuses its configuration exits at once: say why instead of waiting for the port.
    const failed = exited.then(() => {
      throw new Error(`nats-server exited at start:\n${output}`);
    });
    failed.catch(() => undefined);
    await Promise.race([waitForPort(port, 15_000), failed]);
  };
  const kill = async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    monitorUrl: monitorPort === undefined ? undefined : `http://127.0.0.1:${monitorPort}`,
    get pid() {
      return child?.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    kill,
    start,
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
