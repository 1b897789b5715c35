import { createDb, type DbHandle, enqueueOutbox, enqueueOutboxMany, runMigrations } from "@cinderblock/db";
import { createTestDatabase, TEST_NATS_URL, type TestDatabase, uniqueName } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bus, connectBus } from "./connection.js";
import { type Outcome, RetryableError, startConsumer } from "./consumer.js";
import { createNotifier } from "./notifier.js";
import { startOutboxRelay } from "./outbox-relay.js";

// Integration: the real NATS JetStream (and PostgreSQL for the outbox), own prefix and database.

let bus: Bus;
let database: TestDatabase;
let handle: DbHandle;

beforeAll(async () => {
  bus = await connectBus({ url: TEST_NATS_URL, prefix: uniqueName("cbbus"), name: "bus-test" });
  database = await createTestDatabase(runMigrations);
  handle = createDb({ url: database.url, max: 4 });
});

afterAll(async () => {
  await handle?.close();
  await database?.drop();
  if (bus) {
    await bus.jsm.streams.delete(bus.subjects.castsStream).catch(() => false);
    await bus.jsm.streams.delete(bus.subjects.notificationsStream).catch(() => false);
    await bus.close();
  }
});

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("consumer", () => {
  it("acks on success, redelivers a RetryableError, and terminates anything else", async () => {
    const subject = `${bus.subjects.prefix}.v1.scheduler.test_outcomes`;
    const seen: Array<[string, number, Outcome]> = [];
    const consumer = await startConsumer({
      bus,
      durable: "outcomes",
      filterSubject: subject,
      async handle(msg) {
        const body = msg.string();
        if (body === "flaky" && msg.info.deliveryCount === 1) throw new RetryableError("not yet", { delayMs: 50 });
        if (body === "poison") throw new Error("cannot handle");
      },
      onOutcome: (msg, outcome) => seen.push([msg.string(), msg.info.deliveryCount, outcome]),
    });
    try {
      for (const body of ["ok", "flaky", "poison"]) await bus.js.publish(subject, body);
      await until(() => seen.length >= 4);
      await new Promise((r) => setTimeout(r, 300)); // a terminated message must not come back
      expect(seen.sort()).toEqual([
        ["flaky", 1, "nak"],
        ["flaky", 2, "ack"],
        ["ok", 1, "ack"],
        ["poison", 1, "term"],
      ]);
      // Work-queue retention: acked and terminated messages are gone from the stream.
      const info = await bus.jsm.consumers.info(bus.subjects.castsStream, "outcomes");
      expect({ pending: info.num_pending, ackPending: info.num_ack_pending }).toEqual({ pending: 0, ackPending: 0 });
    } finally {
      await consumer.stop();
    }
  });
});

