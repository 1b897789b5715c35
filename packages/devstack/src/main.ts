/**
 * `npm start`: runs the whole control plane on one machine. It finds or starts PostgreSQL and
 * NATS, runs the api, scheduler and volume services as child processes with prefixed output,
 * prints how to talk to the api, and stops everything on Ctrl-C.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { formatBanner } from "./banner.js";
import { LaunchError } from "./errors.js";
import { DEFAULT_NATS_URL, ensureNats, type NatsHandle } from "./nats.js";
import { internalTlsEnv, makeInternalPki } from "./pki.js";
import { describePortHolder } from "./port-holder.js";
import { DEFAULT_DATABASE_URL, ensurePostgres, type PostgresHandle } from "./postgres.js";
import {
  describeExit,
  type ExitInfo,
  type LineSink,
  type ManagedProcess,
  prefixedSink,
  startProcess,
  stopInOrder,
  stopTimeoutMs,
} from "./processes.js";
import { canConnect, formatHostPort, parseHostPort } from "./tcp.js";

/** dist/main.js (or src/main.ts) sits three levels below the repository root. */
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const dataDir = join(repoRoot, "data");

const DEFAULT_API_LISTEN = "127.0.0.1:50051";
/** Cinder's own port (8776), for the api's Cinder v3 REST listener. */
const DEFAULT_REST_LISTEN = "127.0.0.1:8776";
const API_READY_TIMEOUT_MS = 30_000;

type ServiceName = "api" | "scheduler" | "volume";
const serviceScript = (name: ServiceName) => join(repoRoot, "services", name, "dist", "main.js");

/** Everything started so far, so a shutdown at any point stops exactly that. */
const running: {
  postgres?: PostgresHandle;
  nats?: NatsHandle;
  services: Partial<Record<ServiceName, ManagedProcess>>;
} = { services: {} };

let stopping: Promise<never> | undefined;
/** Aborted when a shutdown begins, to cut waits (the api readiness poll) short. */
const stopRequested = new AbortController();
/** The startup step in flight; shutdown waits for it so that what it starts gets stopped too. */
let currentStep: Promise<unknown> = Promise.resolve();

/** Runs one startup step; once a shutdown has begun, startup never continues past it. */
async function step<T>(work: Promise<T>): Promise<T> {
  currentStep = work.catch(() => undefined);
  const result = await work;
  if (stopping) await new Promise<never>(() => {});
  return result;
}

/**
 * Stops the services (api first, so no new requests arrive while the workers drain), then the
 * NATS and PostgreSQL we started, and exits. Only the first call does anything.
 */
function shutdown(code: number, reason?: string): Promise<never> {
  stopping ??= (async () => {
    stopRequested.abort();
    let exitCode = code;
    if (reason) console.log(`\n${reason}: stopping Cinderblock...`);
    await currentStep;
    const { api, scheduler, volume } = running.services;
    const groups = [[api], [scheduler, volume]].map((g) => g.filter((p): p is ManagedProcess => p !== undefined));
    await stopInOrder(groups, stopTimeoutMs(process.env));
    for (const [what, stop] of [
      ["NATS", running.nats?.stop],
      ["PostgreSQL", running.postgres?.stop],
    ] as const) {
      try {
        await stop?.();
      } catch (err) {
        console.error(`stopping ${what} failed:`, err);
        exitCode = 1;
      }
    }
    process.exit(exitCode);
  })();
  return stopping;
}

/** Treats an exit we did not ask for as fatal: report it and stop everything else. */
function watchUnexpectedExit(name: string, exited: Promise<ExitInfo> | undefined): void {
  void exited?.then((info) => {
    if (stopping) return;
    console.error(`\n${name} ${describeExit(info)} unexpectedly; stopping the rest`);
    void shutdown(1);
  });
}

function startService(name: ServiceName, env: NodeJS.ProcessEnv, onLine?: LineSink): void {
  // NOTE: a small young generation, as in packages/testing and deploy/Dockerfile (about half the RSS).
  const service = startProcess({
    name,
    command: process.execPath,
    args: ["--max-semi-space-size=8", serviceScript(name)],
    env,
    cwd: repoRoot,
    onLine,
  });
  running.services[name] = service;
  watchUnexpectedExit(name, service.exited);
}

