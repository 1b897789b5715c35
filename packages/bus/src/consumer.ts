import { withSpan } from "@cinderblock/telemetry";
import { AckPolicy, type JsMsg } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import type { Bus } from "./connection.js";
import { messageHandling, operationOf, watchConsumer } from "./metrics.js";
import { messageContext } from "./tracing.js";

/**
 * Thrown by a message handler when the same message may succeed later (a database or backend
 * that is briefly unavailable): the message is redelivered after `delayMs`.
 */
export class RetryableError extends Error {
  readonly delayMs: number;
  constructor(message: string, options: { delayMs?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "RetryableError";
    this.delayMs = options.delayMs ?? 1000;
  }
}

/**
 * Runs a handler step, turning any failure into a {@link RetryableError}: for work whose failures
 * (database or NATS trouble) a later delivery may cure. A RetryableError passes through unchanged.
 */
export async function retryOnFailure(work: () => Promise<void>, delayMs = 2000): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (error instanceof RetryableError) throw error;
    throw new RetryableError(String(error), { delayMs, cause: error });
  }
}

/** The outcome the consumer reports for each message, for the service's logs. */
export type Outcome = "ack" | "nak" | "term";

/** Options for {@link startConsumer}. */
export interface ConsumerOptions {
  bus: Bus;
  /** Durable consumer name (one per role: "scheduler", "volume-<host>"). */
  durable: string;
  filterSubject: string;
  /**
   * Handles one message. Resolving acks it; throwing {@link RetryableError} naks it with its
   * delay; any other error terminates it (never redelivered), since retrying a bug or bad input
   * cannot help.
   */
  handle(msg: JsMsg): Promise<void>;
  /** Called after each message with what was done, and the error if any. */
  onOutcome?(msg: JsMsg, outcome: Outcome, error?: unknown): void;
  /** Messages processed at once (default 16). */
  concurrency?: number;
  /**
   * Seconds a message may go without an ack or a progress signal before JetStream redelivers it
   * (default 30): after a crash, in-flight work comes back this soon. Handlers that run longer are
   * kept alive with `working()` signals every third of it.
   */
  ackWaitSeconds?: number;
  /** Deliveries before JetStream gives up on a message (default 10). */
  maxDeliver?: number;
}

/** A running consumer. */
export interface RunningConsumer {
  /**
   * Stops taking messages (those already fetched but not started are handed back at once) and
   * waits for the ones in flight, until `deadline` (epoch ms; default: as long as they take).
   * Messages still in flight then are handed back too (nak without delay) for another consumer
   * or the next start; their handlers are idempotent, so running one twice does no harm.
   */
  stop(deadline?: number): Promise<void>;
}

/**
 * Creates (or updates) a durable pull consumer and processes its messages with bounded
 * concurrency, telling retryable from terminal failures explicitly. Each message is timed
 * (cinderblock_bus_message_handling_seconds) and handled in a span continuing its publisher's
 * trace; the consumer's pending counts are sampled from JetStream when `/metrics` is scraped.
 */
export async function startConsumer(options: ConsumerOptions): Promise<RunningConsumer> {
  const { bus } = options;
  const concurrency = options.concurrency ?? 16;
  const ackWaitMs = (options.ackWaitSeconds ?? 30) * 1000;
  const config = {
    durable_name: options.durable,
    filter_subject: options.filterSubject,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ackWaitMs),
    max_deliver: options.maxDeliver ?? 10,
    max_ack_pending: Math.max(concurrency * 4, 64),
  };
  const existing = await bus.jsm.consumers.info(bus.subjects.castsStream, options.durable).catch(() => undefined);
  if (existing) await bus.jsm.consumers.update(bus.subjects.castsStream, options.durable, config);
  else await bus.jsm.consumers.add(bus.subjects.castsStream, config);

  const consumer = await bus.js.consumers.get(bus.subjects.castsStream, options.durable);
  const messages = await consumer.consume({ max_messages: concurrency });
  const inFlight = new Map<Promise<void>, JsMsg>();
  let stopping = false;

  async function process(msg: JsMsg): Promise<void> {
    await handleOne(msg).catch(() => {
      // NOTE: only an ack/nak on a connection closed by a stop that did not wait for this handler
      // gets here; JetStream redelivers the message, so there is nothing more to do.
    });
  }

  async function handleOne(msg: JsMsg): Promise<void> {
    const started = performance.now();
    const keepAlive = setInterval(() => msg.working(), ackWaitMs / 3);
    let outcome: Outcome = "ack";
    try {
      // A CONSUMER span continuing the publisher's trace (traceparent header), current for the handler.
      await withSpan(
        `process ${msg.subject}`,
        {
          kind: "consumer",
          parent: messageContext(msg),
          attributes: {
            "messaging.system": "nats",
            "messaging.destination.name": msg.subject,
            "messaging.consumer.group.name": options.durable,
          },
        },
        () => options.handle(msg),
      );
      msg.ack();
      options.onOutcome?.(msg, "ack");
    } catch (error) {
      if (error instanceof RetryableError) {
        outcome = "nak";
        msg.nak(error.delayMs);
        options.onOutcome?.(msg, "nak", error);
      } else {
        // NOTE: no reason argument: servers before 2.10.4 (Debian 12 ships 2.9) do not parse
        // "+TERM <reason>" and leave the message pending; the reason goes to onOutcome instead.
        outcome = "term";
        msg.term();
        options.onOutcome?.(msg, "term", error);
      }
    } finally {
      clearInterval(keepAlive);
      messageHandling.observe(
        { consumer: options.durable, operation: operationOf(msg.subject), outcome },
        (performance.now() - started) / 1000,
      );
    }
  }

  const loop = (async () => {
    for await (const msg of messages) {
      // NOTE: closing the iterator still yields what it had buffered; hand that back unstarted.
      if (stopping) {
        msg.nak();
        continue;
      }
      const task = process(msg);
      inFlight.set(task, msg);
      void task.finally(() => inFlight.delete(task));
      while (inFlight.size >= concurrency && !stopping) await Promise.race(inFlight.keys());
    }
  })();

  const unwatch = watchConsumer(bus, options.durable);
  return {
    async stop(deadline = Number.POSITIVE_INFINITY) {
      stopping = true;
      unwatch();
      const finished = Promise.all([messages.close(), loop, Promise.all(inFlight.keys())]).then(() => true);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        if (Number.isFinite(deadline)) timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
      });
      const done = await Promise.race([finished, timedOut]);
      clearTimeout(timer);
      if (!done) for (const msg of inFlight.values()) msg.nak();
    },
  };
}
