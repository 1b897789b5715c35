import { type Db, outboxBacklog } from "@cinderblock/db";
import { counter, gauge, histogram } from "@cinderblock/telemetry";
import type { Bus } from "./connection.js";

/** Time to handle one cast, by consumer, operation (the subject's last token) and outcome. */
export const messageHandling = histogram({
  name: "cinderblock_bus_message_handling_seconds",
  help: "Seconds a consumer spent on one cast, by consumer, operation and outcome (ack, nak, term); _count counts outcomes",
  labelNames: ["consumer", "operation", "outcome"] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
});

/** The operation a cast subject names: its last token (`create_snapshot`). */
export function operationOf(subject: string): string {
  return subject.slice(subject.lastIndexOf(".") + 1);
}

export const outboxPublished = counter({
  name: "cinderblock_outbox_published_total",
  help: "Casts the outbox relay published to JetStream (acknowledged)",
});

export const outboxRelayFailures = counter({
  name: "cinderblock_outbox_relay_failures_total",
  help: "Outbox relay passes that failed (the messages stay for the next pass)",
});

export const outboxRelayLag = histogram({
  name: "cinderblock_outbox_relay_lag_seconds",
  help: "Seconds from the transaction that wrote a cast to JetStream's acknowledgement of it",
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
});

/** A sampled value, fetched at most once per scrape however many gauges read it. */
function sampler<T>(fetch: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at > 1000) last = { at: now, value: fetch() };
    return last.value;
  };
}

// --- outbox backlog (one query per scrape, for each relay running in this process) ---

const relayDbs = new Set<Db>();

/** Registers a relay's database for the backlog gauges; returns the unregister function. */
export function watchOutbox(db: Db): () => void {
  relayDbs.add(db);
  return () => relayDbs.delete(db);
}

const sampleBacklog = sampler(async () => {
  const [db] = relayDbs;
  return db ? outboxBacklog(db).catch(() => undefined) : undefined;
});

gauge({
  name: "cinderblock_outbox_backlog_messages",
  help: "Casts committed to the outbox and not yet published (sampled when scraped)",
  async collect() {
    const backlog = await sampleBacklog();
    if (backlog) this.set(backlog.messages);
    else this.reset();
  },
});

gauge({
  name: "cinderblock_outbox_oldest_message_age_seconds",
  help: "Age of the oldest cast waiting in the outbox, 0 when empty (sampled when scraped)",
  async collect() {
    const backlog = await sampleBacklog();
    if (backlog) this.set(backlog.oldestAgeSeconds);
    else this.reset();
  },
});

// --- JetStream consumer state (one consumer-info request per consumer per scrape) ---

const consumers = new Map<string, { bus: Bus; durable: string }>();

/** Registers a running consumer for the JetStream gauges; returns the unregister function. */
export function watchConsumer(bus: Bus, durable: string): () => void {
  const key = `${bus.subjects.castsStream}/${durable}`;
  consumers.set(key, { bus, durable });
  return () => consumers.delete(key);
}

interface ConsumerSample {
  labels: { stream: string; consumer: string };
  pending: number;
  ackPending: number;
  redelivered: number;
}

const sampleConsumers = sampler(async () => {
  const samples = await Promise.all(
    [...consumers.values()].map(async ({ bus, durable }): Promise<ConsumerSample | undefined> => {
      const stream = bus.subjects.castsStream;
      const info = await bus.jsm.consumers.info(stream, durable).catch(() => undefined);
      if (!info) return undefined;
      return {
        labels: { stream, consumer: durable },
        pending: info.num_pending,
        ackPending: info.num_ack_pending,
        redelivered: info.num_redelivered,
      };
    }),
  );
  return samples.filter((s) => s !== undefined);
});

function consumerGauge(name: string, help: string, pick: (s: ConsumerSample) => number): void {
  gauge({
    name,
    help,
    labelNames: ["stream", "consumer"] as const,
    async collect() {
      const samples = await sampleConsumers();
      this.reset();
      for (const s of samples) this.set(s.labels, pick(s));
    },
  });
}

consumerGauge(
  "cinderblock_jetstream_consumer_pending_messages",
  "Casts in the stream not yet delivered to the consumer: its lag (sampled when scraped)",
  (s) => s.pending,
);
consumerGauge(
  "cinderblock_jetstream_consumer_ack_pending_messages",
  "Casts delivered to the consumer and not yet acknowledged (sampled when scraped)",
  (s) => s.ackPending,
);
consumerGauge(
  "cinderblock_jetstream_consumer_redelivered_messages",
  "Casts delivered more than once and not yet acknowledged (sampled when scraped)",
  (s) => s.redelivered,
);

// --- stream buffers (WatchEvents: what is held for readers slower than the events) ---

/** Bytes held right now for every stream's reader, summed. */
export const streamBufferedBytes = gauge({
  name: "cinderblock_stream_buffered_bytes",
  help: "Bytes of events held for stream readers that have not read them yet (all streams)",
});

/** The most bytes any one stream has held (never above CINDERBLOCK_STREAM_BUFFER_BYTES). */
export const streamBufferedBytesPeak = gauge({
  name: "cinderblock_stream_buffered_bytes_peak",
  help: "The most bytes one stream has held for its reader since the process started",
});

export const streamOverflows = counter({
  name: "cinderblock_stream_overflows_total",
  help: "Streams ended with RESOURCE_EXHAUSTED because their reader fell behind the buffer bound",
});