async function main(): Promise<void> {
  // Installed first: Ctrl-C while PGlite initialises must still stop what was started.
  process.on("SIGINT", () => void shutdown(0, "SIGINT"));
  process.on("SIGTERM", () => void shutdown(0, "SIGTERM"));
  // The terminal closed. The services run in sessions of their own (see startProcess), so nothing
  // else tells them: without this the launcher died and left them running.
  process.on("SIGHUP", () => void shutdown(0, "SIGHUP"));
  // With `npm start | tee log`, Ctrl-C kills the reader first; an unhandled EPIPE would then
  // crash the launcher halfway through shutdown and leave PGlite unflushed.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});

  const missing = (["api", "scheduler", "volume"] as const).map(serviceScript).filter((f) => !existsSync(f));
  if (missing.length > 0) {
    console.error(
      `not built: ${missing.map((f) => relative(repoRoot, f)).join(", ")}\n` +
        "run `npm run build` first (`npm start` builds before launching)",
    );
    process.exit(1);
  }

  try {
    const apiListen = process.env.CINDERBLOCK_API_LISTEN ?? DEFAULT_API_LISTEN;
    const apiEndpoint = (() => {
      try {
        return parseHostPort(apiListen);
      } catch (err) {
        throw new LaunchError(`CINDERBLOCK_API_LISTEN: ${(err as Error).message}`);
      }
    })();
    const apiAddress = formatHostPort(apiEndpoint);

    running.postgres = await step(
      ensurePostgres({ url: process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL, pgliteDir: join(dataDir, "pglite") }),
    );
    running.nats = await step(
      ensureNats({ url: process.env.NATS_URL ?? DEFAULT_NATS_URL, dataDir: join(dataDir, "nats") }),
    );
    watchUnexpectedExit("nats-server", running.nats.exited);

    // Otherwise the readiness probe below would find the other listener and report success.
    if (await step(canConnect(apiEndpoint, 1000))) {
      throw new LaunchError(await step(describePortHolder(apiEndpoint)));
    }

    // The services own their schema (migrations run at startup, serialised by an advisory lock),
    // so all the launcher passes on is where things are. CINDERBLOCK_DB_POOL_MAX is left alone
    // even on PGlite: the session arbiter in pglite-server.ts makes a pool of any size safe.
    // The volume host's internal service is mTLS-only: a fresh CA and certificates for the api
    // and the host at each start (the public port stays plaintext unless CINDERBLOCK_API_TLS_* say).
    const pki = await step(
      makeInternalPki(join(dataDir, "pki")).catch((err: unknown) => {
        throw new LaunchError(`cannot make the internal TLS certificates: ${(err as Error).message}`);
      }),
    );
    const env: NodeJS.ProcessEnv = {
      ...internalTlsEnv(pki),
      ...process.env,
      DATABASE_URL: running.postgres.url,
      NATS_URL: running.nats.url,
    };
    // Absolute, so that it means the same to the launcher (mkdir) and to the volume service.
    const fileDir = resolve(repoRoot, process.env.CINDERBLOCK_FILE_DIR ?? join(dataDir, "volumes"));
    mkdirSync(fileDir, { recursive: true });

    // Workers first, so the api never accepts a request that nothing could carry out.
    startService("volume", {
      ...env,
      CINDERBLOCK_HOST: process.env.CINDERBLOCK_HOST ?? "vol1",
      CINDERBLOCK_FILE_DIR: fileDir,
    });
    startService("scheduler", env);
    // NOTE: the api binds its port (health NOT_SERVING) before PostgreSQL and NATS answer; it logs
    // "api listening" once it serves, so the banner waits for that line, not just the port.
    let serving: () => void = () => {};
    const apiServing = new Promise<boolean>((resolve) => {
      serving = () => resolve(true);
    });
    const apiSink = prefixedSink("api");
    // The Cinder v3 REST listener is on in development (README, Cinder API compatibility).
    const restListen = process.env.CINDERBLOCK_REST_LISTEN ?? DEFAULT_REST_LISTEN;
    let restAddress: string | undefined;
    startService(
      "api",
      { ...env, CINDERBLOCK_API_LISTEN: apiListen, CINDERBLOCK_REST_LISTEN: restListen },
      (line, stream) => {
        apiSink(line, stream);
        if (line.includes('"msg":"rest listening"')) restAddress = restAddressOf(line);
        if (line.includes('"msg":"api listening"')) serving();
      },
    );

    const ready = await step(
      Promise.race([
        apiServing,
        new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), API_READY_TIMEOUT_MS);
          stopRequested.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            resolve(false);
          });
        }),
      ]),
    );
    if (!ready) {
      throw new LaunchError(`the api did not start serving on ${apiAddress} within ${API_READY_TIMEOUT_MS / 1000} s`);
    }
    console.log(
      formatBanner({
        apiAddress,
        databaseUrl: running.postgres.url,
        databaseEmbedded: running.postgres.embedded,
        natsUrl: running.nats.url,
        natsEmbedded: running.nats.embedded,
        authStrategy: process.env.CINDERBLOCK_AUTH_STRATEGY || "noauth",
        restAddress,
      }),
    );
  } catch (err) {
    if (stopping) return;
    console.error(err instanceof LaunchError ? err.message : err);
    await shutdown(1);
  }
}

/** The `address` of the api's "rest listening" log line. */
function restAddressOf(line: string): string | undefined {
  try {
    const address = (JSON.parse(line) as { address?: unknown }).address;
    return typeof address === "string" ? address : undefined;
  } catch {
    return undefined;
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
