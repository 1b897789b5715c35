// NOTE: first, so the libuv pool is sized before any other module can start it.
import "./threadpool.js";
import {
  connectBus,
  createNotifier,
  createOutboxAnnouncer,
  retryOnFailure,
  startConsumer,
  startOutboxRelay,
} from "@cinderblock/bus";
import { loadVolumeConfig, natsConnectionSettings, volumePeerTls, volumeServerTls } from "@cinderblock/config";
import { createDb, pingDatabase, reportService, runMigrations } from "@cinderblock/db";
import { addHealth, createPeerHostCalls, listen, serverTls, shutdown } from "@cinderblock/rpc";
import { startServiceRuntime } from "@cinderblock/telemetry";
import { instrumentDriver } from "./drivers/instrumented.js";
import { createDriver } from "./drivers/registry.js";
import { createHostServer } from "./host-server.js";
import { createVolumeManager } from "./manager.js";
import { startCapabilityReports } from "./reports.js";

/** Deliveries of one cast before the manager stops asking for retries and fails the resource. */
const MAX_DELIVER = 5;

async function main(): Promise<void> {
  const config = loadVolumeConfig(process.env);
  // The internal service is mTLS-only: no certificate, key or client CA, no start.
  const tls = volumeServerTls(config);
  const peerTls = volumePeerTls(config);
  const { logger, lifecycle } = await startServiceRuntime("volume", config);
  // The pool connects on first use; a driver with bad options fails here, before any waiting.
  const { db, close: closeDb } = createDb({
    url: config.DATABASE_URL,
    sslCaFile: config.DATABASE_SSL_CA_FILE,
    max: config.CINDERBLOCK_DB_POOL_MAX,
    prepare: config.CINDERBLOCK_DB_PREPARE,
    statementTimeoutMs: config.CINDERBLOCK_DB_STATEMENT_TIMEOUT_MS,
  });
  lifecycle.onClose("PostgreSQL pool", closeDb);
  const backend = config.CINDERBLOCK_BACKEND_NAME;
  // The name casts and rows address: the cluster's when this host is a member of one, so that any
  // member takes the work and a dead member's unacked casts go to the others (ack wait).
  const serving = config.CINDERBLOCK_CLUSTER ?? config.CINDERBLOCK_HOST;
  const member = config.CINDERBLOCK_HOST;
  const backendHost = `${serving}@${backend}`;
  const driver = instrumentDriver(createDriver(config), {
    driver: config.CINDERBLOCK_VOLUME_DRIVER,
    backend: backendHost,
  });
  const drivers = new Map([[backend, driver]]);

  // Aborted when the drain begins: a migration's open ReadVolume ends (its target retries).
  const migrationStop = new AbortController();
  // NOTE: the host server listens (health NOT_SERVING) before the driver is initialized; nobody
  // calls its VolumeHostService before the first heartbeat below publishes its address.
  const hostServer = createHostServer({
    db,
    hostName: serving,
    drivers,
    report: (err, info) => logger.error({ err, method: info.method, request_id: info.requestId }, "internal error"),
    allowedClients: tls.allowedClients,
    allowedPeers: config.CINDERBLOCK_VOLUME_TLS_ALLOWED_PEERS,
    stop: migrationStop.signal,
  });
  const health = addHealth(hostServer, ["cinderblock.internal.v1.VolumeHostService"]);
  lifecycle.reportHealthTo((serving) => health.setServing(serving));
  const credentials = serverTls({
    ...tls,
    onReload: () => logger.info({ cert_file: tls.certFile }, "tls certificate reloaded"),
    onError: (err) => logger.warn({ err }, "tls certificate files did not load; keeping the previous ones"),
  });
  const hostPort = await listen(hostServer, config.CINDERBLOCK_VOLUME_LISTEN, credentials);
  lifecycle.onDrain(async (deadline) => {
    migrationStop.abort();
    health.endWatches();
    await shutdown(hostServer, deadline - Date.now());
  });
  const listenHost = config.CINDERBLOCK_VOLUME_LISTEN.slice(0, config.CINDERBLOCK_VOLUME_LISTEN.lastIndexOf(":"));
  const grpcAddress = config.CINDERBLOCK_VOLUME_ADVERTISE || `${listenHost}:${hostPort}`;
  logger.info({ address: `${listenHost}:${hostPort}`, port: hostPort }, "grpc listening");

  // The DDL role migrates and grants DATABASE_URL's role the DML the service runs with.
  await lifecycle.retry("PostgreSQL", () =>
    runMigrations(config.DATABASE_MIGRATION_URL ?? config.DATABASE_URL, {
      serviceUrl: config.DATABASE_URL,
      sslCaFile: config.DATABASE_SSL_CA_FILE,
    }),
  );
  const bus = await lifecycle.retry("NATS", () =>
    connectBus({
      ...natsConnectionSettings(config),
      prefix: config.CINDERBLOCK_NATS_PREFIX,
      name: config.CINDERBLOCK_CLUSTER ? `cinderblock-volume-${serving}-${member}` : `cinderblock-volume-${member}`,
      // Replies come to the member's own inbox: each member is its own NATS user (deploy/nats).
      role: `volume-${member}`,
    }),
  );
  lifecycle.onClose("NATS", () => bus.close());
  await driver.initialize();
  lifecycle.onClose("driver", () => driver.close());

  // Heartbeat and capability report (Cinder's report_state + _report_driver_status).
  const report = async () => {
    const stats = await driver.getStats();
    await reportService(db, {
      host: backendHost,
      hostName: serving,
      backend,
      availabilityZone: config.CINDERBLOCK_AVAILABILITY_ZONE,
      // A backend whose driver can read and write its volumes' bytes takes part in host-assisted
      // migration (the scheduler migrates only between two such backends).
      capabilities: { ...stats, hostAssistedMigration: Boolean(driver.readVolume && driver.writeVolume) },
      grpcAddress,
    });
    return stats.backendState;
  };
  const first = await lifecycle.retry("PostgreSQL (first heartbeat)", report);
  if (first === "down") logger.warn({ host: backendHost }, "backend reports down; reporting again soon");
  // A backend that reports down reports again after 1 s (backing off to the interval), so the
  // scheduler, which holds new volumes until a backend is up, hears of it soon.
  const heartbeat = startCapabilityReports({
    report,
    first,
    intervalMs: config.CINDERBLOCK_REPORT_INTERVAL * 1000,
    onError: (err) => logger.warn({ err, host: backendHost }, "heartbeat failed"),
  });
  lifecycle.onDrain(async () => heartbeat.stop());

  // Operation outcomes go out through the transactional outbox (written with the outcome); this
  // host's relay publishes them as soon as the transaction commits.
  const relay = startOutboxRelay({
    db,
    js: bus.js,
    // NOTE: a volume host's NATS user may publish notifications only (deploy/nats): the casts the
    // api and the scheduler write are theirs to relay.
    subjects: [bus.subjects.notificationsAll],
    onError: (err) => logger.warn({ err }, "outbox relay pass failed; will retry"),
  });
  lifecycle.onClose("outbox relay", () => relay.stop());
  const peers = peerTls && createPeerHostCalls({ tls: peerTls });
  if (peers) lifecycle.onClose("peer host clients", async () => peers.close());
  const manager = createVolumeManager(
    {
      db,
      bus,
      notifier: createNotifier(bus),
      // publisher_id names the member that did the work (Cinder's `volume.<host>`).
      announcer: createOutboxAnnouncer(bus.subjects, member),
      onCommitted: () => relay.kick(),
      hostName: serving,
      memberName: member,
      drivers,
      peers,
      logger,
      maxSchedulingAttempts: config.CINDERBLOCK_SCHEDULER_MAX_ATTEMPTS,
    },
    bus.subjects,
  );
  const subjects = bus.subjects;
  const consumer = await lifecycle.retry("NATS consumer", () =>
    startConsumer({
      bus,
      // NOTE: the members of a cluster share this durable consumer: each cast goes to one of them.
      durable: `volume-${serving}`,
      filterSubject: subjects.volumeAll(serving),
      maxDeliver: MAX_DELIVER,
      ackWaitSeconds: config.CINDERBLOCK_CAST_ACK_WAIT,
      // NOTE: as many casts in flight as Cinder's volume manager has green threads (64): the work
      // is mostly waiting (fsync, the backend, PostgreSQL), and at 16 the host sat 40% idle while
      // 64 callers queued behind it. threadpool.ts gives the rbd driver as many libuv threads.
      concurrency: 64,
      async handle(msg) {
        const delivery = { finalAttempt: msg.info.deliveryCount >= MAX_DELIVER };
        // NOTE: a cast that does not decode, or an unknown subject, terminates; the manager decides
        // about its own failures (RetryableError or a final status).
        const handler = manager.get(msg.subject);
        if (!handler) throw new Error(`unknown subject ${msg.subject}`);
        const cast = handler.decode(msg.data);
        await retryOnFailure(() => handler.handle(cast, delivery));
      },
      onOutcome(msg, outcome, err) {
        if (outcome === "ack") logger.debug({ subject: msg.subject, seq: msg.seq }, "cast handled");
        else logger.warn({ subject: msg.subject, seq: msg.seq, outcome, err }, "cast failed");
      },
    }),
  );
  lifecycle.onDrain((deadline) => consumer.stop(deadline));
  lifecycle.ready({ postgres: () => pingDatabase(db), nats: () => bus.jsm.getAccountInfo() });
  logger.info({ host: backendHost, member, subject: subjects.volumeAll(serving) }, "volume host consuming");
}

main().catch((err: unknown) => {
  console.error(err instanceof Error && err.name === "ConfigError" ? err.message : err);
  process.exit(1);
});
