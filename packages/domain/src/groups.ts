import { randomUUID } from "node:crypto";
import {
  type Db,
  type Executor,
  type GroupSnapshotRow,
  getGroupSnapshot,
  getGroupSnapshotByClientRequest,
  getVolumeActivity,
  getVolumeElevated,
  insertGroupSnapshot,
  insertOperation,
  listGroupMembers,
  listGroupSnapshots,
  listMembersOfGroups,
  type SnapshotRow,
  transaction,
  updateGroupSnapshotStatus,
  updateSnapshotStatus,
} from "@cinderblock/db";
import { type RequestContext, throwIfGivenUp } from "./context.js";
import { CinderblockError } from "./errors.js";
import { isUniqueViolation, replayOrConflict, requestHash } from "./idempotency.js";
import { type ListInput, listQuery, type Page, type PageTokens, toPage } from "./pages.js";
import type { Announcer, ChangeFeed, Dispatcher } from "./ports.js";
import { GROUP_SNAPSHOT_OPERATIONS, SNAPSHOT_OPERATIONS } from "./state-machine.js";
import { groupSnapshotUsage } from "./usage.js";
import type { CreateSnapshotInput } from "./validation.js";
import { validateClientRequestId, validateId } from "./validation.js";

/** A group snapshot with its member snapshots. */
export interface GroupSnapshotView {
  group: GroupSnapshotRow;
  members: SnapshotRow[];
}

/** A CreateGroupSnapshot request. */
export interface CreateGroupInput {
  name: string;
  description: string;
  volumeIds: string[];
  /** Idempotency key ("" for none). */
  clientRequestId: string;
}

/** What the group use cases need: recording one member, watching it, and dispatching deletes. */
export interface GroupDependencies {
  db: Db;
  pageTokens: PageTokens;
  scheduler: Dispatcher;
  notifications: Announcer;
  operationTimeoutSeconds: number;
  onCommitted?(): void;
  /** Watchers of a member are told after each commit that changed it. */
  changes: ChangeFeed;
  recordSnapshot(
    tx: Executor,
    ctx: RequestContext,
    input: Omit<CreateSnapshotInput, "clientRequestId">,
    keys: { id: string; operationId: string; clientRequestId: string; hash: string | null },
  ): Promise<SnapshotRow>;
  watchSnapshot(ctx: RequestContext, id: string, signal: AbortSignal): AsyncGenerator<SnapshotRow>;
}

/** Group snapshots: all or none. */
export interface GroupUseCases {
  createGroupSnapshot(ctx: RequestContext, input: CreateGroupInput): Promise<GroupSnapshotView>;
  getGroupSnapshot(ctx: RequestContext, id: string): Promise<GroupSnapshotView>;
  listGroupSnapshots(ctx: RequestContext, input: ListInput): Promise<Page<GroupSnapshotView>>;
  deleteGroupSnapshot(ctx: RequestContext, id: string): Promise<GroupSnapshotView>;
}

const MAX_GROUP_VOLUMES = 64;
/** Statuses from which a group snapshot may be deleted (error_deleting: to retry what stayed). */
const GROUP_DELETABLE: readonly string[] = GROUP_SNAPSHOT_OPERATIONS.delete.start.from;

/** Moves a member to `deleting` and casts its delete to its volume's host (in `tx`). */
async function deleteMember(
  tx: Executor,
  dispatcher: Dispatcher,
  member: SnapshotRow,
  operationTimeoutSeconds: number,
): Promise<boolean> {
  const volume = await getVolumeElevated(tx, member.volumeId);
  if (!volume?.host) return false;
  // A member a volume is being created from stays (the group then ends error_deleting, naming it).
  const activity = await getVolumeActivity(tx, member.volumeId);
  if (activity.clones.some((c) => c.snapshotId === member.id)) return false;
  const { from, to } = SNAPSHOT_OPERATIONS.delete.start;
  if (!(await updateSnapshotStatus(tx, member.id, from, to))) return false;
  const operationId = randomUUID();
  await insertOperation(tx, {
    id: operationId,
    kind: "delete_snapshot",
    resourceId: member.id,
    projectId: member.projectId,
    timeoutSeconds: operationTimeoutSeconds,
  });
  const context = {
    requestId: `group-${member.groupSnapshotId}`,
    projectId: member.projectId,
    userId: member.userId,
    roles: [],
  };
  await dispatcher.deleteSnapshot(tx, volume.host, { operationId, context, snapshotId: member.id }, 1);
  return true;
}

