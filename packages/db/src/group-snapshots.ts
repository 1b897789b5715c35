import { and, eq, inArray, sql } from "drizzle-orm";
import type { Executor } from "./client.js";
import { keyset, type ListQuery } from "./pagination.js";
import { groupSnapshots, snapshots } from "./schema.js";
import type { SnapshotRow } from "./types.js";

/** A group snapshot row. */
export type GroupSnapshotRow = typeof groupSnapshots.$inferSelect;

/** Records a group snapshot in `creating`. */
export async function insertGroupSnapshot(
  db: Executor,
  row: {
    id: string;
    projectId: string;
    userId: string;
    name: string;
    description: string;
    clientRequestId?: string | null;
    requestHash?: string | null;
  },
): Promise<GroupSnapshotRow> {
  const [inserted] = await db
    .insert(groupSnapshots)
    .values({ ...row, status: "creating" })
    .returning();
  return inserted as GroupSnapshotRow;
}

/** The project's group snapshot (or any project's with `projectId` undefined), unless deleted. */
export async function getGroupSnapshot(
  db: Executor,
  projectId: string | undefined,
  id: string,
  options: { lock?: boolean } = {},
): Promise<GroupSnapshotRow | undefined> {
  const query = db
    .select()
    .from(groupSnapshots)
    .where(
      and(
        eq(groupSnapshots.id, id),
        projectId === undefined ? undefined : eq(groupSnapshots.projectId, projectId),
        eq(groupSnapshots.deleted, false),
      ),
    );
  const [row] = options.lock ? await query.for("update") : await query;
  return row;
}

/** The project's group snapshot made under an idempotency key, deleted or not. */
export async function getGroupSnapshotByClientRequest(
  db: Executor,
  projectId: string,
  clientRequestId: string,
): Promise<GroupSnapshotRow | undefined> {
  const [row] = await db
    .select()
    .from(groupSnapshots)
    .where(and(eq(groupSnapshots.projectId, projectId), eq(groupSnapshots.clientRequestId, clientRequestId)));
  return row;
}

/**
 * A page of group snapshots (the project's, or every project's with `projectId` undefined), keyset
 * paged like the other lists; the `size` sort is refused by the caller (a group has none).
 */
export async function listGroupSnapshots(db: Executor, query: ListQuery): Promise<GroupSnapshotRow[]> {
  const column = {
    created_at: groupSnapshots.createdAt,
    name: groupSnapshots.name,
    status: groupSnapshots.status,
    size: groupSnapshots.createdAt,
    id: groupSnapshots.id,
  }[query.sortKey];
  const page = keyset(column, groupSnapshots.id, query);
  return db
    .select()
    .from(groupSnapshots)
    .where(
      and(
        query.projectId === undefined ? undefined : eq(groupSnapshots.projectId, query.projectId),
        eq(groupSnapshots.deleted, false),
        query.status ? eq(groupSnapshots.status, query.status) : undefined,
        query.name ? eq(groupSnapshots.name, query.name) : undefined,
        page.after,
      ),
    )
    .orderBy(...page.orderBy)
    .limit(query.limit);
}

/** Compare-and-swap status change of a group snapshot; `deleted` also soft-deletes the row. */
export async function updateGroupSnapshotStatus(
  db: Executor,
  id: string,
  from: readonly string[],
  to: string,
  statusReason = "",
): Promise<GroupSnapshotRow | undefined> {
  const [row] = await db
    .update(groupSnapshots)
    .set({ status: to, statusReason, deleted: to === "deleted", updatedAt: sql`now()` })
    .where(and(eq(groupSnapshots.id, id), inArray(groupSnapshots.status, [...from])))
    .returning();
  return row;
}

/**
 * The member snapshots of several groups in one query (a page of ListGroupSnapshots), by group id,
 * each group's in creation order, deleted ones included; a group without members maps to [].
 */
export async function listMembersOfGroups(
  db: Executor,
  groupIds: readonly string[],
): Promise<Map<string, SnapshotRow[]>> {
  const byGroup = new Map<string, SnapshotRow[]>(groupIds.map((id) => [id, []]));
  if (groupIds.length === 0) return byGroup;
  const rows = (await db
    .select()
    .from(snapshots)
    .where(inArray(snapshots.groupSnapshotId, [...groupIds]))
    .orderBy(snapshots.createdAt, snapshots.id)) as SnapshotRow[];
  for (const row of rows) byGroup.get(row.groupSnapshotId)?.push(row);
  return byGroup;
}

/** The group's member snapshots (deleted ones included: a settled group reads its history). */
export async function listGroupMembers(db: Executor, groupId: string): Promise<SnapshotRow[]> {
  const rows = await db
    .select()
    .from(snapshots)
    .where(eq(snapshots.groupSnapshotId, groupId))
    .orderBy(snapshots.createdAt, snapshots.id);
  return rows as SnapshotRow[];
}
