import { and, eq, inArray, sql } from "drizzle-orm";
import type { Executor } from "./client.js";
import { keyset, type ListQuery } from "./pagination.js";
import { withDetail } from "./resource-fields.js";
import { services, volumes } from "./schema.js";
import type { NewVolumeRow, SnapshotStatus, VolumeRow, VolumeStatus } from "./types.js";

/** Inserts a volume row and returns it as stored. */
export async function insertVolume(db: Executor, row: NewVolumeRow): Promise<VolumeRow> {
  const [inserted] = await db.insert(volumes).values(row).returning();
  return inserted as VolumeRow;
}

/** Options for {@link getVolume}. */
export interface GetVolumeOptions {
  /**
   * `share`: the row's status cannot change until the transaction ends (others may share-lock it
   * too); `update`: nothing else may lock or change it (what an operation that reads the volume's
   * snapshots and clones before changing it takes, so none can start meanwhile).
   */
  lock?: "share" | "update";
}

/** The project's volume created with this idempotency key, if any (deleted ones included). */
export async function getVolumeByClientRequest(
  db: Executor,
  projectId: string,
  clientRequestId: string,
): Promise<VolumeRow | undefined> {
  const [row] = await db
    .select()
    .from(volumes)
    .where(and(eq(volumes.projectId, projectId), eq(volumes.clientRequestId, clientRequestId)));
  return row as VolumeRow | undefined;
}

/** Compare-and-swap `deleting` → `deleted`, soft-deleting the row. */
export async function markVolumeDeleted(db: Executor, id: string): Promise<VolumeRow | undefined> {
  const [row] = await db
    .update(volumes)
    .set({ status: "deleted", deleted: true, deletedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(volumes.id, id), eq(volumes.status, "deleting"), eq(volumes.deleted, false)))
    .returning();
  return row as VolumeRow | undefined;
}

/** Sets a status whatever the current one (admin reset); undefined when there is no such volume. */
export async function resetVolumeStatus(
  db: Executor,
  id: string,
  status: VolumeStatus,
): Promise<VolumeRow | undefined> {
  const [row] = await db
    .update(volumes)
    .set({ status, statusReason: "", statusDetail: "", updatedAt: sql`now()` })
    .where(and(eq(volumes.id, id), eq(volumes.deleted, false)))
    .returning();
  return row as VolumeRow | undefined;
}

/** Sets the project's volume's `bootable` flag (Cinder's os-set_bootable); false when there is no such volume. */
export async function setVolumeBootable(
  db: Executor,
  projectId: string,
  id: string,
  bootable: boolean,
): Promise<boolean> {
  const rows = await db
    .update(volumes)
    .set({ bootable, updatedAt: sql`now()` })
    .where(and(eq(volumes.id, id), eq(volumes.projectId, projectId), eq(volumes.deleted, false)))
    .returning({ id: volumes.id });
  return rows.length > 0;
}

/** The project's volume with this id, or undefined (another project's volume is not found). */
export async function getVolume(
  db: Executor,
  projectId: string,
  id: string,
  options: GetVolumeOptions = {},
): Promise<VolumeRow | undefined> {
  const query = db
    .select()
    .from(volumes)
    .where(and(eq(volumes.id, id), eq(volumes.projectId, projectId), eq(volumes.deleted, false)));
  const [row] = options.lock ? await query.for(options.lock) : await query;
  return row as VolumeRow | undefined;
}

/**
 * The project's volume with whether its backend is frozen, in one query (what a snapshot create
 * checks). `lock` share-locks the volume row only.
 */
export async function getVolumeWithBackend(
  db: Executor,
  projectId: string,
  id: string,
  options: GetVolumeOptions = {},
): Promise<{ volume: VolumeRow; backendFrozen: boolean } | undefined> {
  const query = db
    .select({ volume: volumes, frozen: services.frozen })
    .from(volumes)
    .leftJoin(services, eq(services.host, volumes.host))
    .where(and(eq(volumes.id, id), eq(volumes.projectId, projectId), eq(volumes.deleted, false)));
  const [row] = options.lock ? await query.for(options.lock, { of: volumes }) : await query;
  return row && { volume: row.volume as VolumeRow, backendFrozen: row.frozen === true };
}

/** A volume by id regardless of project: for services acting with elevated rights only. */
export async function getVolumeElevated(db: Executor, id: string): Promise<VolumeRow | undefined> {
  const [row] = await db
    .select()
    .from(volumes)
    .where(and(eq(volumes.id, id), eq(volumes.deleted, false)));
  return row as VolumeRow | undefined;
}

