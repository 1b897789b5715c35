import { and, eq, getTableColumns, ne, type SQL, sql } from "drizzle-orm";
import type { Executor } from "./client.js";
import { volumeAttachments, volumes } from "./schema.js";

/** A volume attachment row. */
export type AttachmentRow = typeof volumeAttachments.$inferSelect;

/** Records an attachment in `attaching` (before the backend is asked for connection info). */
export async function insertAttachment(
  db: Executor,
  row: {
    id: string;
    volumeId: string;
    projectId: string;
    instanceId: string;
    mountpoint: string;
    connector: Record<string, string>;
  },
): Promise<AttachmentRow> {
  const [inserted] = await db
    .insert(volumeAttachments)
    .values({ ...row, attachStatus: "attaching" })
    .returning();
  return inserted as AttachmentRow;
}

/** Compare-and-swap `attaching` → `attached`, storing the connection info. */
export async function markAttached(
  db: Executor,
  id: string,
  connectionInfo: Record<string, unknown>,
): Promise<AttachmentRow | undefined> {
  const [row] = await db
    .update(volumeAttachments)
    .set({ attachStatus: "attached", connectionInfo, attachedAt: sql`now()` })
    .where(and(eq(volumeAttachments.id, id), eq(volumeAttachments.attachStatus, "attaching")))
    .returning();
  return row;
}

/** Removes an attachment (detached, or an attach that did not complete). */
export async function deleteAttachment(db: Executor, id: string): Promise<AttachmentRow | undefined> {
  const [row] = await db.delete(volumeAttachments).where(eq(volumeAttachments.id, id)).returning();
  return row;
}

/** A volume's attachments, oldest first. */
export async function listAttachmentsOfVolume(db: Executor, volumeId: string): Promise<AttachmentRow[]> {
  return db
    .select()
    .from(volumeAttachments)
    .where(eq(volumeAttachments.volumeId, volumeId))
    .orderBy(volumeAttachments.createdAt);
}

/** The project's attachments to one instance, oldest first (the boot volume is usually first). */
export async function listAttachmentsOfInstance(
  db: Executor,
  projectId: string,
  instanceId: string,
): Promise<AttachmentRow[]> {
  return db
    .select()
    .from(volumeAttachments)
    .where(and(eq(volumeAttachments.projectId, projectId), eq(volumeAttachments.instanceId, instanceId)))
    .orderBy(volumeAttachments.createdAt);
}

/**
 * Takes the instance's lock until the transaction ends, so that attaches to one instance id take
 * turns whichever project makes them: two projects attaching the same instance at once cannot
 * both pass the ownership check. NOTE: an advisory lock on a hash of the id (a collision only
 * makes two attaches wait for each other), since the instance has no row of its own to lock.
 */
export async function lockInstance(tx: Executor, instanceId: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`instance:${instanceId}`}, 0))`);
}

/**
 * Whether a project other than `projectId` has a volume attached (or being attached) to the
 * instance: the instance is then that project's, not this one's.
 */
export async function instanceAttachedElsewhere(db: Executor, projectId: string, instanceId: string): Promise<boolean> {
  const rows = await db
    .select({ id: volumeAttachments.id })
    .from(volumeAttachments)
    .where(and(eq(volumeAttachments.instanceId, instanceId), ne(volumeAttachments.projectId, projectId)))
    .limit(1);
  return rows.length > 0;
}

/** Which attachments {@link findAttachments} reads; every field left out matches all. */
export interface AttachmentSearch {
  /** Attachments of this project's volumes (whoever made them); absent: every project's. */
  projectId?: string;
  id?: string;
  volumeId?: string;
  instanceId?: string;
  attachStatus?: string;
}

/** Attachments matching `search`, oldest first. */
export async function findAttachments(db: Executor, search: AttachmentSearch): Promise<AttachmentRow[]> {
  const where: SQL[] = [];
  if (search.projectId !== undefined) where.push(eq(volumes.projectId, search.projectId));
  if (search.id !== undefined) where.push(eq(volumeAttachments.id, search.id));
  if (search.volumeId !== undefined) where.push(eq(volumeAttachments.volumeId, search.volumeId));
  if (search.instanceId !== undefined) where.push(eq(volumeAttachments.instanceId, search.instanceId));
  if (search.attachStatus !== undefined) where.push(eq(volumeAttachments.attachStatus, search.attachStatus));
  return db
    .select(getTableColumns(volumeAttachments))
    .from(volumeAttachments)
    .innerJoin(volumes, eq(volumes.id, volumeAttachments.volumeId))
    .where(and(...where))
    .orderBy(volumeAttachments.createdAt, volumeAttachments.id);
}
