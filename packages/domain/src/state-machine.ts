import { createHash } from "node:crypto";
import type { SnapshotStatus, VolumeRow, VolumeStatus } from "@cinderblock/db";
import { CinderblockError } from "./errors.js";

/**
 * The state machine of volumes, snapshots, group snapshots and attachments, in one place: every
 * status, every transition (operation, from → to, who makes it) and which operations may not run
 * at the same time on the same volume or snapshot. The api, the scheduler, the volume host and the
 * reconciler take their compare-and-swap from/to sets from here; a status change that is not in
 * these tables is a bug. After Cinder's `volume/api.py` checks and its `objects/fields.py` statuses.
 */

/** Every volume status, as stored (Cinder's spelling). */
export const VOLUME_STATUSES = [
  "creating",
  "available",
  "in-use",
  "error",
  "deleting",
  "error_deleting",
  "maintenance",
  "attaching",
  "detaching",
  "extending",
  "reserved",
  "reverting",
  "error_extending",
  "retyping",
  "deleted",
] as const satisfies readonly VolumeStatus[];

/** Every snapshot status, as stored. */
export const SNAPSHOT_STATUSES = [
  "creating",
  "available",
  "error",
  "deleting",
  "error_deleting",
  "restoring",
  "unmanaging",
  "backing-up",
  "deleted",
] as const satisfies readonly SnapshotStatus[];

/** Every group snapshot status, as stored. */
export const GROUP_SNAPSHOT_STATUSES = [
  "creating",
  "available",
  "error",
  "deleting",
  "error_deleting",
  "deleted",
] as const;
export type GroupSnapshotStatus = (typeof GROUP_SNAPSHOT_STATUSES)[number];

/** Every attachment status (`attach_status`), as stored. */
export const ATTACHMENT_STATUSES = ["attaching", "attached"] as const;

/** Who makes a transition. */
export type Actor = "api" | "scheduler" | "volume" | "reconciler" | "admin";

/** One transition: from any of `from` to `to`, made by `by`. */
export interface Transition<S extends string> {
  from: readonly S[];
  to: S;
  by: readonly Actor[];
}

/** An operation's transitions: how it starts, and how it may end. */
interface OperationStates<S extends string> {
  /** Made by the api when it accepts the operation (absent: the row is inserted in `to`). */
  start: Transition<S>;
  done: Transition<S>;
  failed: Transition<S>;
  /** A delete the backend refused because others depend on the resource: back to where it was. */
  busy?: Transition<S>;
  /**
   * A create its backend failed, handed back to the scheduler to place elsewhere (Cinder's
   * reschedule): the status stays, the backend is cleared.
   */
  rescheduled?: Transition<S>;
}

const t = <S extends string>(from: readonly S[], to: S, ...by: Actor[]): Transition<S> => ({ from, to, by });

/** Statuses a user may delete a volume or a snapshot from (Cinder: available, error, error_deleting). */
const VOLUME_DELETABLE = ["available", "error", "error_deleting"] as const satisfies readonly VolumeStatus[];
const SNAPSHOT_DELETABLE = ["available", "error", "error_deleting"] as const satisfies readonly SnapshotStatus[];

