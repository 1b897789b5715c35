import { and, asc, eq, inArray, isNull, or, sql } from "drizzle-orm";
import type { Executor } from "./client.js";
import {
  defaultVolumeTypes,
  qosSpecs,
  quotaLimits,
  quotaUsages,
  snapshots,
  volumes,
  volumeTypeProjects,
  volumeTypes,
} from "./schema.js";

export type VolumeTypeRow = typeof volumeTypes.$inferSelect;
export type NewVolumeTypeRow = typeof volumeTypes.$inferInsert;
export type QosSpecsRow = typeof qosSpecs.$inferSelect;
export type NewQosSpecsRow = typeof qosSpecs.$inferInsert;

/** Where a page of a name-ordered list starts: after this row. */
export interface NameCursor {
  name: string;
  id: string;
}

/** Row locks a caller may take on a type (see {@link getVolumeTypeBy}). */
export interface TypeLock {
  /**
   * `key share`: the type cannot be deleted or renamed until the transaction ends (what a create
   * referencing it takes; the foreign key takes it anyway); `update`: nobody else may lock it.
   */
  lock?: "key share" | "update";
}

export async function insertVolumeType(db: Executor, row: NewVolumeTypeRow): Promise<VolumeTypeRow> {
  const [inserted] = await db.insert(volumeTypes).values(row).returning();
  return inserted as VolumeTypeRow;
}

/** An undeleted type by id or by exact name; undefined when there is none. */
export async function getVolumeTypeBy(
  db: Executor,
  by: { id: string } | { name: string },
  options: TypeLock = {},
): Promise<VolumeTypeRow | undefined> {
  const match = "id" in by ? eq(volumeTypes.id, by.id) : eq(volumeTypes.name, by.name);
  const query = db
    .select()
    .from(volumeTypes)
    .where(and(match, eq(volumeTypes.deleted, false)));
  const [row] = options.lock ? await query.for(options.lock) : await query;
  return row;
}

/** Whether `projectId` was given access to the (private) type. */
export async function hasVolumeTypeAccess(db: Executor, typeId: string, projectId: string): Promise<boolean> {
  const [row] = await db
    .select({ id: volumeTypeProjects.volumeTypeId })
    .from(volumeTypeProjects)
    .where(and(eq(volumeTypeProjects.volumeTypeId, typeId), eq(volumeTypeProjects.projectId, projectId)));
  return row !== undefined;
}

/**
 * A page of undeleted types in (name, id) order: every type when `projectId` is undefined (an
 * administrator), else the public ones and the private ones the project has access to.
 */
export async function listVolumeTypes(
  db: Executor,
  query: { projectId: string | undefined; after?: NameCursor | undefined; limit: number },
): Promise<VolumeTypeRow[]> {
  const visible =
    query.projectId === undefined
      ? undefined
      : or(
          eq(volumeTypes.isPublic, true),
          sql`exists (select from ${volumeTypeProjects} a where a.volume_type_id = ${volumeTypes.id} and a.project_id = ${query.projectId})`,
        );
  return db
    .select()
    .from(volumeTypes)
    .where(
      and(
        eq(volumeTypes.deleted, false),
        visible,
        query.after
          ? sql`(${volumeTypes.name}, ${volumeTypes.id}) > (${query.after.name}::text, ${query.after.id}::uuid)`
          : undefined,
      ),
    )
    .orderBy(asc(volumeTypes.name), asc(volumeTypes.id))
    .limit(query.limit);
}

/** Changes a type's fields; undefined when there is no such undeleted type. */
export async function updateVolumeType(
  db: Executor,
  id: string,
  changes: Partial<Pick<VolumeTypeRow, "name" | "description" | "isPublic">>,
): Promise<VolumeTypeRow | undefined> {
  const [row] = await db
    .update(volumeTypes)
    .set({ ...changes, updatedAt: sql`now()` })
    .where(and(eq(volumeTypes.id, id), eq(volumeTypes.deleted, false)))
    .returning();
  return row;
}