/** What settling a group needs: where member deletes go and where its events go. */
export interface GroupSettleDependencies {
  scheduler: Dispatcher;
  notifications: Announcer;
  operationTimeoutSeconds: number;
}

/**
 * Decides a `creating` group once its members have finished: all available → the group is
 * available; any not → every member is deleted and the group is `error` with the reason (all or
 * none). With members still creating it decides nothing ("pending"). Used by CreateGroupSnapshot
 * and, after a crash, by the reconciler. Announces `group_snapshot.create.end` or `.error`.
 */
export async function settleGroupSnapshot(
  tx: Executor,
  deps: GroupSettleDependencies,
  groupId: string,
): Promise<string> {
  const group = await getGroupSnapshot(tx, undefined, groupId, { lock: true });
  if (!group) return "deleted";
  if (group.status !== "creating") return group.status;
  const members = await listGroupMembers(tx, groupId);
  if (members.some((m) => m.status === "creating")) return "pending";
  const failed = members.filter((m) => m.status !== "available");
  if (failed.length === 0) {
    const { from, to } = GROUP_SNAPSHOT_OPERATIONS.create.done;
    const done = await updateGroupSnapshotStatus(tx, groupId, from, to);
    if (done) await deps.notifications.announce(tx, "INFO", "group_snapshot.create.end", groupSnapshotUsage(done));
    return "available";
  }
  for (const m of members) await deleteMember(tx, deps.scheduler, m, deps.operationTimeoutSeconds);
  const reason = failed.map((m) => `snapshot of volume ${m.volumeId} ended ${m.status}: ${m.statusReason}`).join("; ");
  const createFailed = GROUP_SNAPSHOT_OPERATIONS.create.failed;
  const errored = await updateGroupSnapshotStatus(tx, groupId, createFailed.from, createFailed.to, reason);
  if (errored) {
    await deps.notifications.announce(tx, "ERROR", "group_snapshot.create.error", {
      ...groupSnapshotUsage(errored),
      reason,
    });
  }
  return "error";
}

/** A group event decided inside a transaction, for the caller to publish. */
export interface GroupEvent {
  priority: "INFO" | "ERROR";
  eventType: string;
  payload: Record<string, unknown>;
}

/**
 * Called (in the member's transaction) whenever a member of a `deleting` group leaves `deleting`:
 * once no member is still deleting, the group is `deleted` if every member is gone, else
 * `error_deleting` naming the members that stayed (a new DeleteGroupSnapshot retries them).
 * Locks the group row, so members finishing at once settle it exactly once.
 */
export async function settleGroupDelete(tx: Executor, groupId: string): Promise<GroupEvent | undefined> {
  if (!groupId) return undefined;
  const group = await getGroupSnapshot(tx, undefined, groupId, { lock: true });
  if (group?.status !== "deleting") return undefined;
  const left = (await listGroupMembers(tx, groupId)).filter((m) => !m.deleted);
  if (left.some((m) => m.status === "deleting")) return undefined;
  if (left.length === 0) {
    const { from, to } = GROUP_SNAPSHOT_OPERATIONS.delete.done;
    const done = await updateGroupSnapshotStatus(tx, groupId, from, to);
    return done && { priority: "INFO", eventType: "group_snapshot.delete.end", payload: groupSnapshotUsage(done) };
  }
  const reason = left.map((m) => `snapshot ${m.id} is ${m.status}${m.statusReason ? `: ${m.statusReason}` : ""}`);
  const { from, to } = GROUP_SNAPSHOT_OPERATIONS.delete.failed;
  const failed = await updateGroupSnapshotStatus(tx, groupId, from, to, reason.join("; "));
  return (
    failed && {
      priority: "ERROR",
      eventType: "group_snapshot.delete.error",
      payload: { ...groupSnapshotUsage(failed), reason: failed.statusReason },
    }
  );
}