describe("consumer stop", () => {
  it("waits for handlers in flight until the deadline, then hands back what is left at once", async () => {
    const subject = `${bus.subjects.prefix}.v1.scheduler.test_stop`;
    const started: string[] = [];
    let finishQuick: () => void = () => {};
    const quickDone = new Promise<void>((resolve) => {
      finishQuick = resolve;
    });
    const first = await startConsumer({
      bus,
      durable: "stopping",
      filterSubject: subject,
      concurrency: 2,
      // Long enough that only a hand-back, not JetStream's ack timeout, can bring a message back in this test.
      ackWaitSeconds: 600,
      async handle(msg) {
        started.push(msg.string());
        if (msg.string() === "quick") await quickDone;
        else await new Promise(() => {}); // "stuck": never finishes
      },
    });
    for (const body of ["quick", "stuck", "queued-1", "queued-2"]) await bus.js.publish(subject, body);
    await until(() => started.length === 2);
    let stopped = false;
    const stopping = first.stop(Date.now() + 1500).then(() => {
      stopped = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    // The quick one is still allowed to finish (and is acked).
    expect(stopped).toBe(false);
    finishQuick();
    await stopping;
    expect(started.sort()).toEqual(["quick", "stuck"]);

    const second: string[] = [];
    const next = await startConsumer({
      bus,
      durable: "stopping",
      filterSubject: subject,
      async handle(msg) {
        second.push(msg.string());
      },
    });
    try {
      await until(() => second.length >= 3);
      expect(second.sort()).toEqual(["queued-1", "queued-2", "stuck"]);
    } finally {
      await next.stop();
    }
  });
});

describe("outbox relay", () => {
  it("publishes committed casts once, even when the same message id is written twice", async () => {
    const subject = `${bus.subjects.prefix}.v1.scheduler.test_relay`;
    await handle.db.transaction(async (tx) => {
      await enqueueOutbox(tx, { subject, msgId: "op-1:1:scheduler", payload: new TextEncoder().encode("a") });
      await enqueueOutbox(tx, { subject, msgId: "op-2:1:scheduler", payload: new TextEncoder().encode("b") });
      await enqueueOutbox(tx, { subject, msgId: "op-1:1:scheduler", payload: new TextEncoder().encode("a") });
    });
    const got: string[] = [];
    const consumer = await startConsumer({
      bus,
      durable: "relay",
      filterSubject: subject,
      async handle(msg) {
        got.push(msg.string());
      },
    });
    const relay = startOutboxRelay({ db: handle.db, js: bus.js, pollIntervalMs: 50 });
    try {
      await until(() => got.length >= 2);
      await until(async () => {
        const [row] = await handle.db.execute<{ n: number }>(sql`select count(*)::int as n from outbox`);
        return row?.n === 0;
      });
      await new Promise((r) => setTimeout(r, 300));
      expect(got.sort()).toEqual(["a", "b"]);
    } finally {
      await relay.stop();
      await consumer.stop();
    }
  });

  it("publishes the trace context stored with a row in the message's headers", async () => {
    const subject = `${bus.subjects.prefix}.v1.scheduler.test_trace`;
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await enqueueOutbox(handle.db, {
      subject,
      msgId: "op-t:1:scheduler",
      payload: new Uint8Array([1]),
      traceContext: { traceparent },
    });
    await enqueueOutbox(handle.db, { subject, msgId: "op-u:1:scheduler", payload: new Uint8Array([2]) });
    const got: Array<[number, string | undefined]> = [];
    const consumer = await startConsumer({
      bus,
      durable: "trace",
      filterSubject: subject,
      async handle(msg) {
        got.push([msg.data[0] ?? 0, msg.headers?.get("traceparent") || undefined]);
      },
    });
    const relay = startOutboxRelay({ db: handle.db, js: bus.js, pollIntervalMs: 50 });
    try {
      await until(() => got.length >= 2);
    } finally {
      await relay.stop();
      await consumer.stop();
    }
    // Even a relay that does not trace itself passes the stored context on, so the trace goes on.
    expect(got.sort()).toEqual([
      [1, traceparent],
      [2, undefined],
    ]);
  });

  it("publishes messages written at once in their order, bytes and trace context intact", async () => {
    const subject = `${bus.subjects.prefix}.v1.scheduler.test_many`;
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const payloads = [new Uint8Array([0, 255, 10]), new Uint8Array([]), new Uint8Array([7, 0, 0, 7])];
    await enqueueOutboxMany(
      handle.db,
      payloads.map((payload, i) => ({
        subject,
        msgId: `op-m${i}:1:scheduler`,
        payload,
        traceContext: i === 0 ? { traceparent } : undefined,
      })),
    );
    const got: Array<[number[], string | undefined]> = [];
    const consumer = await startConsumer({
      bus,
      durable: "many",
      filterSubject: subject,
      concurrency: 1,
      async handle(msg) {
        got.push([[...msg.data], msg.headers?.get("traceparent") || undefined]);
      },
    });
    const relay = startOutboxRelay({ db: handle.db, js: bus.js, pollIntervalMs: 50 });
    try {
      await until(() => got.length >= 3);
    } finally {
      await relay.stop();
      await consumer.stop();
    }
    expect(got).toEqual([
      [[0, 255, 10], traceparent],
      [[], undefined],
      [[7, 0, 0, 7], undefined],
    ]);
  });

  it("keeps messages in the outbox while JetStream refuses them", async () => {
    // No stream captures this subject: the publish fails, so the row must stay for a later pass.
    await enqueueOutbox(handle.db, { subject: uniqueName("nowhere."), msgId: "x:1", payload: new Uint8Array([1]) });
    const errors: unknown[] = [];
    const relay = startOutboxRelay({ db: handle.db, js: bus.js, pollIntervalMs: 50, onError: (e) => errors.push(e) });
    try {
      await until(() => errors.length > 0);
    } finally {
      await relay.stop();
    }
    const [row] = await handle.db.execute<{ n: number }>(sql`select count(*)::int as n from outbox`);
    expect(row?.n).toBe(1);
    await handle.db.execute(sql`delete from outbox`);
  });
});

describe("notifier", () => {
  it("publishes the JSON envelope on <prefix>.notifications.<priority>.<event_type>, captured by the stream", async () => {
    const sub = bus.nc.subscribe(bus.subjects.notificationsAll, { max: 1 });
    await createNotifier(bus).notify("INFO", "snapshot.create.start", "snapshot.vol1", {
      snapshot_id: "s1",
      volume_size: 1,
    });
    for await (const m of sub) {
      expect(m.subject).toBe(`${bus.subjects.prefix}.notifications.info.snapshot.create.start`);
      expect(m.json()).toEqual({
        messageId: expect.stringMatching(/^[0-9a-f-]{36}$/),
        eventType: "snapshot.create.start",
        publisherId: "snapshot.vol1",
        priority: "INFO",
        timestamp: expect.any(String),
        payload: { snapshot_id: "s1", volume_size: 1 },
      });
    }
    const info = await bus.jsm.streams.info(bus.subjects.notificationsStream);
    expect(info.state.messages).toBe(1);
  });
});
