import { and, desc, eq, getTableColumns, inArray, sql } from "drizzle-orm";
import { builtOnce, type Executor } from "./client.js";
import { keyset, type ListQuery } from "./pagination.js";
import { withDetail } from "./resource-fields.js";
import { snapshots, volumes } from "./schema.js";
import type { NewSnapshotRow, SnapshotRow, SnapshotStatus, VolumeRow } from "./types.js";

/** Inserts a snapshot row and returns it as stored. */
export async function insertSnapshot(db: Executor, row: NewSnapshotRow): Promise<SnapshotRow> {
  const [inserted] = await db.insert(snapshots).values(row).returning();
  return inserted as SnapshotRow;
}

/** Options for {@link getSnapshot}. */
export interface GetSnapshotOptions {
  /** Also find a soft-deleted row (a watcher sees the end of a delete). */
  includeDeleted?: boolean;
  /** `share`: the row's status cannot change until the transaction ends; `update`: nor may others lock it. */
  lock?: "share" | "update";
}

/** The project's snapshot with this id, or undefined (another project's snapshot is not found). */
export async function getSnapshot(
  db: Executor,
  projectId: string,
  id: string,
  options: GetSnapshotOptions = {},
): Promise<SnapshotRow | undefined> {
  const query = db
    .select()
    .from(snapshots)
    .where(
      and(
        eq(snapshots.id, id),
        eq(snapshots.projectId, projectId),
        options.includeDeleted ? undefined : eq(snapshots.deleted, false),
      ),
    );
  const [row] = options.lock ? await query.for(options.lock) : await query;
  return row as SnapshotRow | undefined;
}

/** The project's snapshot created with this idempotency key, if any (deleted ones included). */
export async function getSnapshotByClientRequest(
  db: Executor,
  projectId: string,
  clientRequestId: string,
): Promise<SnapshotRow | undefined> {
  const [row] = await db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.projectId, projectId), eq(snapshots.clientRequestId, clientRequestId)));
  return row as SnapshotRow | undefined;
}

/** The volume's newest snapshot that is not deleted (the only one a volume may revert to). */
export async function getLatestSnapshotOfVolume(db: Executor, volumeId: string): Promise<SnapshotRow | undefined> {
  const [row] = await db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.volumeId, volumeId), eq(snapshots.deleted, false)))
    .orderBy(desc(snapshots.createdAt), desc(snapshots.id))
    .limit(1);
  return row as SnapshotRow | undefined;
}

/** Ids of the snapshots (not deleted) whose volumes live on a backend. */
export async function listSnapshotIdsOnBackend(db: Executor, backend: string): Promise<string[]> {
  const rows = await db.execute<{ id: string }>(sql`
    select s.id from snapshots s join volumes v on v.id = s.volume_id
     where v.host = ${backend} and not s.deleted`);
  return rows.map((r) => r.id);
}

/** The volume's snapshots that are not deleted; `lock` locks them FOR UPDATE, in id order. */
export async function listSnapshotsOfVolume(
  db: Executor,
  volumeId: string,
  options: { lock?: boolean } = {},
): Promise<SnapshotRow[]> {
  const query = db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.volumeId, volumeId), eq(snapshots.deleted, false)))
    .orderBy(snapshots.id);
  const rows = options.lock ? await query.for("update") : await query;
  return rows as SnapshotRow[];
}

/** Compare-and-swap `from` (default `deleting`) → `deleted`, soft-deleting the row. */
export async function markSnapshotDeleted(
  db: Executor,
  id: string,
  from: SnapshotStatus = "deleting",
): Promise<SnapshotRow | undefined> {
  const [row] = await db
    .update(snapshots)
    .set({ status: "deleted", deleted: true, deletedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(snapshots.id, id), eq(snapshots.status, from), eq(snapshots.deleted, false)))
    .returning();
  return row as SnapshotRow | undefined;
}

/** A snapshot by id regardless of project: for services acting with elevated rights only. */
export async function getSnapshotElevated(db: Executor, id: string): Promise<SnapshotRow | undefined> {
  const [row] = await db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.id, id), eq(snapshots.deleted, false)));
  return row as SnapshotRow | undefined;
}

const snapshotsWithVolumesQuery = builtOnce((db) =>
  db
    .select({ snapshot: snapshots, volume: volumes })
    .from(snapshots)
    .leftJoin(volumes, and(eq(volumes.id, snapshots.volumeId), eq(volumes.deleted, false)))
    .where(and(sql`${snapshots.id} = any(${sql.placeholder("ids")}::uuid[])`, eq(snapshots.deleted, false)))
    .prepare("snapshots_with_volumes"),
);

/**
 * Snapshots (not deleted) by id, each with its volume (undefined when that is deleted), regardless
 * of project, in one statement: what the volume host reads before it takes snapshots. Ids that
 * name no such snapshot are absent from the map.
 */
export async function getSnapshotsWithVolumesElevated(
  db: Executor,
  ids: readonly string[],
): Promise<Map<string, { snapshot: SnapshotRow; volume: VolumeRow | undefined }>> {
  const rows = await snapshotsWithVolumesQuery(db).execute({ ids: [...new Set(ids)] });
  return new Map(
    rows.map((row) => [
      row.snapshot.id,
      { snapshot: row.snapshot as SnapshotRow, volume: (row.volume ?? undefined) as VolumeRow | undefined },
    ]),
  );
}