/** Volume operations. */
export const VOLUME_OPERATIONS = {
  create: {
    start: t([], "creating", "api"),
    done: t(["creating"], "available", "volume"),
    failed: t(["creating"], "error", "scheduler", "volume", "reconciler"),
    rescheduled: t(["creating"], "creating", "volume"),
  },
  delete: {
    start: t(VOLUME_DELETABLE, "deleting", "api"),
    done: t(["deleting"], "deleted", "volume", "api"),
    failed: t(["deleting"], "error_deleting", "volume", "reconciler"),
  },
  /**
   * An admin's force delete (Cinder's os-force_delete): from any status but the attached ones
   * (in-use, attaching, detaching), retyping (a migration) and deleting; the use case also
   * refuses a volume with attachments or an operation still in flight, so nothing is left stuck.
   */
  forceDelete: {
    start: t(
      VOLUME_STATUSES.filter(
        (s) => !(["in-use", "attaching", "detaching", "retyping", "deleting", "deleted"] as string[]).includes(s),
      ),
      "deleting",
      "admin",
    ),
    done: t(["deleting"], "deleted", "volume", "api"),
    failed: t(["deleting"], "error_deleting", "volume", "reconciler"),
  },
  extend: {
    // An in-use volume too (Cinder 3.42); done goes back to what it was: available, or in-use when
    // attachments remain (none can come or go while it is extending: see attach and detach).
    start: t(["available", "in-use"], "extending", "api"),
    done: t(["extending"], "available", "volume"),
    failed: t(["extending"], "error_extending", "volume", "reconciler"),
  },
  /** The end of an extend of an attached volume. */
  extendAttached: {
    start: t(["in-use"], "extending", "api"),
    done: t(["extending"], "in-use", "volume"),
    failed: t(["extending"], "error_extending", "volume", "reconciler"),
  },
  revert: {
    start: t(["available"], "reverting", "api"),
    done: t(["reverting"], "available", "volume"),
    failed: t(["reverting"], "error", "volume", "reconciler"),
  },
  /**
   * Cinder's retype (in place, or by migrating to another backend): from available, or in-use
   * for an in-place retype; done and failed both go back to the status it came from (the
   * operation's `previousStatus`), with the new type or the old one.
   */
  retype: {
    start: t(["available", "in-use"], "retyping", "api"),
    done: t(["retyping"], "available", "volume"),
    failed: t(["retyping"], "available", "scheduler", "volume", "reconciler"),
  },
  attach: {
    // A multiattach volume may also be attached while in-use; a failed attach goes back to where it was.
    start: t(["available", "in-use"], "attaching", "api"),
    done: t(["attaching"], "in-use", "api"),
    failed: t(["attaching"], "available", "api", "reconciler"),
  },
  detach: {
    // done: available when no attachment remains, else in-use.
    start: t(["in-use"], "detaching", "api"),
    done: t(["detaching"], "available", "api"),
    failed: t(["detaching"], "in-use", "api", "reconciler"),
  },
} as const satisfies Record<string, OperationStates<VolumeStatus>>;

/** Snapshot operations. */
export const SNAPSHOT_OPERATIONS = {
  create: {
    start: t([], "creating", "api"),
    done: t(["creating"], "available", "volume"),
    failed: t(["creating"], "error", "scheduler", "volume", "reconciler"),
  },
  delete: {
    start: t(SNAPSHOT_DELETABLE, "deleting", "api"),
    done: t(["deleting"], "deleted", "volume"),
    failed: t(["deleting"], "error_deleting", "volume", "reconciler"),
    busy: t(["deleting"], "available", "volume"),
  },
  /** An admin's force delete: from any status but deleting. */
  forceDelete: {
    start: t(
      SNAPSHOT_STATUSES.filter((s) => s !== "deleting" && s !== "deleted"),
      "deleting",
      "admin",
    ),
    done: t(["deleting"], "deleted", "volume"),
    failed: t(["deleting"], "error_deleting", "volume", "reconciler"),
  },
  /** The snapshot a volume is reverted to. */
  revert: {
    start: t(["available"], "restoring", "api"),
    done: t(["restoring"], "available", "volume"),
    failed: t(["restoring"], "available", "volume", "reconciler"),
  },
  /** Taking over a snapshot the backend has (manage_existing); a failure removes the row again. */
  manage: {
    start: t([], "creating", "api"),
    done: t(["creating"], "available", "api"),
    failed: t(["creating"], "deleting", "api", "reconciler"),
  },
  /** A failed unmanage goes back to where it was (available or error). */
  unmanage: {
    start: t(["available", "error"], "unmanaging", "api"),
    done: t(["unmanaging"], "deleted", "api"),
    failed: t(["unmanaging"], "available", "api", "reconciler"),
  },
} as const satisfies Record<string, OperationStates<SnapshotStatus>>;

