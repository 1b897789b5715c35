import { hostname } from "node:os";
import {
  connectBus,
  createOutboxAnnouncer,
  createOutboxDispatcher,
  createVolumeHostCaster,
  retryOnFailure,
  startConsumer,
  startOutboxRelay,
} from "@cinderblock/bus";
import { loadSchedulerConfig, natsConnectionSettings } from "@cinderblock/config";
import { createDb, pingDatabase, runMigrations } from "@cinderblock/db";
import { SchedulerCreateSnapshot, SchedulerCreateVolume, SchedulerRetypeVolume } from "@cinderblock/proto";
import { addHealth, listen, Server, shutdown } from "@cinderblock/rpc";
import { startServiceRuntime } from "@cinderblock/telemetry";
import { createSchedulerHandlers } from "./handlers.js";
import { reconcileOnce } from "./reconciler.js";

async function main(): Promise<void> {
  const config = loadSchedulerConfig(process.env);
  const { logger, lifecycle } = await startServiceRuntime("scheduler", config);
  // NOTE: the scheduler serves nothing over gRPC; this server carries only grpc.health.v1, so that
  // probes (Kubernetes' native grpc probe) see the same readiness as the api's and the volume
  // host's, at the cost of one idle port instead of a process spawned per exec probe.
  const healthServer = new Server();
  const health = addHealth(healthServer, []);
  lifecycle.reportHealthTo((serving) => health.setServing(serving));
  const port = await listen(healthServer, config.CINDERBLOCK_SCHEDULER_LISTEN);
  // Closed last, so health answers NOT_SERVING for the whole drain.
  lifecycle.onClose("health server", async () => {
    health.endWatches();
    await shutdown(healthServer, 0);
  });
  logger.info({ port }, "grpc listening");

  // The DDL role migrates and grants DATABASE_URL's role the DML the service runs with.
  await lifecycle.retry("PostgreSQL", () =>
    runMigrations(config.DATABASE_MIGRATION_URL ?? config.DATABASE_URL, {
      serviceUrl: config.DATABASE_URL,
      sslCaFile: config.DATABASE_SSL_CA_FILE,
    }),
  );
  const { db, close: closeDb } = createDb({
    url: config.DATABASE_URL,
    sslCaFile: config.DATABASE_SSL_CA_FILE,
    max: config.CINDERBLOCK_DB_POOL_MAX,
    prepare: config.CINDERBLOCK_DB_PREPARE,
    statementTimeoutMs: config.CINDERBLOCK_DB_STATEMENT_TIMEOUT_MS,
  });
  lifecycle.onClose("PostgreSQL pool", closeDb);
  const bus = await lifecycle.retry("NATS", () =>
    connectBus({
      ...natsConnectionSettings(config),
      prefix: config.CINDERBLOCK_NATS_PREFIX,
      name: "cinderblock-scheduler",
      role: "scheduler",
    }),
  );
  lifecycle.onClose("NATS", () => bus.close());
  // The relay publishes what the handlers and the reconciler write into the outbox (scheduling
  // failures, re-sent casts, operations given up) once their transactions commit.
  const relay = startOutboxRelay({
    db,
    js: bus.js,
    onError: (err) => logger.warn({ err }, "outbox relay pass failed; will retry"),
  });
  lifecycle.onClose("outbox relay", () => relay.stop());
  const handlers = createSchedulerHandlers({
    db,
    bus,
    caster: createVolumeHostCaster(bus),
    notifications: createOutboxAnnouncer(bus.subjects, hostname()),
    onCommitted: () => relay.kick(),
    serviceDownTimeSeconds: config.CINDERBLOCK_SERVICE_DOWN_TIME,
    backendWaitMs: config.CINDERBLOCK_SCHEDULER_BACKEND_WAIT * 1000,
    weigherMultipliers: {
      capacity: config.CINDERBLOCK_CAPACITY_WEIGHT_MULTIPLIER,
      allocatedCapacity: config.CINDERBLOCK_ALLOCATED_CAPACITY_WEIGHT_MULTIPLIER,
    },
    maxAttempts: config.CINDERBLOCK_SCHEDULER_MAX_ATTEMPTS,
    logger,
  });

  const consumer = await lifecycle.retry("NATS consumer", () =>
    startConsumer({
      bus,
      // NOTE: every scheduler replica shares this durable consumer: each cast goes to one of them.
      durable: "scheduler",
      filterSubject: bus.subjects.schedulerAll,
      ackWaitSeconds: config.CINDERBLOCK_CAST_ACK_WAIT,
      async handle(msg) {
        const deliveryKey = msg.headers?.get("Nats-Msg-Id") || `seq-${msg.seq}`;
        // NOTE: a cast that does not decode, or an unknown subject, can never succeed: it terminates.
        // Anything the handlers throw (database or NATS trouble) is worth a retry.
        if (msg.subject === bus.subjects.schedulerCreateSnapshot) {
          const cast = SchedulerCreateSnapshot.decode(msg.data);
          await retryOnFailure(() => handlers.createSnapshot(cast, deliveryKey));
        } else if (msg.subject === bus.subjects.schedulerCreateVolume) {
          const cast = SchedulerCreateVolume.decode(msg.data);
          await retryOnFailure(() => handlers.createVolume(cast, deliveryKey));
        } else if (msg.subject === bus.subjects.schedulerRetypeVolume) {
          const cast = SchedulerRetypeVolume.decode(msg.data);
          await retryOnFailure(() => handlers.retypeVolume(cast, deliveryKey));
        } else {
          throw new Error(`unknown subject ${msg.subject}`);
        }
      },
      onOutcome(msg, outcome, err) {
        if (outcome === "ack") logger.debug({ subject: msg.subject, seq: msg.seq }, "cast handled");
        else logger.warn({ subject: msg.subject, seq: msg.seq, outcome, err }, "cast failed");
      },
    }),
  );
  lifecycle.onDrain((deadline) => consumer.stop(deadline));

  const dispatcher = createOutboxDispatcher(bus.subjects);
  const notifications = createOutboxAnnouncer(bus.subjects, "scheduler");
  let reconciling: Promise<void> | undefined;
  const reconcileTimer = setInterval(() => {
    reconciling ??= reconcileOnce({
      db,
      bus,
      dispatcher,
      notifications,
      timeoutSeconds: config.CINDERBLOCK_OPERATION_TIMEOUT,
      maxAttempts: config.CINDERBLOCK_OPERATION_MAX_ATTEMPTS,
    })
      .then((r) => {
        if (r.redispatched + r.failed + r.finished > 0) logger.info(r, "reconciled overdue operations");
        if (r.redispatched + r.failed > 0) relay.kick();
      })
      .catch((err: unknown) => logger.warn({ err }, "reconciler pass failed"))
      .finally(() => {
        reconciling = undefined;
      });
  }, config.CINDERBLOCK_RECONCILE_INTERVAL * 1000);
  lifecycle.onDrain(async (deadline) => {
    clearInterval(reconcileTimer);
    // A pass is short (a few queries); one cut off by the deadline is simply done again by the next start.
    await Promise.race([
      reconciling,
      new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref()),
    ]);
  });
  lifecycle.ready({ postgres: () => pingDatabase(db), nats: () => bus.jsm.getAccountInfo() });
  logger.info({ subject: bus.subjects.schedulerAll }, "scheduler consuming");
}

main().catch((err: unknown) => {
  console.error(err instanceof Error && err.name === "ConfigError" ? err.message : err);
  process.exit(1);
});
