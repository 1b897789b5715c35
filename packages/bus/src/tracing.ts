import { type Context, contextFrom, traceCarrier, withSpan } from "@cinderblock/telemetry";
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers, type MsgHdrs } from "@nats-io/transport-node";

/** NATS headers carrying a W3C trace context, or undefined when there is none. */
function traceHeaders(carrier: Record<string, string> | undefined): MsgHdrs | undefined {
  if (!carrier) return undefined;
  const h = headers();
  for (const [key, value] of Object.entries(carrier)) h.set(key, value);
  return h;
}

/**
 * Publishes a cast to JetStream in a PRODUCER span (child of `parent`, default the active context)
 * whose context travels in the message's `traceparent` header. Without tracing, a `stored` context
 * (an outbox row's) is passed on as it is, so a trace survives a relay that does not trace.
 */
export function publishTraced(
  js: JetStreamClient,
  subject: string,
  payload: Uint8Array,
  msgId: string,
  parent?: { context: Context; stored: Record<string, string> | undefined },
): Promise<void> {
  return withSpan(
    `publish ${subject}`,
    {
      kind: "producer",
      ...(parent ? { parent: parent.context } : {}),
      attributes: { "messaging.system": "nats", "messaging.destination.name": subject, "messaging.message.id": msgId },
    },
    async () => {
      const hdrs = traceHeaders(traceCarrier() ?? parent?.stored);
      await js.publish(subject, payload, { msgID: msgId, ...(hdrs ? { headers: hdrs } : {}) });
    },
  );
}

/** Headers carrying the active trace context (for a notification), or undefined without one. */
export function activeTraceHeaders(): MsgHdrs | undefined {
  return traceHeaders(traceCarrier());
}

/**
 * The trace context a message's headers carry (the root context when none or tracing is off).
 * NOTE: takes the message, not its headers: reading `headers` parses them, which only tracing needs.
 */
export function messageContext(msg: { readonly headers?: MsgHdrs | undefined }): Context {
  return contextFrom((key) => msg.headers?.get(key) || undefined);
}

/** The context an outbox row stored (the root context when none or tracing is off). */
export function storedContext(carrier: Record<string, string> | undefined): Context {
  return contextFrom((key) => carrier?.[key]);
}
