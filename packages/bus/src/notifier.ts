import { randomUUID } from "node:crypto";
import { Notification } from "@cinderblock/proto";
import type { Bus } from "./connection.js";
import { activeTraceHeaders } from "./tracing.js";

/** Notification priority, as Cinder's notifier spells it. */
export type Priority = "INFO" | "ERROR";

/** Publishes Cinder-style notifications. */
export interface Notifier {
  /**
   * Publishes one notification on `<prefix>.notifications.<priority>.<event_type>` as JSON (the
   * proto3 JSON mapping of {@link Notification}) and waits until the notifications stream has it.
   * The message's `traceparent` header names the span it was sent from, when traced.
   */
  notify(priority: Priority, eventType: string, publisherId: string, payload: Record<string, unknown>): Promise<void>;
}

/** A notifier publishing through JetStream, so every notification is captured for replay. */
export function createNotifier(bus: Bus): Notifier {
  const encoder = new TextEncoder();
  return {
    async notify(priority, eventType, publisherId, payload) {
      const envelope = Notification.toJSON({
        messageId: randomUUID(),
        eventType,
        publisherId,
        priority,
        timestamp: new Date(),
        payload,
      });
      const hdrs = activeTraceHeaders();
      await bus.js.publish(bus.subjects.notification(priority, eventType), encoder.encode(JSON.stringify(envelope)), {
        msgID: (envelope as { messageId: string }).messageId,
        ...(hdrs ? { headers: hdrs } : {}),
      });
    },
  };
}