/** One page of volumes (the project's, or every project's), under the query's filters and sort. */
export async function listVolumes(db: Executor, query: ListQuery): Promise<VolumeRow[]> {
  const column = {
    created_at: volumes.createdAt,
    name: volumes.name,
    status: volumes.status,
    size: volumes.sizeGb,
    id: volumes.id,
  }[query.sortKey];
  const page = keyset(column, volumes.id, query);
  const rows = await db
    .select()
    .from(volumes)
    .where(
      and(
        query.projectId === undefined ? undefined : eq(volumes.projectId, query.projectId),
        eq(volumes.deleted, false),
        query.status ? eq(volumes.status, query.status) : undefined,
        query.name ? eq(volumes.name, query.name) : undefined,
        query.metadata && Object.keys(query.metadata).length > 0
          ? sql`${volumes.metadata} @> ${JSON.stringify(query.metadata)}::jsonb`
          : undefined,
        page.after,
      ),
    )
    .orderBy(...page.orderBy)
    .limit(query.limit);
  return rows as VolumeRow[];
}

/** Fields a status change may set along with the status. */
export type VolumeChanges = Partial<
  Pick<
    VolumeRow,
    "statusReason" | "statusDetail" | "host" | "sizeGb" | "volumeType" | "volumeTypeId" | "migrationStatus"
  >
>;

/**
 * Compare-and-swap status change: moves the volume to `to` only if its status is one of `from`.
 * Returns the updated row, or undefined when the volume was not in an expected status.
 */
export async function updateVolumeStatus(
  db: Executor,
  id: string,
  from: readonly VolumeStatus[],
  to: VolumeStatus,
  changes: VolumeChanges = {},
): Promise<VolumeRow | undefined> {
  const [row] = await db
    .update(volumes)
    .set({ ...withDetail(changes), status: to, updatedAt: sql`now()` })
    .where(and(eq(volumes.id, id), inArray(volumes.status, [...from])))
    .returning();
  return row as VolumeRow | undefined;
}

/**
 * Places a volume on a backend's pool once: sets `host` and `pool` only while the host is unset
 * and the volume is still `creating`. Returns the row as it is afterwards (a retried scheduling
 * finds the first choice).
 */
export async function assignVolumeHost(
  db: Executor,
  id: string,
  host: string,
  pool: string,
): Promise<VolumeRow | undefined> {
  const [row] = await db
    .update(volumes)
    .set({
      host: sql`coalesce(${volumes.host}, ${host})`,
      // Both read the row as it was: the pool changes only with the host.
      pool: sql`case when ${volumes.host} is null then ${pool} else ${volumes.pool} end`,
      updatedAt: sql`now()`,
    })
    .where(and(eq(volumes.id, id), eq(volumes.status, "creating")))
    .returning();
  return row as VolumeRow | undefined;
}

/**
 * Takes a volume off the backend that failed to create it, so the scheduler can place it again:
 * only while it is still in `from` (`creating`) on `host` (a stale cast from an earlier placement finds it
 * elsewhere and changes nothing). Returns the row afterwards, or undefined.
 */
export async function unassignVolumeHost(
  db: Executor,
  id: string,
  host: string,
  from: readonly VolumeStatus[],
): Promise<VolumeRow | undefined> {
  const [row] = await db
    .update(volumes)
    .set({ host: null, pool: null, updatedAt: sql`now()` })
    .where(and(eq(volumes.id, id), inArray(volumes.status, [...from]), eq(volumes.host, host)))
    .returning();
  return row as VolumeRow | undefined;
}

/**
 * What is going on around a volume: its live snapshots (id order), the volumes being created
 * from any of them, and the volumes being cloned from the volume itself. Read it with the volume
 * locked FOR UPDATE: snapshot creates and clones of the volume share-lock the volume, and clones
 * of a snapshot share-lock their snapshot, so none can start until the caller commits.
 */
export async function getVolumeActivity(
  db: Executor,
  volumeId: string,
): Promise<{
  snapshots: { id: string; status: SnapshotStatus }[];
  clones: { id: string; snapshotId: string }[];
  copies: { id: string }[];
}> {
  const rows = await db.execute<{ kind: string; id: string; status: string; snapshot_id: string }>(sql`
    select 'snapshot' as kind, s.id, s.status, s.id as snapshot_id
      from snapshots s where s.volume_id = ${volumeId} and not s.deleted
    union all
    select 'clone', c.id, c.status, c.snapshot_id
      from volumes c join snapshots s on s.id = c.snapshot_id
     where s.volume_id = ${volumeId} and c.status = 'creating' and not c.deleted
    union all
    select 'copy', v.id, v.status, null
      from volumes v
     where v.source_volid = ${volumeId} and v.status = 'creating' and not v.deleted
     order by 1, 2`);
  return {
    snapshots: rows.filter((r) => r.kind === "snapshot").map((r) => ({ id: r.id, status: r.status as SnapshotStatus })),
    clones: rows.filter((r) => r.kind === "clone").map((r) => ({ id: r.id, snapshotId: r.snapshot_id })),
    copies: rows.filter((r) => r.kind === "copy").map((r) => ({ id: r.id })),
  };
}