/**
 * After a rename (as Cinder's volume_type_update): the volumes and snapshots of the type carry the
 * new name, and every project's per-type quota usage and limits move to it (a limit already set
 * for the new name wins; usage left under it by a deleted type of that name is dropped).
 */
export async function renameVolumeTypeReferences(
  tx: Executor,
  typeId: string,
  from: string,
  to: string,
): Promise<void> {
  await tx.update(volumes).set({ volumeType: to }).where(eq(volumes.volumeTypeId, typeId));
  await tx.update(snapshots).set({ volumeType: to }).where(eq(snapshots.volumeTypeId, typeId));
  for (const base of ["volumes", "snapshots", "gigabytes"]) {
    const oldName = `${base}_${from}`;
    const newName = `${base}_${to}`;
    await tx.delete(quotaUsages).where(eq(quotaUsages.resource, newName));
    await tx.update(quotaUsages).set({ resource: newName }).where(eq(quotaUsages.resource, oldName));
    await tx.execute(sql`
      delete from ${quotaLimits} o where o.resource = ${oldName}
         and exists (select from ${quotaLimits} n where n.project_id = o.project_id and n.resource = ${newName})`);
    await tx.update(quotaLimits).set({ resource: newName }).where(eq(quotaLimits.resource, oldName));
  }
}

/** How many undeleted volumes and snapshots use the type. */
export async function countVolumeTypeUsage(
  db: Executor,
  typeId: string,
): Promise<{ volumes: number; snapshots: number }> {
  const [row] = await db.execute<{ volumes: number; snapshots: number }>(sql`
    select (select count(*)::int from ${volumes} where volume_type_id = ${typeId} and not deleted) as volumes,
           (select count(*)::int from ${snapshots} where volume_type_id = ${typeId} and not deleted) as snapshots`);
  return { volumes: Number(row?.volumes ?? 0), snapshots: Number(row?.snapshots ?? 0) };
}

/** Soft-deletes a type, its access list and the projects' defaults naming it go with it. */
export async function markVolumeTypeDeleted(tx: Executor, id: string): Promise<boolean> {
  await tx.delete(volumeTypeProjects).where(eq(volumeTypeProjects.volumeTypeId, id));
  const rows = await tx
    .update(volumeTypes)
    .set({ deleted: true, deletedAt: sql`now()`, qosSpecsId: null, updatedAt: sql`now()` })
    .where(and(eq(volumeTypes.id, id), eq(volumeTypes.deleted, false)))
    .returning({ id: volumeTypes.id });
  return rows.length > 0;
}

/** Merges `specs` into the type's extra specs; undefined when there is no such type. */
export async function setVolumeTypeExtraSpecs(
  db: Executor,
  id: string,
  specs: Record<string, string>,
): Promise<Record<string, string> | undefined> {
  const [row] = await db
    .update(volumeTypes)
    .set({ extraSpecs: sql`${volumeTypes.extraSpecs} || ${JSON.stringify(specs)}::jsonb`, updatedAt: sql`now()` })
    .where(and(eq(volumeTypes.id, id), eq(volumeTypes.deleted, false)))
    .returning({ extraSpecs: volumeTypes.extraSpecs });
  return row?.extraSpecs;
}

/** Removes one extra spec; undefined when the type or the key does not exist. */
export async function deleteVolumeTypeExtraSpec(
  db: Executor,
  id: string,
  key: string,
): Promise<Record<string, string> | undefined> {
  const [row] = await db
    .update(volumeTypes)
    .set({ extraSpecs: sql`${volumeTypes.extraSpecs} - ${key}::text`, updatedAt: sql`now()` })
    .where(and(eq(volumeTypes.id, id), eq(volumeTypes.deleted, false), sql`${volumeTypes.extraSpecs} ? ${key}::text`))
    .returning({ extraSpecs: volumeTypes.extraSpecs });
  return row?.extraSpecs;
}

