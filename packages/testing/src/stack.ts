import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SnapshotsServiceClient, VolumesServiceClient } from "@cinderblock/proto";
import { credentials } from "@grpc/grpc-js";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createTestDatabase, TEST_NATS_URL, type TestDatabase, uniqueName } from "./database.js";
import { makeTestPki, type TestPki } from "./pki.js";

/** The repository root (services are started from their built dist/). */
export const REPO_ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));

/** One service process and the log lines it printed. */
export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first JSON log line whose msg equals `msg` (and whose fields equal `fields`). */
  waitFor(msg: string, timeoutMs?: number, fields?: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
  /** Kills the process with SIGKILL (a crash) and resolves once it is gone. */
  kill(): Promise<void>;
}

/**
 * Node flags the services run with (as in deploy/Dockerfile and npm start). NOTE: on a machine with
 * plenty of memory V8 sizes the young generation at up to 64 MiB per semi-space, so each service
 * sat at about 300 MB RSS idle; 8 MiB keeps it near 150 MB at no measurable cost in GC time.
 */
const SERVICE_NODE_FLAGS = ["--max-semi-space-size=8"];

/**
 * Starts one service (`services/<name>/dist/main.js`) as a process with `env` added to this one's;
 * for tests that need a service alone or with unusual settings ({@link startStack} starts all three).
 */
