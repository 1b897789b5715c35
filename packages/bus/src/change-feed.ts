import type { ChangeFeed, ChangeSubscription } from "@cinderblock/domain";
import type { Bus } from "./connection.js";

/**
 * Watches "resource changed" signals published by {@link publishChange}: a watcher wakes only on a
 * signal, so an idle one costs nothing. NOTE: change signals are core NATS (at most once), and a
 * connection loses them only while it is down: after each reconnect every watcher wakes once and
 * re-reads its row, so none stays stuck on a change it missed.
 */
export function createChangeFeed(bus: Bus): ChangeFeed {
  const watchers = new Set<() => void>();
  void (async () => {
    for await (const s of bus.nc.status()) if (s.type === "reconnect") for (const wake of watchers) wake();
  })();
  return {
    publish: (kind, id) => publishChange(bus, kind, id),
    subscribe(kind, id): ChangeSubscription {
      const sub = bus.nc.subscribe(bus.subjects.change(kind, id));
      let wake: (() => void) | undefined;
      let pending = false;
      let closed = false;
      const signal = () => {
        pending = true;
        wake?.();
      };
      watchers.add(signal);
      void (async () => {
        for await (const _ of sub) signal();
      })();
      const close = () => {
        if (closed) return;
        closed = true;
        watchers.delete(signal);
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