/** One page of snapshots (the project's, or every project's), under the query's filters and sort. */
export async function listSnapshots(
  db: Executor,
  query: ListQuery & { volumeId?: string | undefined },
): Promise<SnapshotRow[]> {
  const column = {
    created_at: snapshots.createdAt,
    name: snapshots.name,
    status: snapshots.status,
    size: snapshots.volumeSizeGb,
    id: snapshots.id,
  }[query.sortKey];
  const page = keyset(column, snapshots.id, query);
  const rows = await db
    .select()
    .from(snapshots)
    .where(
      and(
        query.projectId === undefined ? undefined : eq(snapshots.projectId, query.projectId),
        eq(snapshots.deleted, false),
        query.volumeId ? eq(snapshots.volumeId, query.volumeId) : undefined,
        query.status ? eq(snapshots.status, query.status) : undefined,
        query.name ? eq(snapshots.name, query.name) : undefined,
        query.metadata && Object.keys(query.metadata).length > 0
          ? sql`${snapshots.metadata} @> ${JSON.stringify(query.metadata)}::jsonb`
          : undefined,
        page.after,
      ),
    )
    .orderBy(...page.orderBy)
    .limit(query.limit);
  return rows as SnapshotRow[];
}

/** Sets a status whatever the current one (admin reset); undefined when there is no such snapshot. */
export async function resetSnapshotStatus(
  db: Executor,
  id: string,
  status: SnapshotStatus,
): Promise<SnapshotRow | undefined> {
  const [row] = await db
    .update(snapshots)
    .set({ status, statusReason: "", statusDetail: "", updatedAt: sql`now()` })
    .where(and(eq(snapshots.id, id), eq(snapshots.deleted, false)))
    .returning();
  return row as SnapshotRow | undefined;
}

/** Fields a status change may set along with the status. */
export type SnapshotChanges = Partial<
  Pick<
    SnapshotRow,
    "statusReason" | "statusDetail" | "progress" | "providerLocation" | "imageMetadata" | "encryptionKeyId"
  >
>;

/**
 * Compare-and-swap status change: moves the snapshot to `to` only if its status is one of `from`.
 * Returns the updated row, or undefined when the snapshot was not in an expected status.
 */
export async function updateSnapshotStatus(
  db: Executor,
  id: string,
  from: readonly SnapshotStatus[],
  to: SnapshotStatus,
  changes: SnapshotChanges = {},
): Promise<SnapshotRow | undefined> {
  const [row] = await db
    .update(snapshots)
    .set({ ...withDetail(changes), status: to, updatedAt: sql`now()` })
    .where(and(eq(snapshots.id, id), inArray(snapshots.status, [...from])))
    .returning();
  return row as SnapshotRow | undefined;
}

const SNAPSHOT_COLUMNS = Object.entries(getTableColumns(snapshots));

/** A snapshots row as PostgreSQL returned it (column names, driver values), mapped as drizzle would. */
export function snapshotFromDriver(raw: Record<string, unknown>): SnapshotRow {
  const row: Record<string, unknown> = {};
  for (const [key, column] of SNAPSHOT_COLUMNS) {
    const value = raw[column.name];
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as SnapshotRow;
}

/** What the volume host learned creating one snapshot, for {@link markSnapshotsAvailable}. */
export interface SnapshotTaken {
  id: string;
  providerLocation: string;
  imageMetadata: Record<string, string>;
  encryptionKeyId: string;
}

/**
 * Moves every snapshot given that is still `creating` to `available` (100%, no reason), in one
 * statement; returns the rows it changed, as stored. Rows are locked in id order, so two such
 * statements never deadlock each other.
 */
export async function markSnapshotsAvailable(db: Executor, taken: readonly SnapshotTaken[]): Promise<SnapshotRow[]> {
  if (taken.length === 0) return [];
  const sorted = [...taken].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const rows = await db.execute<Record<string, unknown>>(sql`
    with t as (
      select * from unnest(${sql.param(sorted.map((t) => t.id))}::uuid[],
                           ${sql.param(sorted.map((t) => t.providerLocation))}::text[],
                           ${sql.param(sorted.map((t) => JSON.stringify(t.imageMetadata)))}::text[],
                           ${sql.param(sorted.map((t) => t.encryptionKeyId))}::text[])
             as t(id, provider_location, image_metadata, encryption_key_id)),
    locked as (
      select s.id from ${snapshots} s join t on t.id = s.id
       where s.status = 'creating' order by s.id for update of s)
    update ${snapshots} s
       set status = 'available', progress = '100%', status_reason = '', status_detail = '', provider_location = t.provider_location,
           image_metadata = t.image_metadata::jsonb, encryption_key_id = t.encryption_key_id, updated_at = now()
      from t, locked
     where s.id = t.id and s.id = locked.id and s.status = 'creating'
    returning s.*`);
  return rows.map(snapshotFromDriver);
}