export function startService(name: ServiceName, env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, join(REPO_ROOT, "services", name, "dist", "main.js")], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  let buffer = "";
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    const parts = buffer.split("\n");
    buffer = parts.pop() ?? "";
    lines.push(...parts.filter((l) => l.trim() !== ""));
    for (const w of waiters.splice(0)) w();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const parsed = (line: string): Record<string, unknown> | undefined => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  };
  return {
    name,
    child,
    lines,
    waitFor(msg, timeoutMs = 30_000, fields = {}) {
      return new Promise((resolvePromise, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name}: no "${msg}" within ${timeoutMs} ms; output:\n${lines.join("\n")}`)),
          timeoutMs,
        );
        const check = () => {
          const hit = lines
            .map(parsed)
            .find((l) => l?.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v));
          if (hit) {
            clearTimeout(timer);
            resolvePromise(hit);
            return;
          }
          if (child.exitCode !== null) {
            clearTimeout(timer);
            reject(new Error(`${name} exited with ${child.exitCode}:\n${lines.join("\n")}`));
            return;
          }
          waiters.push(check);
        };
        check();
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

const READY: Record<ServiceName, string> = {
  api: "api listening",
  scheduler: "scheduler consuming",
  volume: "volume host consuming",
};

export type ServiceName = "api" | "scheduler" | "volume";

/**
 * The api's per-project rate limits turned off: for benchmarks, which measure the pipeline with one
 * project at up to 64 callers (their figures would otherwise be the limit's), and for the fuzz
 * suite, which sends thousands of calls in seconds to see what the api does with their contents.
 */
export const NO_RATE_LIMITS: Readonly<Record<string, string>> = {
  CINDERBLOCK_RATE_LIMIT_READ_PER_SECOND: "0",
  CINDERBLOCK_RATE_LIMIT_WRITE_PER_SECOND: "0",
  CINDERBLOCK_RATE_LIMIT_ADMIN_PER_SECOND: "0",
  CINDERBLOCK_RATE_LIMIT_STREAM_PER_SECOND: "0",
};

/** Options for {@link startStack}. */
export interface StackOptions {
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** The PostgreSQL server to make the stack's database on (default the test server, `CINDERBLOCK_TEST_DATABASE_URL`). */
  databaseServerUrl?: string;
  /** The NATS server (default {@link TEST_NATS_URL}). */
  natsUrl?: string;
  /**
   * The services' database settings for the fresh database (default `DATABASE_URL` = its superuser
   * URL): e.g. separate migration and service roles, TLS, URLs from files.
   */
  databaseEnv?: (database: TestDatabase) => Promise<Record<string, string>>;
  /** Extra environment of one service, over `env` (e.g. its own NATS_USER and NATS_PASSWORD). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** How the stack's own NATS connection (`nc`: test agents, cleanup) logs in, on a server that wants it. */
  natsUser?: { user: string; pass: string };
  /**
   * Volume hosts besides the first (`vol1`), each its own process with its own host name, backend,
   * zone and data directory; their environment is `env`, then `serviceEnv.volume`, then theirs.
   */
  volumeHosts?: readonly VolumeHostOptions[];
}

/** One more volume host of a stack (see {@link StackOptions.volumeHosts}). */
export interface VolumeHostOptions {
  /** CINDERBLOCK_HOST (a subject token), e.g. "vol2". */
  host: string;
  /** CINDERBLOCK_BACKEND_NAME (default "file"). */
  backend?: string;
  /** CINDERBLOCK_AVAILABILITY_ZONE (default the services' default, "nova"). */
  availabilityZone?: string;
  /**
   * CINDERBLOCK_CLUSTER: hosts given the same cluster are members of one active-active backend and
   * share one data directory (the first member's).
   */
  cluster?: string;
  /** More of its environment: CINDERBLOCK_VOLUME_DRIVER, CINDERBLOCK_DRIVER_OPTIONS... */
  env?: Record<string, string>;
}

/** A volume host of {@link StackOptions.volumeHosts}, running. */
export interface ExtraVolumeHost {
  host: string;
  /** Its cluster, when it is a member of one. */
  cluster?: string;
  /** `<host>@<backend>` (`<cluster>@<backend>` for a cluster member), as volumes record it. */
  backendHost: string;
  /** Its own data directory (CINDERBLOCK_FILE_DIR), removed by stop(). */
  dataDir: string;
  process: ServiceProcess;
}

/** The three services, their database, NATS prefix and volume data directory. */
export interface Stack {
  database: TestDatabase;
  prefix: string;
  dataDir: string;
  /** The certificates the api and the volume host use between them (the host is mTLS-only). */
  pki: TestPki;
  host: string;
  api: ServiceProcess;
  scheduler: ServiceProcess;
  volume: ServiceProcess;
  /** The api's address (its port stays the same across restarts). */
  address: string;
  nc: NatsConnection;
  volumes: VolumesServiceClient;
  snapshots: SnapshotsServiceClient;
  /** The `host:port` of a service's `/metrics` endpoint (from its "metrics listening" log line). */
  metricsAddress(name: ServiceName): Promise<string>;
  /** The volume hosts of {@link StackOptions.volumeHosts}, by host name. */
  volumeHosts: Map<string, ExtraVolumeHost>;
  /** Every data directory of the stack's backends (the first host's, then the others' and the clusters'). */
  dataDirs(): string[];
  /**
   * Starts one more api or scheduler process with the stack's settings (an api on a port of its
   * own) and waits until it is ready; {@link stop} stops it too.
   */
  startReplica(name: "api" | "scheduler"): Promise<ServiceProcess>;
  /**
   * Starts a service again (after a kill or stop), with the same settings, and waits until it is
   * ready; `volume` with the host name of one of {@link volumeHosts} restarts that one.
   */
  restart(name: ServiceName, volumeHost?: string): Promise<void>;
  stop(): Promise<Record<string, number | null>>;
}

/**
 * Starts api, scheduler and one volume host (plus {@link StackOptions.volumeHosts}) as separate
 * processes on a fresh database and NATS prefix.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const natsUrl = options.natsUrl ?? TEST_NATS_URL;
  // NOTE: no migrations here: each service applies them when it starts (under an advisory lock),
  // before it reports ready. This package must not depend on @cinderblock/db, whose tests use it.
  const database = await createTestDatabase(async () => {}, options.databaseServerUrl);
  const prefix = uniqueName("cbe2e");
  const dataDir = await mkdtemp(join(tmpdir(), "cinderblock-e2e-"));
  const pkiDir = await mkdtemp(join(tmpdir(), "cinderblock-pki-"));
  const pki = await makeTestPki(pkiDir);
  const host = "vol1";
  let databaseEnv: Record<string, string>;
  try {
    databaseEnv = options.databaseEnv ? await options.databaseEnv(database) : { DATABASE_URL: database.url };
  } catch (error) {
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
    await rm(pkiDir, { recursive: true, force: true });
    throw error;
  }
  const env = {
    ...pki.env,
    ...databaseEnv,
    NATS_URL: natsUrl,
    CINDERBLOCK_NATS_PREFIX: prefix,
    CINDERBLOCK_API_LISTEN: "127.0.0.1:0",
    CINDERBLOCK_HOST: host,
    CINDERBLOCK_FILE_DIR: dataDir,
    // Each service's /metrics on a free port (stacks of parallel runs must not collide).
    CINDERBLOCK_METRICS_LISTEN: "127.0.0.1:0",
    LOG_LEVEL: "info",
    ...options.env,
  };
  const started: ServiceProcess[] = [];
  const envOf = (name: ServiceName) => ({ ...env, ...options.serviceEnv?.[name] });
  const extraDirs: string[] = [];
  const extraEnv = new Map<string, Record<string, string>>();
  const removeDirs = async () => {
    for (const dir of [dataDir, pkiDir, ...extraDirs]) await rm(dir, { recursive: true, force: true });
  };
  const start = (name: ServiceName) => {
    const service = startService(name, envOf(name));
    started.push(service);
    return service;
  };
  let volume: ServiceProcess;
  let scheduler: ServiceProcess;
  let api: ServiceProcess;
  let address: string;
  const volumeHosts = new Map<string, ExtraVolumeHost>();
  try {
    volume = start("volume");
    for (const extra of options.volumeHosts ?? []) {
      if (extra.host === host || volumeHosts.has(extra.host)) throw new Error(`volume host ${extra.host} twice`);
      const member = extra.cluster && [...volumeHosts.values()].find((h) => h.cluster === extra.cluster);
      const dir = member ? member.dataDir : await mkdtemp(join(tmpdir(), `cinderblock-e2e-${extra.host}-`));
      if (!member) extraDirs.push(dir);
      const backend = extra.backend ?? "file";
      const hostEnv = {
        ...envOf("volume"),
        CINDERBLOCK_HOST: extra.host,
        CINDERBLOCK_BACKEND_NAME: backend,
        CINDERBLOCK_FILE_DIR: dir,
        ...(extra.cluster ? { CINDERBLOCK_CLUSTER: extra.cluster } : {}),
        ...(extra.availabilityZone ? { CINDERBLOCK_AVAILABILITY_ZONE: extra.availabilityZone } : {}),
        ...extra.env,
      };
      extraEnv.set(extra.host, hostEnv);
      const service = startService("volume", hostEnv);
      started.push(service);
      volumeHosts.set(extra.host, {
        host: extra.host,
        ...(extra.cluster ? { cluster: extra.cluster } : {}),
        backendHost: `${extra.cluster ?? extra.host}@${backend}`,
        dataDir: dir,
        process: service,
      });
    }
    scheduler = start("scheduler");
    // NOTE: all before waiting: with deploy/nats's permissions only the api creates the
    // streams, and the others wait for them.
    api = start("api");
    await volume.waitFor(READY.volume);
    for (const extra of volumeHosts.values()) await extra.process.waitFor(READY.volume);
    await scheduler.waitFor(READY.scheduler);
    const listening = await api.waitFor(READY.api);
    address = `127.0.0.1:${String(listening.port)}`;
  } catch (error) {
    // Leave nothing behind when the stack cannot start.
    for (const service of started) await service.kill();
    await database.drop();
    await removeDirs();
    throw error;
  }
  // Restarts keep the port, so clients made once keep working.
  env.CINDERBLOCK_API_LISTEN = address;
  // NOTE: reconnects for ever: a test may kill and restart its own NATS server under the stack.
  const nc = await connect({ servers: natsUrl.split(","), maxReconnectAttempts: -1, ...options.natsUser });
  const replicas: ServiceProcess[] = [];
  const stack: Stack = {
    database,
    prefix,
    dataDir,
    pki,
    host,
    api,
    scheduler,
    volume,
    volumeHosts,
    address,
    nc,
    volumes: new VolumesServiceClient(address, credentials.createInsecure()),
    snapshots: new SnapshotsServiceClient(address, credentials.createInsecure()),
    dataDirs: () => [dataDir, ...extraDirs],
    async startReplica(name) {
      const replica = startService(name, { ...envOf(name), CINDERBLOCK_API_LISTEN: "127.0.0.1:0" });
      replicas.push(replica);
      await replica.waitFor(READY[name]);
      return replica;
    },
    async metricsAddress(name) {
      return String((await stack[name].waitFor("metrics listening", 5000)).address);
    },
    async restart(name, volumeHost) {
      const extra = name === "volume" && volumeHost !== undefined ? volumeHosts.get(volumeHost) : undefined;
      if (volumeHost !== undefined && volumeHost !== host && !extra) throw new Error(`no volume host ${volumeHost}`);
      if (extra) {
        await extra.process.stop();
        extra.process = startService("volume", extraEnv.get(extra.host) ?? {});
        await extra.process.waitFor(READY.volume);
        return;
      }
      await stack[name].stop();
      stack[name] = startService(name, envOf(name));
      await stack[name].waitFor(READY[name]);
    },
    async stop() {
      stack.volumes.close();
      stack.snapshots.close();
      const codes: Record<string, number | null> = {
        api: await stack.api.stop(),
        scheduler: await stack.scheduler.stop(),
        volume: await stack.volume.stop(),
      };
      for (const extra of volumeHosts.values()) codes[`volume:${extra.host}`] = await extra.process.stop();
      for (const [i, replica] of replicas.entries()) codes[`${replica.name}:replica${i + 1}`] = await replica.stop();
      const jsm = await jetstreamManager(nc);
      for (const suffix of ["CASTS", "NOTIFICATIONS"]) {
        await jsm.streams.delete(`${prefix.toUpperCase()}_${suffix}`).catch(() => false);
      }
      await nc.close();
      await database.drop();
      await removeDirs();
      return codes;
    },
  };
  return stack;
}
