import { type Db, drainOutbox } from "@cinderblock/db";
import type { JetStreamClient } from "@nats-io/jetstream";
import { outboxPublished, outboxRelayFailures, outboxRelayLag, watchOutbox } from "./metrics.js";
import { publishTraced, storedContext } from "./tracing.js";

/** Options for {@link startOutboxRelay}. */
export interface OutboxRelayOptions {
  db: Db;
  js: JetStreamClient;
  /** How often to look for messages nobody kicked the relay for (another process's, after a crash). */
  pollIntervalMs?: number;
  /** Messages per transaction (default 256). */
  batchSize?: number;
  /**
   * Only the messages on these subjects (NATS patterns), for a relay whose NATS user may publish
   * only those (a volume host: notifications); the others are left to the other services' relays.
   * Default: every message.
   */
  subjects?: readonly string[];
  /** Called when a pass fails; the messages stay in the outbox for the next one. */
  onError?(error: unknown): void;
}

/** The relay that moves committed casts from the outbox onto JetStream. */
export interface OutboxRelay {
  /** Asks for a pass now (after a transaction that wrote to the outbox committed). */
  kick(): void;
  stop(): Promise<void>;
}

/**
 * Publishes outbox messages with their message id (JetStream drops a duplicate inside its
 * window), deleting them in the same transaction only once JetStream has acknowledged them. Each
 * publish continues the trace stored with its row; the cinderblock_outbox_* metrics count them,
 * their lag, and (sampled when scraped) the backlog.
 */
export function startOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const batchSize = options.batchSize ?? 256;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  async function pass(): Promise<void> {
    do {
      again = false;
      try {
        let published = 0;
        do {
          published = await drainOutbox(
            options.db,
            batchSize,
            async (messages) => {
              await Promise.all(
                messages.map(async (m) => {
                  // The publish continues the trace of the request that wrote the row; a row without
                  // one starts its own (never the trace of whichever request kicked this pass).
                  const parent = { context: storedContext(m.traceContext), stored: m.traceContext };
                  await publishTraced(options.js, m.subject, m.payload, m.msgId, parent);
                  // NOTE: created_at is PostgreSQL's clock, Date.now() this host's: skew shifts the lag.
                  outboxRelayLag.observe(Math.max(0, Date.now() - m.createdAt.getTime()) / 1000);
                }),
              );
            },
            options.subjects,
          );
          outboxPublished.inc(published);
        } while (published === batchSize && !stopped);
      } catch (error) {
        outboxRelayFailures.inc();
        options.onError?.(error);
      }
    } while (again && !stopped);
  }

  function kick(): void {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = pass().finally(() => {
      running = undefined;
    });
  }

  const timer = setInterval(kick, options.pollIntervalMs ?? 1000);
  const unwatch = watchOutbox(options.db);
  kick();
  return {
    kick,
    async stop() {
      stopped = true;
      unwatch();
      clearInterval(timer);
      await running;
    },
  };
}
