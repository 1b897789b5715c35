import type { Executor } from "@cinderblock/db";
import type { SchedulerCreateSnapshot, SchedulerCreateVolume } from "@cinderblock/proto";

/**
 * Sends casts to the scheduler. Implementations write them into the transactional outbox through
 * `tx`, so a cast exists if and only if the transaction that created its resource commits.
 */
export interface SchedulerDispatcher {
  createSnapshot(tx: Executor, cast: SchedulerCreateSnapshot, attempt: number): Promise<void>;
  createVolume(tx: Executor, cast: SchedulerCreateVolume, attempt: number): Promise<void>;
}

/** A subscription to "this resource changed" signals. */
export interface ChangeSubscription extends AsyncIterable<void> {
  close(): void;
}

/** Tells watchers that a resource changed; they re-read it from the database. */
export interface ChangeFeed {
  subscribe(kind: "snapshot" | "volume", id: string): ChangeSubscription;
}
