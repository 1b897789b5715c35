import { sql } from "drizzle-orm";
import type { Db, Executor } from "./client.js";
import { outbox } from "./schema.js";

/** A cast waiting in the outbox. */
export interface OutboxMessage {
  subject: string;
  /** JetStream message id (deduplication). */
  msgId: string;
  payload: Uint8Array;
  /** W3C trace context of the request that wrote it (`traceparent`, `tracestate`), when traced. */
  traceContext?: Record<string, string> | undefined;
}

/** A message taken from the outbox, with when it was written. */
export interface DrainedOutboxMessage extends OutboxMessage {
  /** When the writing transaction began (its `now()`). */
  createdAt: Date;
}

/** Writes a cast into the outbox (in the transaction of the rows it concerns). */
export function enqueueOutbox(db: Executor, message: OutboxMessage): Promise<void> {
  return enqueueOutboxMany(db, [message]);
}

/**
 * Writes several messages into the outbox in one statement, in the order given (the relay
 * publishes in that order).
 */
export async function enqueueOutboxMany(db: Executor, messages: readonly OutboxMessage[]): Promise<void> {
  if (messages.length === 0) return;
  // NOTE: unnest keeps the statement text the same for any count, so it is prepared once. The
  // payloads go as hex text: postgres.js types an array of Buffers as bytea, not bytea[].
  await db.execute(sql`
    insert into ${outbox} (subject, msg_id, payload, trace_context)
    select m.subject, m.msg_id, decode(m.payload, 'hex'), m.trace_context::jsonb
      from unnest(${sql.param(messages.map((m) => m.subject))}::text[],
                  ${sql.param(messages.map((m) => m.msgId))}::text[],
                  ${sql.param(messages.map((m) => Buffer.from(m.payload).toString("hex")))}::text[],
                  ${sql.param(messages.map((m) => (m.traceContext ? JSON.stringify(m.traceContext) : null)))}::text[])
           with ordinality as m(subject, msg_id, payload, trace_context, n)
     order by m.n`);
}

/** A NATS subject pattern (`*` one token, `>` one or more) as an anchored PostgreSQL regular expression. */
function subjectRegex(pattern: string): string {
  const tokens = pattern
    .split(".")
    .map((t) => (t === "*" ? "[^.]+" : t === ">" ? ".+" : t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  return `^${tokens.join("\\.")}$`;
}

/**
 * Takes up to `limit` messages in order, hands them to `publish`, and deletes them only if
 * `publish` resolves, all in one transaction: a crash or a failed publish leaves them for the next
 * pass. Concurrent relays skip each other's rows. Only messages whose subject matches one of
 * `subjects` (NATS patterns) are taken, when given: a relay whose NATS user may publish only
 * those leaves the rest to the others. Returns how many were published.
 */
export async function drainOutbox(
  db: Db,
  limit: number,
  publish: (messages: DrainedOutboxMessage[]) => Promise<void>,
  subjects?: readonly string[],
): Promise<number> {
  const only = subjects ? sql`where subject ~ any(${sql.param(subjects.map(subjectRegex))}::text[])` : sql``;
  return db.transaction(async (tx) => {
    const rows = await tx.execute<{
      id: string;
      subject: string;
      msg_id: string;
      payload: Uint8Array;
      trace_context: Record<string, string> | null;
      created_ms: number;
    }>(sql`
      delete from ${outbox} where id in (
        select id from ${outbox} ${only} order by id limit ${limit} for update skip locked
      ) returning id, subject, msg_id, payload, trace_context,
        (extract(epoch from created_at) * 1000)::float8 as created_ms`);
    if (rows.length === 0) return 0;
    const messages = [...rows]
      .sort((a, b) => Number(a.id) - Number(b.id))
      .map((r) => ({
        subject: r.subject,
        msgId: r.msg_id,
        payload: new Uint8Array(r.payload),
        traceContext: r.trace_context ?? undefined,
        createdAt: new Date(Number(r.created_ms)),
      }));
    await publish(messages);
    return messages.length;
  });
}

/** How many messages wait in the outbox, and how long the oldest has waited (seconds, 0 when empty). */
export async function outboxBacklog(db: Db): Promise<{ messages: number; oldestAgeSeconds: number }> {
  const [row] = await db.execute<{ n: number; age: number | null }>(sql`
    select count(*)::int as n, extract(epoch from (now() - min(created_at)))::float8 as age from ${outbox}`);
  return { messages: row?.n ?? 0, oldestAgeSeconds: Math.max(0, row?.age ?? 0) };
}
