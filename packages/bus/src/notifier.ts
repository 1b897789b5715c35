import { randomUUID } from "node:crypto";
import { type Executor, enqueueOutbox, type OutboxMessage } from "@cinderblock/db";
import { type Announcer, derivedId } from "@cinderblock/domain";
import { Notification } from "@cinderblock/proto";
import { traceCarrier } from "@cinderblock/telemetry";
import type { Bus } from "./connection.js";
import type { Subjects } from "./subjects.js";
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
  notify(
    priority: Priority,
    eventType: string,
    publisherId: string,
    payload: Record<string, unknown>,
    key?: string,
  ): Promise<void>;
}

const encoder = new TextEncoder();

/**
 * One notification's message id and wire form. The id is derived from `key` (an operation id, or
 * a resource that has the event once) and the event type when there is one: a re-sent copy then
 * carries the same id, and JetStream's duplicate window drops it.
 */
function envelope(
  priority: Priority,
  eventType: string,
  publisherId: string,
  payload: Record<string, unknown>,
  key: string | undefined,
): { messageId: string; body: Uint8Array } {
  const messageId = key ? derivedId("notification", key, eventType) : randomUUID();
  const json = Notification.toJSON({ messageId, eventType, publisherId, priority, timestamp: new Date(), payload });
  return { messageId, body: encoder.encode(JSON.stringify(json)) };
}

/** A notifier publishing through JetStream, so every notification is captured for replay. */
export function createNotifier(bus: Bus): Notifier {
  return {
    async notify(priority, eventType, publisherId, payload, key) {
      const { messageId, body } = envelope(priority, eventType, publisherId, payload, key);
      const headers = activeTraceHeaders();
      await bus.js.publish(bus.subjects.notification(priority, eventType), body, {
        msgID: messageId,
        ...(headers ? { headers } : {}),
      });
    },
  };
}

/**
 * The publishers Cinder's api names for its types notifications (`rpc.get_notifier('volumeType')`
 * in types_manage.py, 'volumeTypeExtraSpecs', 'QoSSpecs'), by the event type's first word.
 */
const CINDER_PUBLISHERS: Record<string, string> = {
  volume_type: "volumeType",
  volume_type_extra_specs: "volumeTypeExtraSpecs",
  qos_specs: "QoSSpecs",
};

/**
 * Notifications written into the transactional outbox: the relay publishes them once (and only
 * if) the transaction that made the change commits. Published as `<publisher>.<hostName>`, the
 * publisher being the event type's first word (`volume.attach.start` → `volume.api`) or, for
 * volume types and QoS specs, the name Cinder gives it (`volume_type.create` → `volumeType.api`).
 */
export function createOutboxAnnouncer(subjects: Subjects, hostName: string): OutboxAnnouncer {
  function message(
    priority: Priority,
    eventType: string,
    payload: Record<string, unknown>,
    key?: string,
  ): OutboxMessage {
    const resource = eventType.split(".")[0] ?? eventType;
    const publisherId = `${CINDER_PUBLISHERS[resource] ?? resource}.${hostName}`;
    const { messageId, body } = envelope(priority, eventType, publisherId, payload, key);
    return {
      subject: subjects.notification(priority, eventType),
      msgId: messageId,
      payload: body,
      traceContext: traceCarrier(),
    };
  }
  return {
    message,
    async announce(
      tx: Executor,
      priority: Priority,
      eventType: string,
      payload: Record<string, unknown>,
      key?: string,
    ) {
      await enqueueOutbox(tx, message(priority, eventType, payload, key));
    },
  };
}

/** An {@link Announcer} that can also hand out the outbox message, for a caller writing many at once. */
export interface OutboxAnnouncer extends Announcer {
  message(priority: Priority, eventType: string, payload: Record<string, unknown>, key?: string): OutboxMessage;
}