/** Gives a project access to a type; false when it already had it. */
export async function addVolumeTypeAccess(db: Executor, typeId: string, projectId: string): Promise<boolean> {
  const rows = await db
    .insert(volumeTypeProjects)
    .values({ volumeTypeId: typeId, projectId })
    .onConflictDoNothing()
    .returning({ id: volumeTypeProjects.volumeTypeId });
  return rows.length > 0;
}

/** Takes a project's access away; false when it had none. */
export async function removeVolumeTypeAccess(db: Executor, typeId: string, projectId: string): Promise<boolean> {
  const rows = await db
    .delete(volumeTypeProjects)
    .where(and(eq(volumeTypeProjects.volumeTypeId, typeId), eq(volumeTypeProjects.projectId, projectId)))
    .returning({ id: volumeTypeProjects.volumeTypeId });
  return rows.length > 0;
}

/** The projects with access to a type, in order. */
export async function listVolumeTypeAccess(db: Executor, typeId: string): Promise<string[]> {
  const rows = await db
    .select({ projectId: volumeTypeProjects.projectId })
    .from(volumeTypeProjects)
    .where(eq(volumeTypeProjects.volumeTypeId, typeId))
    .orderBy(asc(volumeTypeProjects.projectId));
  return rows.map((r) => r.projectId);
}

/** The project's own default type id, if it has one. */
export async function getProjectDefaultTypeId(db: Executor, projectId: string): Promise<string | undefined> {
  const [row] = await db
    .select({ id: defaultVolumeTypes.volumeTypeId })
    .from(defaultVolumeTypes)
    .where(eq(defaultVolumeTypes.projectId, projectId));
  return row?.id;
}

/** Sets (or replaces) a project's default type. */
export async function setProjectDefaultType(db: Executor, projectId: string, typeId: string): Promise<void> {
  await db
    .insert(defaultVolumeTypes)
    .values({ projectId, volumeTypeId: typeId })
    .onConflictDoUpdate({
      target: defaultVolumeTypes.projectId,
      set: { volumeTypeId: typeId, updatedAt: sql`now()` },
    });
}

/** Removes a project's default type; false when it had none. */
export async function unsetProjectDefaultType(db: Executor, projectId: string): Promise<boolean> {
  const rows = await db
    .delete(defaultVolumeTypes)
    .where(eq(defaultVolumeTypes.projectId, projectId))
    .returning({ projectId: defaultVolumeTypes.projectId });
  return rows.length > 0;
}

/** Every project's own default type, by project. */
export async function listProjectDefaultTypes(db: Executor): Promise<{ projectId: string; volumeTypeId: string }[]> {
  return db
    .select({ projectId: defaultVolumeTypes.projectId, volumeTypeId: defaultVolumeTypes.volumeTypeId })
    .from(defaultVolumeTypes)
    .orderBy(asc(defaultVolumeTypes.projectId));
}

/** How many projects have the type as their own default. */
export async function countProjectsDefaultingTo(db: Executor, typeId: string): Promise<number> {
  const [row] = await db.execute<{ n: number }>(
    sql`select count(*)::int as n from ${defaultVolumeTypes} where volume_type_id = ${typeId}`,
  );
  return Number(row?.n ?? 0);
}

export async function insertQosSpecs(db: Executor, row: NewQosSpecsRow): Promise<QosSpecsRow> {
  const [inserted] = await db.insert(qosSpecs).values(row).returning();
  return inserted as QosSpecsRow;
}

/** Undeleted QoS specs by id. */
export async function getQosSpecs(db: Executor, id: string, options: TypeLock = {}): Promise<QosSpecsRow | undefined> {
  const query = db
    .select()
    .from(qosSpecs)
    .where(and(eq(qosSpecs.id, id), eq(qosSpecs.deleted, false)));
  const [row] = options.lock ? await query.for(options.lock) : await query;
  return row;
}

