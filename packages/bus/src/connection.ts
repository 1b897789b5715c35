import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { connect, type NatsConnection, nanos } from "@nats-io/transport-node";
import { createSubjects, type Subjects } from "./subjects.js";

/** Options for {@link connectBus}. */
export interface BusOptions {
  url: string;
  prefix: string;
  /** Connection name shown by the server (the service name). */
  name: string;
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
/** How long notifications stay replayable. */
const NOTIFICATION_MAX_AGE_MS = 7 * 24 * 3600_000;

/**
 * Connects to NATS and makes sure the streams exist: a work-queue stream for casts (file
 * storage, deduplicated by message id) and a limits stream capturing notifications.
 */
export async function connectBus(options: BusOptions): Promise<Bus> {
  // NOTE: noAsyncTraces: nats.js otherwise builds an Error (a stack capture) for every request and
  // JetStream publish, in case it times out; profiled, that was ~3% of the volume host's CPU under
  // load. A timeout still rejects with its message; only the caller's stack is left out.
  const nc = await connect({ servers: options.url, name: options.name, maxReconnectAttempts: -1, noAsyncTraces: true });
  const subjects = createSubjects(options.prefix);
  // NOTE: a failure after connecting (JetStream not enabled yet...) closes the connection, so a
  // caller that retries does not pile up connections.
  const jsm = await setUpStreams(nc, subjects).catch(async (error: unknown) => {
    await nc.close();
    throw error;
  });
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

async function setUpStreams(nc: NatsConnection, subjects: Subjects): Promise<JetStreamManager> {
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, {
    name: subjects.castsStream,
    // NOTE: only the cast subjects: a stream on all of v1.> would also swallow (and PubAck) the
    // compute agents' request/reply subjects v1.compute.*.
    subjects: [subjects.schedulerAll, subjects.volumeAllHosts],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
  });
  await ensureStream(jsm, {
    name: subjects.notificationsStream,
    subjects: [subjects.notificationsAll],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(NOTIFICATION_MAX_AGE_MS),
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
  });
  return jsm;
}

type StreamConfig = Parameters<JetStreamManager["streams"]["add"]>[0];

async function ensureStream(jsm: JetStreamManager, config: StreamConfig): Promise<void> {
  try {
    await jsm.streams.add(config);
  } catch (error) {
    // NOTE: another service created it first (same config) or it exists with an older config; update it.
    if (!String(error).includes("already in use")) throw error;
    await jsm.streams.update(config.name, config);
  }
}
