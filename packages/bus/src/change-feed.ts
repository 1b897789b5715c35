import type { ChangeFeed, ChangeSubscription, EventFeed, EventJson, EventSubscription } from "@cinderblock/domain";
import type { Bus } from "./connection.js";

/** Options for {@link createChangeFeed}. */
export interface ChangeFeedOptions {
  /**
   * A watcher also wakes this often without a signal: change signals are core NATS (at most once),
   * so a lost one costs at most this long, never a stuck stream.
   */
  fallbackIntervalMs?: number;
}

/** Watches "resource changed" signals published by {@link publishChange}. */
export function createChangeFeed(bus: Bus, options: ChangeFeedOptions = {}): ChangeFeed {
  const fallbackMs = options.fallbackIntervalMs ?? 2000;
  return {
    subscribe(kind, id): ChangeSubscription {
      const sub = bus.nc.subscribe(bus.subjects.change(kind, id));
      let wake: (() => void) | undefined;
      let pending = false;
      let closed = false;
      const signal = () => {
        pending = true;
        wake?.();
      };
      const timer = setInterval(signal, fallbackMs);
      void (async () => {
        for await (const _ of sub) signal();
      })();
      const close = () => {
        if (closed) return;
        closed = true;
        clearInterval(timer);
        sub.unsubscribe();
        wake?.();
      };
      return {
        close,
        async *[Symbol.asyncIterator]() {
          while (!closed) {
            if (!pending) await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            if (closed) return;
            pending = false;
            yield;
          }
        },
      };
    },
  };
}

/** Signals watchers of a resource that its row changed (fire and forget, core NATS). */
export function publishChange(bus: Bus, kind: "snapshot" | "volume", id: string): void {
  bus.nc.publish(bus.subjects.change(kind, id));
}

/**
 * Every notification as it is published (core NATS on the notification subjects: a live view;
 * the notifications stream is there for replay).
 */
export function createEventFeed(bus: Bus): EventFeed {
  return {
    subscribe(): EventSubscription {
      const sub = bus.nc.subscribe(bus.subjects.notificationsAll);
      return {
        close: () => sub.unsubscribe(),
        async *[Symbol.asyncIterator]() {
          for await (const msg of sub) {
            try {
              yield msg.json<EventJson>();
            } catch {
              // Not one of ours (not JSON): skip it.
            }
          }
        },
      };
    },
  };
}