/** Group snapshot operations (a group is decided by its members: see groups.ts). */
export const GROUP_SNAPSHOT_OPERATIONS = {
  create: {
    start: t([], "creating", "api"),
    done: t(["creating"], "available", "volume", "api"),
    failed: t(["creating"], "error", "volume", "api", "reconciler"),
  },
  delete: {
    start: t(["available", "error", "error_deleting"], "deleting", "api"),
    done: t(["deleting"], "deleted", "volume", "api"),
    failed: t(["deleting"], "error_deleting", "volume", "reconciler"),
  },
} as const satisfies Record<string, OperationStates<GroupSnapshotStatus>>;

/** Snapshot statuses that end a WatchSnapshot stream (nothing will change them on its own). */
export const TERMINAL_SNAPSHOT_STATUSES: readonly SnapshotStatus[] = [
  "available",
  "error",
  "deleted",
  "error_deleting",
];

/** Volume statuses no operation will move on its own. */
export const TERMINAL_VOLUME_STATUSES: readonly VolumeStatus[] = [
  "available",
  "in-use",
  "error",
  "error_deleting",
  "deleted",
];

/** Statuses an operation is under way in: the reconciler owns a row in one of them past its deadline. */
export const TRANSITIONAL_VOLUME_STATUSES: readonly VolumeStatus[] = VOLUME_STATUSES.filter(
  (s) => !TERMINAL_VOLUME_STATUSES.includes(s) && s !== "maintenance" && s !== "error_extending",
);
export const TRANSITIONAL_SNAPSHOT_STATUSES: readonly SnapshotStatus[] = SNAPSHOT_STATUSES.filter(
  (s) => !TERMINAL_SNAPSHOT_STATUSES.includes(s),
);

/** A list of statuses as a refusal names them: "available, error or error_deleting". */
export function statusList(statuses: readonly string[]): string {
  return statuses.length <= 1
    ? (statuses[0] ?? "")
    : `${statuses.slice(0, -1).join(", ")} or ${statuses[statuses.length - 1]}`;
}

/** What else is going on around a volume, read under its row lock. */
export interface VolumeActivity {
  /** The volume's live snapshots. */
  snapshots: readonly { id: string; status: SnapshotStatus }[];
  /** Volumes being created from one of those snapshots (status `creating`). */
  clones: readonly { id: string; snapshotId: string }[];
  /** Volumes being cloned from the volume itself (status `creating`); absent: none. */
  copies?: readonly { id: string }[];
}

/** Operations that must not overlap another on the same volume or snapshot. */
export type GuardedOperation =
  | "volume.extend"
  | "volume.revert"
  | "volume.retype"
  | "volume.delete"
  | "snapshot.delete"
  | "snapshot.create";

/**
 * Which operations in progress forbid each guarded operation (Cinder forbids the same; where it
 * relies on a lock in the volume manager, we refuse up front instead):
 * - a snapshot being created forbids extending the volume (the copy would be of the larger
 *   volume), reverting it and deleting it;
 * - a snapshot being deleted or restored forbids deleting the volume (a cascade only takes
 *   snapshots it can delete now);
 * - a volume being created from a snapshot forbids deleting that snapshot, and so deleting its
 *   volume with cascade;
 * - a volume being cloned from the volume forbids deleting, extending and reverting it (the clone
 *   reads it).
 */
const CONFLICTS: Record<
  GuardedOperation,
  { snapshotStatuses: readonly SnapshotStatus[]; clones: boolean; copies: boolean; verb: string }
