import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

/** One notification as the services published it (the proto3 JSON form of cinderblock.v1.Notification). */
export interface PublishedNotification {
  /** Its sequence number in the notifications stream. */
  seq: number;
  messageId: string;
  eventType: string;
  priority: string;
  /** Who published it: `<service>.<host>`, e.g. `snapshot.vol1`. */
  publisherId: string;
  payload: Record<string, unknown>;
}

/** The notifications stream of a NATS prefix (what packages/bus names it). */
export function notificationsStreamName(prefix: string): string {
  return `${prefix.toUpperCase().replace(/-/g, "_")}_NOTIFICATIONS`;
}

/**
 * Every notification in the prefix's notifications stream, read from the stream itself (what
 * JetStream kept after deduplicating by message id), in order. Reads up to the last message the
 * stream held when called.
 */
export async function readNotifications(nc: NatsConnection, prefix: string): Promise<PublishedNotification[]> {
  const stream = notificationsStreamName(prefix);
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const last = info.state.last_seq;
  if (info.state.messages === 0) return [];
  const consumer = await jetstream(nc).consumers.get(stream);
  const messages = await consumer.consume();
  const out: PublishedNotification[] = [];
  try {
    for await (const m of messages) {
      const n = m.json<{
        messageId?: string;
        eventType?: string;
        priority?: string;
        publisherId?: string;
        payload?: Record<string, unknown>;
      }>();
      out.push({
        seq: m.seq,
        messageId: n.messageId ?? "",
        eventType: n.eventType ?? "",
        priority: n.priority ?? "",
        publisherId: n.publisherId ?? "",
        payload: n.payload ?? {},
      });
      if (m.seq >= last) break;
    }
  } finally {
    await messages.close().catch(() => undefined);
  }
  return out;
}

/** The resource a notification is about: the snapshot of a snapshot event, the volume of a volume event. */
export function resourceOf(n: Pick<PublishedNotification, "eventType" | "payload">): string {
  const p = n.payload;
  if (n.eventType.startsWith("snapshot")) return String(p.snapshot_id ?? "");
  if (n.eventType.startsWith("group_snapshot")) return String(p.group_snapshot_id ?? "");
  return String(p.volume_id ?? "");
}

/**
 * Counts notifications by `<event type> <resource id>` (e.g. `snapshot.create.end 9c1…`): each
 * distinct message id once (a re-publication of the same message is not a second notification).
 */
export function countByResource(notifications: readonly PublishedNotification[]): Map<string, number> {
  const seen = new Map<string, Set<string>>();
  for (const n of notifications) {
    const key = `${n.eventType} ${resourceOf(n)}`;
    let ids = seen.get(key);
    if (!ids) {
      ids = new Set();
      seen.set(key, ids);
    }
    ids.add(n.messageId || `seq-${n.seq}`);
  }
  return new Map([...seen].map(([k, ids]) => [k, ids.size]));
}
