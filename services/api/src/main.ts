import { randomBytes } from "node:crypto";
import {
  connectBus,
  createChangeFeed,
  createComputeAgents,
  createEventFeed,
  createOutboxAnnouncer,
  createOutboxDispatcher,
  startOutboxRelay,
} from "@cinderblock/bus";
import { apiServerTls, hostClientTls, loadApiConfig, natsConnectionSettings } from "@cinderblock/config";
import { createDb, pingDatabase, runMigrations } from "@cinderblock/db";
import { createApiUseCases, createPageTokens } from "@cinderblock/domain";
import { descriptorSetPath } from "@cinderblock/proto";
import {
  addHealthAndReflection,
  createRateLimiter,
  createVolumeHostCalls,
  listen,
  rateLimited,
  serverTls,
  shutdown,
} from "@cinderblock/rpc";
import { startServiceRuntime } from "@cinderblock/telemetry";
import { createApiGuard } from "./identity.js";
import { API_METHOD_CLASSES } from "./method-classes.js";
import { listenRest } from "./rest/listen.js";
import { createApiServer, PUBLIC_SERVICES } from "./server.js";
import { pendingUseCases } from "./starting.js";
import { countRefusedConnection, countStatement } from "./statements.js";

async function main(): Promise<void> {
  const config = loadApiConfig(process.env);
  // Volume hosts accept only mutual TLS: the api's client certificate is required.
  const hostTls = hostClientTls(config);
  const publicTls = apiServerTls(config);
  const { guard, authenticator } = createApiGuard(config);
  const { logger, lifecycle } = await startServiceRuntime("api", config);
  if (authenticator.strategy === "noauth") {
    logger.warn(
      { strategy: "noauth" },
      "running WITHOUT AUTHENTICATION: callers state their project and roles in metadata (development only)",
    );
  }
  lifecycle.onClose("authentication", async () => authenticator.close?.());
  if (!config.CINDERBLOCK_PAGE_TOKEN_SECRET) {
    logger.warn(
      "CINDERBLOCK_PAGE_TOKEN_SECRET is not set: page tokens are signed with a random key of this process, so they stop working after a restart and on other replicas",
    );
  }
  const pageTokens = createPageTokens(config.CINDERBLOCK_PAGE_TOKEN_SECRET ?? randomBytes(32));
  // The port is bound first, so health answers NOT_SERVING while PostgreSQL and NATS are awaited.
  const pending = pendingUseCases();
  const rateLimiter = createRateLimiter({
    classes: {
      read: {
        perSecond: config.CINDERBLOCK_RATE_LIMIT_READ_PER_SECOND,
        burst: config.CINDERBLOCK_RATE_LIMIT_READ_BURST,
      },
      write: {
        perSecond: config.CINDERBLOCK_RATE_LIMIT_WRITE_PER_SECOND,
        burst: config.CINDERBLOCK_RATE_LIMIT_WRITE_BURST,
      },
      admin: {
        perSecond: config.CINDERBLOCK_RATE_LIMIT_ADMIN_PER_SECOND,
        burst: config.CINDERBLOCK_RATE_LIMIT_ADMIN_BURST,
      },
      stream: {
        perSecond: config.CINDERBLOCK_RATE_LIMIT_STREAM_PER_SECOND,
        burst: config.CINDERBLOCK_RATE_LIMIT_STREAM_BURST,
      },
    },
    maxProjects: config.CINDERBLOCK_RATE_LIMIT_MAX_PROJECTS,
  });
  const server = createApiServer({
    useCases: pending.useCases,
    // NOTE: streams end as the drain starts; left open they would hold it for the whole grace period.
    stopping: lifecycle.signal,
    guard,
    rateLimiter,
    callDeadlineMs: config.CINDERBLOCK_CALL_DEADLINE * 1000,
    limits: {
      maxStringLength: config.CINDERBLOCK_REQUEST_MAX_STRING_LENGTH,
      maxEntries: config.CINDERBLOCK_REQUEST_MAX_ENTRIES,
      maxCollectionBytes: config.CINDERBLOCK_REQUEST_MAX_COLLECTION_BYTES,
    },
    streamLimits: {
      streamsPerProject: config.CINDERBLOCK_MAX_STREAMS_PER_PROJECT,
      streams: config.CINDERBLOCK_MAX_STREAMS,
      concurrentStreamsPerConnection: config.CINDERBLOCK_GRPC_CONCURRENT_STREAMS,
      maxMessageBytes: config.CINDERBLOCK_GRPC_MAX_MESSAGE_BYTES,
    },
    report: (err, info) => logger.error({ err, method: info.method, request_id: info.requestId }, "internal error"),
  });
  const health = addHealthAndReflection(server, {
    descriptorSetPath,
    services: PUBLIC_SERVICES,
    reflection: config.CINDERBLOCK_API_REFLECTION,
  });
  lifecycle.reportHealthTo((serving) => health.setServing(serving));
  const tlsEvents = (what: string) => ({
    onReload: () => logger.info({ what }, "tls certificate reloaded"),
    onError: (err: Error) =>
      logger.warn({ err, what }, "tls certificate files did not load; keeping the previous ones"),
  });
  // NOTE: without a certificate the public port is plaintext (development); the log line says which.
  const port = await listen(
    server,
    config.CINDERBLOCK_API_LISTEN,
    publicTls && serverTls({ ...publicTls, ...tlsEvents("public port") }),
    { maxConnections: config.CINDERBLOCK_MAX_CONNECTIONS, onRefused: countRefusedConnection },
  );
  lifecycle.onDrain(async (deadline) => {
    health.endWatches();
    await shutdown(server, deadline - Date.now());
  });
  const host = config.CINDERBLOCK_API_LISTEN.slice(0, config.CINDERBLOCK_API_LISTEN.lastIndexOf(":"));
  logger.info({ address: `${host}:${port}`, port, tls: publicTls !== undefined }, "grpc listening");
  if (config.CINDERBLOCK_REST_LISTEN) {
    const rest = await listenRest(config.CINDERBLOCK_REST_LISTEN, {
      useCases: pending.useCases,
      guard: rateLimited(guard, rateLimiter, API_METHOD_CLASSES),
      strategy: authenticator.strategy,
      limits: {
        maxStringLength: config.CINDERBLOCK_REQUEST_MAX_STRING_LENGTH,
        maxEntries: config.CINDERBLOCK_REQUEST_MAX_ENTRIES,
        maxCollectionBytes: config.CINDERBLOCK_REQUEST_MAX_COLLECTION_BYTES,
      },
      pageTokens,
      quotaDefaults: {
        volumes: config.CINDERBLOCK_QUOTA_VOLUMES,
        snapshots: config.CINDERBLOCK_QUOTA_SNAPSHOTS,
        gigabytes: config.CINDERBLOCK_QUOTA_GIGABYTES,
      },
      publicUrl: config.CINDERBLOCK_REST_PUBLIC_URL,
      report: (err, info) => logger.error({ err, method: info.method, request_id: info.requestId }, "internal error"),
    });
    lifecycle.onDrain(async () => rest.close());
    logger.info({ address: rest.address, port: rest.port, auth: authenticator.strategy }, "rest listening");
  }

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
    onStatement: countStatement,
  });
  lifecycle.onClose("PostgreSQL pool", closeDb);
  const bus = await lifecycle.retry("NATS", () =>
    connectBus({
      ...natsConnectionSettings(config),
      prefix: config.CINDERBLOCK_NATS_PREFIX,
      name: "cinderblock-api",
      role: "api",
      retention: {
        maxAgeSeconds: config.CINDERBLOCK_NOTIFICATIONS_MAX_AGE,
        maxBytes: config.CINDERBLOCK_NOTIFICATIONS_MAX_BYTES,
      },
    }),
  );
  lifecycle.onClose("NATS", () => bus.close());
  const relay = startOutboxRelay({
    db,
    js: bus.js,
    onError: (err) => logger.warn({ err }, "outbox relay pass failed; will retry"),
  });
  lifecycle.onClose("outbox relay", () => relay.stop());
  const hosts = createVolumeHostCalls({ tls: { ...hostTls, ...tlsEvents("volume host client") } });
  lifecycle.onClose("volume host clients", async () => hosts.close());
  pending.resolve(
    createApiUseCases({
      db,
      scheduler: createOutboxDispatcher(bus.subjects),
      notifications: createOutboxAnnouncer(bus.subjects, "api"),
      changes: createChangeFeed(bus),
      events: createEventFeed(bus),
      hosts,
      compute: createComputeAgents(bus, {
        timeoutMs: config.CINDERBLOCK_QUIESCE_TIMEOUT_MS,
        onThawFailure: (instanceId, err) =>
          logger.error(
            { err, instance_id: instanceId },
            "unquiesce was not confirmed; the instance may still be frozen",
          ),
      }),
      snapshotInstanceTimeoutSeconds: config.CINDERBLOCK_SNAPSHOT_INSTANCE_TIMEOUT,
      quota: {
        volumes: config.CINDERBLOCK_QUOTA_VOLUMES,
        snapshots: config.CINDERBLOCK_QUOTA_SNAPSHOTS,
        gigabytes: config.CINDERBLOCK_QUOTA_GIGABYTES,
      },
      defaultAvailabilityZone: config.CINDERBLOCK_DEFAULT_AVAILABILITY_ZONE,
      defaultVolumeType: config.CINDERBLOCK_DEFAULT_VOLUME_TYPE,
      operationTimeoutSeconds: config.CINDERBLOCK_OPERATION_TIMEOUT,
      serviceDownTimeSeconds: config.CINDERBLOCK_SERVICE_DOWN_TIME,
      pageTokens,
      onCommitted: () => relay.kick(),
      streamBuffer: {
        messages: config.CINDERBLOCK_STREAM_BUFFER_MESSAGES,
        bytes: config.CINDERBLOCK_STREAM_BUFFER_BYTES,
      },
    }),
  );
  lifecycle.ready({ postgres: () => pingDatabase(db), nats: () => bus.jsm.getAccountInfo() });
  logger.info({ address: `${host}:${port}`, port, auth: authenticator.strategy }, "api listening");
}

main().catch((err: unknown) => {
  console.error(err instanceof Error && err.name === "ConfigError" ? err.message : err);
  process.exit(1);
});