> = {
  "volume.extend": { snapshotStatuses: ["creating", "restoring"], clones: false, copies: true, verb: "extended" },
  "volume.revert": { snapshotStatuses: ["creating", "restoring"], clones: false, copies: true, verb: "reverted" },
  "volume.retype": { snapshotStatuses: ["creating", "restoring"], clones: true, copies: true, verb: "retyped" },
  "volume.delete": {
    snapshotStatuses: ["creating", "deleting", "restoring", "unmanaging", "backing-up"],
    clones: true,
    copies: true,
    verb: "deleted",
  },
  "snapshot.delete": { snapshotStatuses: [], clones: true, copies: false, verb: "deleted" },
  "snapshot.create": { snapshotStatuses: [], clones: false, copies: false, verb: "snapshotted" },
};

/** What a snapshot status means as an operation in progress, for refusals. */
const SNAPSHOT_OPERATION_NAMES: Partial<Record<SnapshotStatus, string>> = {
  creating: "being created",
  deleting: "being deleted",
  restoring: "being restored to its volume",
  unmanaging: "being unmanaged",
  "backing-up": "being backed up",
};

/**
 * Throws FAILED_PRECONDITION naming the operation in progress when `operation` on `resource`
 * conflicts with it. `activity` must have been read with the volume's row locked (FOR UPDATE), so
 * nothing can start in between. For `snapshot.delete`, only clones of `snapshotId` count.
 */
export function assertNoConflict(
  operation: GuardedOperation,
  resource: string,
  activity: VolumeActivity,
  snapshotId?: string,
): void {
  const rule = CONFLICTS[operation];
  const busy = activity.snapshots.find((s) => rule.snapshotStatuses.includes(s.status));
  if (busy) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `${resource} cannot be ${rule.verb} now: its snapshot ${busy.id} is ${SNAPSHOT_OPERATION_NAMES[busy.status] ?? busy.status}`,
    );
  }
  const copy = rule.copies ? activity.copies?.[0] : undefined;
  if (copy) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `${resource} cannot be ${rule.verb} now: volume ${copy.id} is being cloned from it`,
    );
  }
  if (!rule.clones) return;
  const clone = activity.clones.find((c) => snapshotId === undefined || c.snapshotId === snapshotId);
  if (clone) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `${resource} cannot be ${rule.verb} now: volume ${clone.id} is being created from snapshot ${clone.snapshotId}`,
    );
  }
}

/**
 * A deterministic UUID (version 5 layout, SHA-1) for `parts`: the same operation and event always
 * get the same id, so a re-sent notification or cast is dropped by JetStream's duplicate window,
 * and a cascade's per-snapshot operations can be found from the volume's.
 */
export function derivedId(...parts: string[]): string {
  const bytes = createHash("sha1").update(parts.join("\u0000")).digest().subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The operation id of one snapshot's delete inside a volume's cascade. */
export function cascadedDeleteId(volumeOperationId: string, snapshotId: string): string {
  return derivedId("cascade", volumeOperationId, snapshotId);
}

/** Migration statuses that mean a migration is under way (Cinder: anything but none/success/error). */
export function isMigrating(volume: Pick<VolumeRow, "migrationStatus">): boolean {
  const m = volume.migrationStatus;
  return m !== null && m !== "" && m !== "success" && m !== "error";
}

/**
 * Cinder's checks before snapshotting a volume (`volume/api.py` `_create_snapshot`, microversion
 * 3.66): not in maintenance, not migrating, not in error; `available` or `in-use` (an attached
 * volume no longer needs `force`, which is still accepted and changes nothing).
 * Throws FAILED_PRECONDITION naming the status that forbids it.
 */
export function assertVolumeSnapshottable(volume: Pick<VolumeRow, "id" | "status" | "migrationStatus">): void {
  if (volume.status === "maintenance") {
    throw new CinderblockError("FAILED_PRECONDITION", `volume ${volume.id} is in maintenance`);
  }
  if (isMigrating(volume)) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `volume ${volume.id} is migrating (migration_status ${volume.migrationStatus})`,
    );
  }
  if (volume.status === "available" || volume.status === "in-use") return;
  throw new CinderblockError(
    "FAILED_PRECONDITION",
    `volume ${volume.id} status must be available or in-use, but is ${volume.status}`,
  );
}