/** A page of undeleted QoS specs in (name, id) order. */
export async function listQosSpecs(
  db: Executor,
  query: { after?: NameCursor | undefined; limit: number },
): Promise<QosSpecsRow[]> {
  return db
    .select()
    .from(qosSpecs)
    .where(
      and(
        eq(qosSpecs.deleted, false),
        query.after
          ? sql`(${qosSpecs.name}, ${qosSpecs.id}) > (${query.after.name}::text, ${query.after.id}::uuid)`
          : undefined,
      ),
    )
    .orderBy(asc(qosSpecs.name), asc(qosSpecs.id))
    .limit(query.limit);
}

/** Merges `specs` into the QoS specs and removes `remove`; undefined when there are no such specs. */
export async function changeQosSpecsKeys(
  db: Executor,
  id: string,
  specs: Record<string, string>,
  remove: string[] = [],
): Promise<QosSpecsRow | undefined> {
  const [row] = await db
    .update(qosSpecs)
    .set({
      specs: remove.reduce(
        (value, key) => sql`${value} - ${key}::text`,
        sql`(${qosSpecs.specs} || ${JSON.stringify(specs)}::jsonb)`,
      ),
      updatedAt: sql`now()`,
    })
    .where(and(eq(qosSpecs.id, id), eq(qosSpecs.deleted, false)))
    .returning();
  return row;
}

/** Soft-deletes QoS specs, after taking them off every type. */
export async function markQosSpecsDeleted(tx: Executor, id: string): Promise<boolean> {
  await tx.update(volumeTypes).set({ qosSpecsId: null, updatedAt: sql`now()` }).where(eq(volumeTypes.qosSpecsId, id));
  const rows = await tx
    .update(qosSpecs)
    .set({ deleted: true, deletedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(qosSpecs.id, id), eq(qosSpecs.deleted, false)))
    .returning({ id: qosSpecs.id });
  return rows.length > 0;
}

/**
 * Associates QoS specs with a type that has none (or already these): the type as it is
 * afterwards, or undefined when the type is gone or holds other specs.
 */
export async function associateQosSpecs(
  db: Executor,
  qosId: string,
  typeId: string,
): Promise<VolumeTypeRow | undefined> {
  const [row] = await db
    .update(volumeTypes)
    .set({ qosSpecsId: qosId, updatedAt: sql`now()` })
    .where(
      and(
        eq(volumeTypes.id, typeId),
        eq(volumeTypes.deleted, false),
        or(isNull(volumeTypes.qosSpecsId), eq(volumeTypes.qosSpecsId, qosId)),
      ),
    )
    .returning();
  return row;
}

/** Takes the QoS specs off the type; false when the type did not hold them. */
export async function disassociateQosSpecs(db: Executor, qosId: string, typeId: string): Promise<boolean> {
  const rows = await db
    .update(volumeTypes)
    .set({ qosSpecsId: null, updatedAt: sql`now()` })
    .where(and(eq(volumeTypes.id, typeId), eq(volumeTypes.qosSpecsId, qosId)))
    .returning({ id: volumeTypes.id });
  return rows.length > 0;
}

/** The undeleted types each of the QoS specs is associated with, by QoS specs id. */
export async function typesOfQosSpecs(db: Executor, qosIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(qosIds.map((id) => [id, []]));
  if (qosIds.length === 0) return out;
  const rows = await db
    .select({ id: volumeTypes.id, qosId: volumeTypes.qosSpecsId })
    .from(volumeTypes)
    .where(and(inArray(volumeTypes.qosSpecsId, qosIds), eq(volumeTypes.deleted, false)))
    .orderBy(asc(volumeTypes.id));
  for (const r of rows) if (r.qosId) out.get(r.qosId)?.push(r.id);
  return out;
}

/** The QoS specs of a type (deleted types included: an old volume's attach still gets them). */
export async function getQosSpecsOfType(db: Executor, typeId: string): Promise<QosSpecsRow | undefined> {
  const [row] = await db
    .select({ qos: qosSpecs })
    .from(volumeTypes)
    .innerJoin(qosSpecs, eq(qosSpecs.id, volumeTypes.qosSpecsId))
    .where(and(eq(volumeTypes.id, typeId), eq(qosSpecs.deleted, false)));
  return row?.qos;
}
