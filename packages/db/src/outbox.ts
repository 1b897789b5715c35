import { sql } from "drizzle-orm";
import type { Db, Executor } from "./client.js";
import { outbox } from "./schema.js";

/** A cast waiting in the outbox. */
export interface OutboxMessage {
  subject: string;
  /** JetStream message id (deduplication). */
  msgId: string;
  payload: Uint8Array;
}

/** Writes a cast into the outbox (in the transaction of the rows it concerns). */
export async function enqueueOutbox(db: Executor, message: OutboxMessage): Promise<void> {
  await db.insert(outbox).values(message);
}

/**
 * Takes up to `limit` messages in order, hands them to `publish`, and deletes them only if
 * `publish` resolves, all in one transaction: a crash or a failed publish leaves them for the next
 * pass. Concurrent relays skip each other's rows. Returns how many were published.
 */
export async function drainOutbox(
  db: Db,
  limit: number,
  publish: (messages: OutboxMessage[]) => Promise<void>,
): Promise<number> {
  return db.transaction(async (tx) => {
    const rows = await tx.execute<{ id: string; subject: string; msg_id: string; payload: Uint8Array }>(sql`
      delete from ${outbox} where id in (
        select id from ${outbox} order by id limit ${limit} for update skip locked
      ) returning id, subject, msg_id, payload`);
    if (rows.length === 0) return 0;
    const messages = [...rows]
      .sort((a, b) => Number(a.id) - Number(b.id))
      .map((r) => ({ subject: r.subject, msgId: r.msg_id, payload: new Uint8Array(r.payload) }));
    await publish(messages);
    return messages.length;
  });
}
