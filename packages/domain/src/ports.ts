import type { Executor, OutboxMessage } from "@cinderblock/db";
import type {
  SchedulerCreateSnapshot,
  SchedulerCreateVolume,
  SchedulerRetypeVolume,
  VolumeDeleteSnapshot,
  VolumeDeleteVolume,
  VolumeExtendVolume,
  VolumeRevertToSnapshot,
} from "@cinderblock/proto";

/** A create for the scheduler; `failedPlacements` only when the volume's backends failed it before. */
export type SchedulerCreateVolumeCast = Omit<SchedulerCreateVolume, "failedPlacements"> &
  Partial<Pick<SchedulerCreateVolume, "failedPlacements">>;

/**
 * Sends casts: creates to the scheduler, deletes straight to the volume's host (as Cinder does).
 * Implementations write them into the transactional outbox through `tx`, so a cast exists if and
 * only if the transaction that changed its resource commits. `attempt` numbers re-dispatches.
 */
export interface Dispatcher {
  createSnapshot(tx: Executor, cast: SchedulerCreateSnapshot, attempt: number): Promise<void>;
  /** The outbox message `createSnapshot` writes, for a caller that writes it in its own statement. */
  createSnapshotMessage(cast: SchedulerCreateSnapshot, attempt: number): OutboxMessage;
  createVolume(tx: Executor, cast: SchedulerCreateVolumeCast, attempt: number): Promise<void>;
  /** A retype goes to the scheduler, which decides in place or migrate (as Cinder's). */
  retypeVolume(tx: Executor, cast: SchedulerRetypeVolume, attempt: number): Promise<void>;
  /** `host` is the volume's backend, "<host>@<backend>". */
  deleteSnapshot(tx: Executor, host: string, cast: VolumeDeleteSnapshot, attempt: number): Promise<void>;
  deleteVolume(tx: Executor, host: string, cast: VolumeDeleteVolume, attempt: number): Promise<void>;
  extendVolume(tx: Executor, host: string, cast: VolumeExtendVolume, attempt: number): Promise<void>;
  revertToSnapshot(tx: Executor, host: string, cast: VolumeRevertToSnapshot, attempt: number): Promise<void>;
}

/**
 * Sends Cinder-style notifications from a transaction: implementations write them into the
 * transactional outbox through `tx`, so a notification is published if and only if the change it
 * reports commits. With a `key` (the operation it ends, or the resource when it can happen only
 * once) the message id is derived from the key and the event type, so a re-sent copy is dropped
 * by JetStream's duplicate window; without one it is random.
 */
export interface Announcer {
  announce(
    tx: Executor,
    priority: "INFO" | "ERROR",
    eventType: string,
    payload: Record<string, unknown>,
    key?: string,
  ): Promise<void>;
}

/** A notification as published (the proto3 JSON form of cinderblock.v1.Notification). */
export interface EventJson {
  messageId: string;
  eventType: string;
  publisherId: string;
  priority: string;
  timestamp: string;
  payload: Record<string, unknown>;
}

/** A notification with its place in the notifications stream (the sequence a reader resumes from). */
export interface SequencedEvent {
  sequence: number;
  event: EventJson;
}

/** What {@link EventFeed.subscribe} is asked for. */
export interface EventSubscribeOptions {
  /**
   * Replay from this stream sequence, then go on live; undefined: only what is published from now
   * on. The replay goes at the reader's pace; only live events can overflow the buffer.
   */
  startSequence?: number | undefined;
  /** Whether the reader wants an event: only those are buffered (and count against the bounds). */
  accept(event: EventJson): boolean;
  /** At most this many events are held for a reader that reads more slowly than they come. */
  maxBufferedMessages: number;
  /** At most this many bytes (of the events as published) are held for it. */
  maxBufferedBytes: number;
  /** Called the moment the reader falls behind (it may be suspended, not waiting on the iterator). */
  onFellBehind?(error: ReaderFellBehindError): void;
}

