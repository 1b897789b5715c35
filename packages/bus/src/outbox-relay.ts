import { type Db, drainOutbox } from "@cinderblock/db";
import type { JetStreamClient } from "@nats-io/jetstream";

/** Options for {@link startOutboxRelay}. */
export interface OutboxRelayOptions {
  db: Db;
  js: JetStreamClient;
  /** How often to look for messages nobody kicked the relay for (another process's, after a crash). */
  pollIntervalMs?: number;
  /** Messages per transaction (default 256). */
  batchSize?: number;
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
 * window), deleting them in the same transaction only once JetStream has acknowledged them.
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
          published = await drainOutbox(options.db, batchSize, async (messages) => {
            await Promise.all(messages.map((m) => options.js.publish(m.subject, m.payload, { msgID: m.msgId })));
          });
        } while (published === batchSize && !stopped);
      } catch (error) {
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
  kick();
  return {
    kick,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
