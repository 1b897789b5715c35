import { readFileSync } from "node:fs";
import {
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import {
  type Authenticator,
  type ConnectionOptions,
  connect,
  credsAuthenticator,
  type NatsConnection,
  nanos,
  nkeyAuthenticator,
  PermissionViolationError,
} from "@nats-io/transport-node";
import { createSubjects, type Subjects } from "./subjects.js";

/** How to authenticate to NATS: at most one way (NATS_USER/NATS_PASSWORD, NATS_TOKEN, an NKey seed, a .creds file). */
export type BusCredentials =
  | { user: string; password: string }
  | { token: string }
  | { nkeySeedFile: string }
  | { credsFile: string };

/** Options for {@link connectBus}. */
export interface BusOptions {
  /** One server or several (NATS_URL's comma list: the client fails over between them). */
  url: string | string[];
  prefix: string;
  /** Connection name shown by the server (the service name). */
  name: string;
  credentials?: BusCredentials | undefined;
  /** TLS files; when given (even empty) the connection must be TLS. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string } | undefined;
  /**
   * Who connects (`api`, `scheduler`, `volume-<host>`): replies then come on
   * `_INBOX_<prefix>.<role>.*`, which deploy/nats/nats-server.conf lets only that identity read
   * (with the default `_INBOX.*` any client allowed to read replies would see every service's,
   * JetStream's deliveries of casts included). Default: `_INBOX`.
   */
  role?: string;
  /**
   * The notifications stream's retention. Given (the api): the streams are created or updated to
   * it. Absent (the other services): a missing stream is created with the defaults, an existing
   * one is left as it is, so the api's settings are never undone.
   */
  retention?: NotificationRetention | undefined;
  /**
   * Replicas of the streams (default 1): 3 on a 3-node JetStream cluster. Consumers follow their
   * stream's count. Applied to existing streams only where `retention` is given (the api).
   */
  replicas?: number | undefined;
}

/** How long and how much the notifications stream keeps (the oldest go first). */
export interface NotificationRetention {
  maxAgeSeconds: number;
  maxBytes: number;
}

/** A NATS connection with JetStream handles and the subject names. */
export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  subjects: Subjects;
  /** Drains subscriptions and closes the connection. */
  close(): Promise<void>;
}

/** How long JetStream remembers message ids for deduplication. */
const DUPLICATE_WINDOW_MS = 10 * 60_000;
/** Retention of a notifications stream created without settings. */
const DEFAULT_RETENTION: NotificationRetention = { maxAgeSeconds: 7 * 24 * 3600, maxBytes: 1024 ** 3 };

/** Reads a credentials file, saying which one could not be read (never its content). */
function readSecretFile(what: string, path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new Error(`cannot read the NATS ${what} file ${path}: ${(error as Error).message}`);
  }
}

/** The nats.js options for the credentials (files are read again at each reconnect, so they may be rotated). */
function authOptions(credentials: BusCredentials | undefined): Partial<ConnectionOptions> {
  if (!credentials) return {};
  if ("user" in credentials) return { user: credentials.user, pass: credentials.password };
  if ("token" in credentials) return { token: credentials.token };
  let authenticator: Authenticator;
  if ("nkeySeedFile" in credentials) {
    const read = () =>
      new TextEncoder().encode(new TextDecoder().decode(readSecretFile("NKey seed", credentials.nkeySeedFile)).trim());
    read();
    authenticator = nkeyAuthenticator(read);
  } else {
    const read = () => readSecretFile("credentials", credentials.credsFile);
    read();
    authenticator = credsAuthenticator(read);
  }
  return { authenticator };
}

/**
 * Connects to NATS and makes sure the streams exist: a work-queue stream for casts (file
 * storage, deduplicated by message id) and a limits stream capturing notifications.
 */
export async function connectBus(options: BusOptions): Promise<Bus> {
  const subjects = createSubjects(options.prefix);
  // NOTE: noAsyncTraces: nats.js otherwise builds an Error (a stack capture) for every request and
  // JetStream publish, in case it times out; profiled, that was ~3% of the volume host's CPU under
  // load. A timeout still rejects with its message; only the caller's stack is left out.
  const nc = await connect({
    servers: options.url,
    name: options.name,
    maxReconnectAttempts: -1,
    // NOTE: a server whose machine is gone sends no reset: two unanswered pings (10 s apart, not
    // nats.js's 2 min) mark it dead, and the client moves to another server of the list.
    pingInterval: 10_000,
    maxPingOut: 2,
    noAsyncTraces: true,
    ...authOptions(options.credentials),
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.role ? { inboxPrefix: subjects.inboxPrefix(options.role) } : {}),
  });
  // NOTE: a failure after connecting (JetStream not enabled yet...) closes the connection, so a
  // caller that retries does not pile up connections.
  const jsm = await setUpStreams(nc, subjects, options.retention, options.replicas ?? 1).catch(
    async (error: unknown) => {
      await nc.close();
      throw error;
    },
  );
  return {
    nc,
    js: jetstream(nc),
    jsm,
    subjects,
    close: async () => {
      if (!nc.isClosed()) await nc.drain();
    },
  };
}

/**
 * Creates or updates the streams. NOTE: with deploy/nats/nats-server.conf only the api's identity
 * may; the server refuses the scheduler's and the volume hosts' attempts, and they then only check
 * that the streams exist (failing, so that the caller retries, until the api has made them).
 */
async function setUpStreams(
  nc: NatsConnection,
  subjects: Subjects,
  retention: NotificationRetention | undefined,
  replicas: number,
): Promise<JetStreamManager> {
  const jsm = await jetstreamManager(nc);
  try {
    await ensureStreams(jsm, subjects, retention, replicas);
  } catch (error) {
    if (!refusedByServer(error)) throw error;
    for (const name of [subjects.castsStream, subjects.notificationsStream]) {
      await jsm.streams.info(name).catch((cause: unknown) => {
        throw new Error(`stream ${name} is not there yet (this NATS user may not create it; the api does)`, {
          cause,
        });
      });
    }
  }
  return jsm;
}

/** Whether the server refused a request for lack of permission (nats.js wraps that in a RequestError). */
function refusedByServer(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) if (e instanceof PermissionViolationError) return true;
  return false;
}

async function ensureStreams(
  jsm: JetStreamManager,
  subjects: Subjects,
  retention: NotificationRetention | undefined,
  replicas: number,
): Promise<void> {
  const update = retention !== undefined;
  const kept = retention ?? DEFAULT_RETENTION;
  await ensureStream(jsm, update, {
    name: subjects.castsStream,
    // NOTE: only the cast subjects: a stream on all of v1.> would also swallow (and PubAck) the
    // compute agents' request/reply subjects v1.compute.*.
    subjects: [subjects.schedulerAll, subjects.volumeAllHosts],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
  });
  await ensureStream(jsm, update, {
    name: subjects.notificationsStream,
    subjects: [subjects.notificationsAll],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(kept.maxAgeSeconds * 1000),
    max_bytes: kept.maxBytes,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
  });
}

type StreamConfig = Parameters<JetStreamManager["streams"]["add"]>[0];

/** Creates a stream; one already there is updated to `config` only when `update`. */
async function ensureStream(jsm: JetStreamManager, update: boolean, config: StreamConfig): Promise<void> {
  try {
    await jsm.streams.add(config);
  } catch (error) {
    // NOTE: another service created it first (same config) or it exists with an older config.
    if (!String(error).includes("already in use")) throw error;
    if (update) await jsm.streams.update(config.name, config);
  }
}
