import {
  type EventFeed,
  type EventJson,
  EventSequenceError,
  type EventSubscribeOptions,
  type EventSubscription,
  ReaderFellBehindError,
  type SequencedEvent,
} from "@cinderblock/domain";
import { DeliverPolicy } from "@nats-io/jetstream";
import type { Bus } from "./connection.js";
import { streamBufferedBytes, streamBufferedBytesPeak, streamOverflows } from "./metrics.js";

/** Messages an ordered consumer pulls ahead of the pump (held by nats.js, on top of the buffer). */
const PREFETCH_MESSAGES = 64;

interface Held {
  item: SequencedEvent;
  bytes: number;
}

/**
 * Every notification from the notifications stream, each with its stream sequence: one ordered
 * consumer per subscription, starting after the stream's last message (or at `startSequence`).
 *
 * What a subscription holds for its reader is bounded (messages and bytes). Events up to the
 * stream's end at subscribe time (a replay) are pulled at the reader's pace; live ones are taken as
 * they come, and one that would pass a bound ends the subscription with
 * {@link ReaderFellBehindError}, dropping what it held (the reader resumes from the first event it
 * did not get).
 */
export function createEventFeed(bus: Bus): EventFeed {
  const stream = bus.subjects.notificationsStream;
  let peak = 0;
  return {
    async subscribe(options: EventSubscribeOptions): Promise<EventSubscription> {
      const state = (await bus.jsm.streams.info(stream)).state;
      const next = state.last_seq + 1;
      const first = Math.max(state.first_seq, 1);
      const start = options.startSequence ?? next;
      if (start > next || start < Math.min(first, next)) {
        throw new EventSequenceError(start, { first: Math.min(first, next), next });
      }
      // Events already in the stream are a replay, read at the reader's pace.
      const replayThrough = state.last_seq;
      // NOTE: no filter: the stream holds only notifications (and the create subject stays simple
      // for deploy/nats/nats-server.conf to allow).
      const consumer = await bus.js.consumers.get(stream, {
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: start,
      });
      const messages = await consumer.consume({ max_messages: PREFETCH_MESSAGES });

      const held: Held[] = [];
      let heldBytes = 0;
      /** Why the subscription ended early: the reader fell behind, or the consumer broke. */
      let failure: unknown;
      let closed = false;
      let wakeReader: (() => void) | undefined;
      let wakePump: (() => void) | undefined;

      const release = (bytes: number) => {
        heldBytes -= bytes;
        streamBufferedBytes.dec(bytes);
      };
      const hold = (entry: Held) => {
        held.push(entry);
        heldBytes += entry.bytes;
        streamBufferedBytes.inc(entry.bytes);
        if (heldBytes > peak) {
          peak = heldBytes;
          streamBufferedBytesPeak.set(peak);
        }
        wakeReader?.();
      };
      const fits = (bytes: number) =>
        held.length < options.maxBufferedMessages && heldBytes + bytes <= options.maxBufferedBytes;
      const dropAll = () => {
        release(heldBytes);
        held.length = 0;
      };
      const close = () => {
        if (closed) return;
        closed = true;
        dropAll();
        void messages.close().catch(() => {});
        wakeReader?.();
        wakePump?.();
      };
      const overflow = (sequence: number) => {
        const limit =
          held.length >= options.maxBufferedMessages
            ? `${options.maxBufferedMessages} messages`
            : `${options.maxBufferedBytes} bytes`;
        const error = new ReaderFellBehindError(held[0]?.item.sequence ?? sequence, limit);
        failure = error;
        streamOverflows.inc();
        close();
        options.onFellBehind?.(error);
      };

      void (async () => {
        for await (const m of messages) {
          if (closed) break;
          let event: EventJson;
          try {
            event = m.json<EventJson>();
          } catch {
            continue; // Not one of ours (not JSON): skip it.
          }
          if (!options.accept(event)) continue;
          const entry = { item: { sequence: m.seq, event }, bytes: m.data.length };
          if (m.seq <= replayThrough) {
            // A replay waits for room (the consumer then stops pulling: nothing piles up).
            while (!closed && held.length > 0 && !fits(entry.bytes)) {
              await new Promise<void>((resolve) => (wakePump = resolve));
              wakePump = undefined;
            }
          } else if (!fits(entry.bytes)) {
            overflow(m.seq);
            break;
          }
          if (closed) break;
          hold(entry);
        }
      })().catch((error: unknown) => {
        failure ??= error;
        close();
      });

      return {
        close,
        async *[Symbol.asyncIterator]() {
          while (true) {
            const entry = held.shift();
            if (entry) {
              release(entry.bytes);
              wakePump?.();
              yield entry.item;
              continue;
            }
            if (failure) throw failure;
            if (closed) return;
            await new Promise<void>((resolve) => (wakeReader = resolve));
            wakeReader = undefined;
          }
        },
      };
    },
  };
}
