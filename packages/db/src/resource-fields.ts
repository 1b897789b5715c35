import { sql } from "drizzle-orm";
import type { Executor } from "./client.js";

/** The tenant-owned tables whose name, description and metadata users edit the same way. */
export type EditableTable = "volumes" | "snapshots";

/** Changes name and/or description; false when the project has no such (undeleted) row. */
export async function updateNameDescription(
  db: Executor,
  table: EditableTable,
  projectId: string,
  id: string,
  fields: { name?: string | undefined; description?: string | undefined },
): Promise<boolean> {
  const rows = await db.execute(sql`
    update ${sql.identifier(table)}
       set name = coalesce(${fields.name ?? null}::varchar, name),
           description = coalesce(${fields.description ?? null}::varchar, description),
           updated_at = now()
     where id = ${id} and project_id = ${projectId} and not deleted
    returning id`);
  return rows.length > 0;
}

/**
 * Merges `metadata` into the row's (or replaces it) and returns the result, or undefined when the
 * project has no such row. Fails (and the caller's transaction must roll back) past `maxEntries`.
 */
export async function setMetadata(
  db: Executor,
  table: EditableTable,
  projectId: string,
  id: string,
  metadata: Record<string, string>,
  replace: boolean,
): Promise<Record<string, string> | undefined> {
  const value = sql`${JSON.stringify(metadata)}::jsonb`;
  const [row] = await db.execute<{ metadata: Record<string, string> }>(sql`
    update ${sql.identifier(table)}
       set metadata = ${replace ? value : sql`metadata || ${value}`}, updated_at = now()
     where id = ${id} and project_id = ${projectId} and not deleted
    returning metadata`);
  return row?.metadata;
}

/** Removes one metadata key; undefined when the row or the key does not exist. */
export async function deleteMetadataKey(
  db: Executor,
  table: EditableTable,
  projectId: string,
  id: string,
  key: string,
): Promise<Record<string, string> | undefined> {
  const [row] = await db.execute<{ metadata: Record<string, string> }>(sql`
    update ${sql.identifier(table)}
       set metadata = metadata - ${key}::text, updated_at = now()
     where id = ${id} and project_id = ${projectId} and not deleted and metadata ? ${key}::text
    returning metadata`);
  return row?.metadata;
}

/**
 * A status change's fields with the failure detail kept in step: a change that sets
 * `statusReason` without a `statusDetail` clears the detail, so an old backend message never
 * outlives the reason it explained.
 */
export function withDetail<T extends { statusReason?: string; statusDetail?: string }>(changes: T): T {
  return changes.statusReason !== undefined && changes.statusDetail === undefined
    ? { ...changes, statusDetail: "" }
    : changes;
}
