import { type Db, type Tx, transaction } from "@cinderblock/db";
import type { Announcer } from "@cinderblock/domain";
import { publishChange } from "./change-feed.js";
import type { Bus } from "./connection.js";

/** What an outcome's transaction may do besides its status changes. */
export interface OutcomeWrites {
  /**
   * Writes a notification into the outbox, its message id derived from `key` (the operation, or a
   * resource that has this event once) and the event type, so a re-sent copy is a duplicate.
   */
  announce(priority: "INFO" | "ERROR", eventType: string, payload: Record<string, unknown>, key: string): Promise<void>;
  /** Marks a resource changed: its watchers are told after the commit. */
  changed(kind: "snapshot" | "volume", id: string): void;
}

/**
 * THE way a service records what an operation came to: the status changes, the operation's end
 * and its notifications in one transaction; after the commit, and only then, the relay is kicked
 * (when something was announced) and the watchers of every changed resource are told. Resolves
 * with what `change` returned.
 */
export type OutcomeRecorder = <T>(change: (tx: Tx, outcome: OutcomeWrites) => Promise<T>) => Promise<T>;

/** Builds the {@link OutcomeRecorder} of a service (the volume host, the scheduler). */
export function createOutcomeRecorder(deps: {
  db: Db;
  bus: Bus;
  /** Writes the notifications into the outbox (their message ids from the key). */
  announcer: Announcer;
  /** Called after a transaction that wrote to the outbox committed (kicks the relay). */
  onCommitted(): void;
}): OutcomeRecorder {
  return async (change) => {
    let announced = 0;
    let changed: Array<["snapshot" | "volume", string]> = [];
    const result = await transaction(deps.db, async (tx) => {
      // NOTE: reset here: a transaction re-run after a serialization failure starts over.
      announced = 0;
      changed = [];
      return change(tx, {
        async announce(priority, eventType, payload, key) {
          announced++;
          await deps.announcer.announce(tx, priority, eventType, payload, key);
        },
        changed(kind, id) {
          changed.push([kind, id]);
        },
      });
    });
    if (announced > 0) deps.onCommitted();
    for (const [kind, id] of changed) publishChange(deps.bus, kind, id);
    return result;
  };
}