/**
 * A subscription to notifications. Its iterator throws {@link ReaderFellBehindError} as soon as
 * the bounds are passed (even while nobody is waiting on it, a pending `next()` rejects), having
 * dropped what it held.
 */
export interface EventSubscription extends AsyncIterable<SequencedEvent> {
  close(): void;
}

/** Every notification as it is published (and, from a sequence, as it was). */
export interface EventFeed {
  /**
   * Rejects with {@link EventSequenceError} when `startSequence` is no longer retained or is past
   * the next one to be published.
   */
  subscribe(options: EventSubscribeOptions): Promise<EventSubscription>;
}

/** A subscription's reader fell behind: its buffer would have passed `limit`. */
export class ReaderFellBehindError extends Error {
  constructor(
    /** The first event the reader did not get: where to resume. */
    readonly resumeSequence: number,
    /** Which bound was passed, e.g. "1000 messages". */
    readonly limit: string,
  ) {
    super(`reader fell behind (more than ${limit} buffered); resume from sequence ${resumeSequence}`);
    this.name = "ReaderFellBehindError";
  }
}

/** A start sequence the feed cannot start from: `retained` is the range it can. */
export class EventSequenceError extends Error {
  constructor(
    readonly sequence: number,
    readonly retained: { first: number; next: number },
  ) {
    super(`sequence ${sequence} is outside ${retained.first}..${retained.next}`);
    this.name = "EventSequenceError";
  }
}

/** A subscription to "this resource changed" signals. */
export interface ChangeSubscription extends AsyncIterable<void> {
  close(): void;
}

/**
 * Tells watchers that a resource changed; they re-read it from the database. Only a signal makes
 * a watcher read: whoever changes a watched row (after its commit) calls {@link ChangeFeed.publish}.
 */
export interface ChangeFeed {
  subscribe(kind: "snapshot" | "volume", id: string): ChangeSubscription;
  /** Signals the watchers of a resource whose row changed (call after the commit; fire and forget). */
  publish(kind: "snapshot" | "volume", id: string): void;
}

/** Connection info for an attach, as a volume host's driver gives it. */
export interface HostConnection {
  driverVolumeType: string;
  data: Record<string, string>;
}

/** What a backend holds that no row owns (a driver's ManageableSnapshot). */
export interface HostManageable {
  reference: string;
  sourceVolumeId: string;
  sizeGb: number;
  safeToManage: boolean;
  reasonNotSafe: string;
}

/** The caller's identity, passed along to the volume host. */
type CallContext = { requestId: string; projectId: string; userId: string; roles: string[]; isAdmin?: boolean };

/** Calls to volume hosts that need an answer at once (their internal gRPC server at `address`). */
export interface VolumeHostCalls {
  listManageableSnapshots(
    address: string,
    ctx: CallContext,
    backend: string,
    ownedSnapshotIds: string[],
  ): Promise<HostManageable[]>;
  manageSnapshot(
    address: string,
    ctx: CallContext,
    snapshotId: string,
    volumeId: string,
    reference: string,
  ): Promise<{ sizeGb: number }>;
  unmanageSnapshot(address: string, ctx: CallContext, snapshotId: string, volumeId: string): Promise<void>;
  initializeConnection(
    address: string,
    ctx: { requestId: string; projectId: string; userId: string; roles: string[] },
    volumeId: string,
    connector: Record<string, string>,
  ): Promise<HostConnection>;
  terminateConnection(
    address: string,
    ctx: { requestId: string; projectId: string; userId: string; roles: string[] },
    volumeId: string,
    connector: Record<string, string>,
  ): Promise<void>;
}

/** The compute agents that freeze and thaw an instance's file systems. */
export interface ComputeAgents {
  /** Asks the instance's agent to freeze; true once it confirms, false when it does not answer in time. */
  quiesce(instanceId: string): Promise<boolean>;
  /** Asks it to thaw (always sent after a quiesce, whatever happened in between). */
  unquiesce(instanceId: string): Promise<void>;
}