/** Builds the group snapshot use cases. */
export function createGroupUseCases(deps: GroupDependencies): GroupUseCases {
  const { db } = deps;

  async function view(ctx: RequestContext, id: string): Promise<GroupSnapshotView> {
    const group = await getGroupSnapshot(db, ctx.projectId, validateId("id", id));
    if (!group) throw new CinderblockError("NOT_FOUND", `group snapshot ${id} not found`);
    return { group, members: (await listGroupMembers(db, group.id)).filter((m) => !m.deleted) };
  }

  /**
   * Waits until every member of the group reached a terminal status (or the operation's timeout,
   * or the caller gave up), settles the group (all or none) and returns it as it ended.
   */
  async function settled(ctx: RequestContext, groupId: string, members: SnapshotRow[]): Promise<GroupSnapshotView> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), deps.operationTimeoutSeconds * 1000);
    // NOTE: a caller that gives up stops the wait; the reconciler settles the group (its operation row).
    const waiting = ctx.signal ? AbortSignal.any([abort.signal, ctx.signal]) : abort.signal;
    try {
      await Promise.all(
        members.map(async (m) => {
          for await (const _ of deps.watchSnapshot(ctx, m.id, waiting)) {
            // until the member reaches a terminal status
          }
        }),
      );
    } finally {
      clearTimeout(timer);
    }
    throwIfGivenUp(ctx);
    await transaction(db, (tx) => settleGroupSnapshot(tx, deps, groupId));
    deps.onCommitted?.();
    // NOTE: settling may have started deletes of members (a group is all or none).
    for (const m of members) deps.changes.publish("snapshot", m.id);
    const group = await getGroupSnapshot(db, ctx.projectId, groupId);
    if (!group) throw new CinderblockError("NOT_FOUND", `group snapshot ${groupId} not found`);
    return { group, members: (await listGroupMembers(db, groupId)).filter((m) => m.status !== "deleted") };
  }

  return {
    async createGroupSnapshot(ctx, input) {
      if (input.name.length > 255)
        throw new CinderblockError("INVALID_ARGUMENT", "name: must be at most 255 characters");
      if (input.description.length > 255) {
        throw new CinderblockError("INVALID_ARGUMENT", "description: must be at most 255 characters");
      }
      if (input.volumeIds.length === 0 || input.volumeIds.length > MAX_GROUP_VOLUMES) {
        throw new CinderblockError("INVALID_ARGUMENT", `volume_ids: must name 1 to ${MAX_GROUP_VOLUMES} volumes`);
      }
      const volumeIds = input.volumeIds.map((v) => validateId("volume_ids", v));
      if (new Set(volumeIds).size !== volumeIds.length) {
        throw new CinderblockError("INVALID_ARGUMENT", "volume_ids: must not repeat a volume");
      }
      const clientRequestId = validateClientRequestId(input.clientRequestId);
      const hash = clientRequestId
        ? requestHash({ name: input.name, description: input.description, volumeIds })
        : null;
      // A retry under the same key waits for the first call's group and answers as it would.
      const replay = async (): Promise<GroupSnapshotView | undefined> => {
        if (!clientRequestId || !hash) return undefined;
        const existing = await getGroupSnapshotByClientRequest(db, ctx.projectId, clientRequestId);
        if (!existing) return undefined;
        replayOrConflict(existing, hash, clientRequestId);
        const members = (await listGroupMembers(db, existing.id)).filter((m) => !m.deleted);
        return settled(ctx, existing.id, members);
      };
      const replayed = await replay();
      if (replayed) return replayed;
      const groupId = randomUUID();
      // All members are recorded in one transaction: any refusal (state, quota) writes none of them.
      const record = () =>
        transaction(db, async (tx) => {
          const group = await insertGroupSnapshot(tx, {
            id: groupId,
            projectId: ctx.projectId,
            userId: ctx.userId,
            name: input.name,
            description: input.description,
            clientRequestId: clientRequestId || null,
            requestHash: hash,
          });
          const rows: SnapshotRow[] = [];
          for (const volumeId of volumeIds) {
            rows.push(
              await deps.recordSnapshot(
                tx,
                ctx,
                {
                  volumeId,
                  name: input.name ? `${input.name}`.slice(0, 255) : `group ${groupId}`,
                  description: input.description,
                  force: true,
                  metadata: {},
                  groupSnapshotId: groupId,
                },
                { id: randomUUID(), operationId: randomUUID(), clientRequestId: "", hash: null },
              ),
            );
          }
          await insertOperation(tx, {
            id: randomUUID(),
            kind: "create_group_snapshot",
            resourceId: groupId,
            projectId: ctx.projectId,
            timeoutSeconds: deps.operationTimeoutSeconds,
          });
          await deps.notifications.announce(tx, "INFO", "group_snapshot.create.start", groupSnapshotUsage(group));
          return rows;
        });
      let members: SnapshotRow[];
      try {
        members = await record();
      } catch (error) {
        // A concurrent retry under the same key recorded its group first: answer as that one.
        if (!isUniqueViolation(error, "group_snapshots_project_client_request_idx")) throw error;
        const winner = await replay();
        if (!winner) throw error;
        return winner;
      }
      deps.onCommitted?.();
      return settled(ctx, groupId, members);
    },

    getGroupSnapshot: view,

    async listGroupSnapshots(ctx, input) {
      const query = listQuery(ctx, input, deps.pageTokens);
      if (query.sortKey === "size") {
        throw new CinderblockError("INVALID_ARGUMENT", "sort_key: must be one of created_at, name, status, id");
      }
      const page = toPage(await listGroupSnapshots(db, query), query, () => 0, deps.pageTokens);
      // NOTE: one query for the members of the whole page, not one per group (up to 1,000 at once).
      const members = await listMembersOfGroups(
        db,
        page.items.map((g) => g.id),
      );
      return {
        items: page.items.map((group) => ({
          group,
          members: (members.get(group.id) ?? []).filter((m) => !m.deleted),
        })),
        nextPageToken: page.nextPageToken,
      };
    },

    async deleteGroupSnapshot(ctx, rawId) {
      const id = validateId("id", rawId);
      let memberIds: string[] = [];
      const deleted = await transaction(db, async (tx) => {
        const group = await getGroupSnapshot(tx, ctx.projectId, id, { lock: true });
        if (!group) throw new CinderblockError("NOT_FOUND", `group snapshot ${id} not found`);
        if (!GROUP_DELETABLE.includes(group.status)) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `group snapshot ${id} status must be available, error or error_deleting to delete, but is ${group.status}`,
          );
        }
        const members = (await listGroupMembers(tx, id)).filter((m) => !m.deleted);
        const blocking = members.find((m) => !["available", "error", "error_deleting", "deleting"].includes(m.status));
        if (blocking) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `snapshot ${blocking.id} of the group is ${blocking.status}`,
          );
        }
        const deleting = await updateGroupSnapshotStatus(
          tx,
          id,
          GROUP_DELETABLE,
          GROUP_SNAPSHOT_OPERATIONS.delete.start.to,
        );
        if (!deleting)
          throw new CinderblockError("FAILED_PRECONDITION", `group snapshot ${id} changed status; try again`);
        await deps.notifications.announce(tx, "INFO", "group_snapshot.delete.start", groupSnapshotUsage(deleting));
        memberIds = members.map((m) => m.id);
        for (const m of members) await deleteMember(tx, deps.scheduler, m, deps.operationTimeoutSeconds);
        // The group is `deleted` when its last member's delete finishes (settleGroupDelete); with no
        // member left to delete, that is now.
        const event = await settleGroupDelete(tx, id);
        if (event) await deps.notifications.announce(tx, event.priority, event.eventType, event.payload);
        return (await getGroupSnapshot(tx, ctx.projectId, id)) ?? { ...deleting, status: "deleted" };
      });
      deps.onCommitted?.();
      for (const memberId of memberIds) deps.changes.publish("snapshot", memberId);
      return { group: deleted, members: (await listGroupMembers(db, id)).filter((m) => !m.deleted) };
    },
  };
}
