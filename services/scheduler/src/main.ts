import {
  connectBus,
  createNotifier,
  createOutboxAnnouncer,
  createOutboxDispatcher,
  createVolumeHostCaster,
  retryOnFailure,
  startConsumer,
  startOutboxRelay,
} from "@cinderblock/bus";
import { createLogger, loadSchedulerConfig, onShutdown } from "@cinderblock/config";
import { createDb, runMigrations } from "@cinderblock/db";
import { SchedulerCreateSnapshot, SchedulerCreateVolume } from "@cinderblock/proto";
import { startTelemetry } from "@cinderblock/telemetry";
import { createSchedulerHandlers } from "./handlers.js";
import { reconcileOnce } from "./reconciler.js";

async function main(): Promise<void> {
  const config = loadSchedulerConfig(process.env);
  const logger = createLogger({ service: "scheduler", level: config.LOG_LEVEL });
  const telemetry = await startTelemetry({
    service: "scheduler",
    config,
    onWarning: (message) => logger.warn({ detail: message }, "telemetry trouble"),
  });
  if (telemetry.metricsAddress) logger.info({ address: telemetry.metricsAddress }, "metrics listening");
  await runMigrations(config.DATABASE_URL);
  const { db, close: closeDb } = createDb({ url: config.DATABASE_URL, max: config.CINDERBLOCK_DB_POOL_MAX });
  const bus = await connectBus({
    url: config.NATS_URL,
    prefix: config.CINDERBLOCK_NATS_PREFIX,
    name: "cinderblock-scheduler",
  });
  const notifier = createNotifier(bus);
  const handlers = createSchedulerHandlers({
    db,
    bus,
    caster: createVolumeHostCaster(bus),
    notifier,
    serviceDownTimeSeconds: config.CINDERBLOCK_SERVICE_DOWN_TIME,
  });

  const consumer = await startConsumer({
    bus,
    durable: "scheduler",
    filterSubject: bus.subjects.schedulerAll,
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
      } else {
        throw new Error(`unknown subject ${msg.subject}`);
      }
    },
    onOutcome(msg, outcome, err) {
      if (outcome === "ack") logger.debug({ subject: msg.subject, seq: msg.seq }, "cast handled");
      else logger.warn({ subject: msg.subject, seq: msg.seq, outcome, err }, "cast failed");
    },
  });

  const relay = startOutboxRelay({
    db,
    js: bus.js,
    onError: (err) => logger.warn({ err }, "outbox relay pass failed; will retry"),
  });
  const dispatcher = createOutboxDispatcher(bus.subjects);
  let reconciling: Promise<void> | undefined;
  const reconcileTimer = setInterval(() => {
    reconciling ??= reconcileOnce({
      db,
      bus,
      dispatcher,
      notifications: createOutboxAnnouncer(bus.subjects, "scheduler"),
      notifier,
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
  logger.info({ subject: bus.subjects.schedulerAll }, "scheduler consuming");

  onShutdown(logger, async () => {
    clearInterval(reconcileTimer);
    await reconciling;
    await consumer.stop();
    await relay.stop();
    await bus.close();
    await closeDb();
    await telemetry.close();
  });
}

main().catch((err: unknown) => {
  console.error(err instanceof Error && err.name === "ConfigError" ? err.message : err);
  process.exit(1);
});
