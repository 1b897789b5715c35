import { sql } from "drizzle-orm";
import type { Executor } from "./client.js";

/** One resource to reserve: the amount, and the limit that applies when the project has no override. */
export interface QuotaDelta {
  resource: string;
  delta: number;
  /** Default hard limit; a negative limit means unlimited (as in Cinder). */
  defaultLimit: number;
}

/** The usage and limit of a resource whose reservation was refused. */
export interface QuotaRefusal {
  resource: string;
  inUse: number;
  limit: number;
  requested: number;
}

function valuesList(projectId: string, deltas: readonly QuotaDelta[]) {
  return sql.join(
    deltas.map((d) => sql`(${projectId}::text, ${d.resource}::text, ${d.delta}::int, ${d.defaultLimit}::int)`),
    sql`, `,
  );
}

/**
 * Adds `delta` to the project's usage of each resource, only if every result stays within its
 * limit (the project's override, else the default). One statement, one round trip: the usage rows
 * are locked in resource order (so concurrent reservations queue instead of deadlocking), checked,
 * and incremented only if all pass; never a count over the resource tables. Rows a project never
 * had are created first. Returns undefined when all were reserved, or the first refused resource;
 * the caller must then roll its transaction back.
 */
export async function reserveQuota(
  db: Executor,
  projectId: string,
  deltas: readonly QuotaDelta[],
): Promise<QuotaRefusal | undefined> {
  const sorted = [...deltas].sort((a, b) => a.resource.localeCompare(b.resource));
  // NOTE: `locked` takes every row lock (in order) before `reserved` updates anything: `verdict`
  // aggregates all of `locked` first. The UPDATE touches only rows this statement holds, and
  // READ COMMITTED hands both the lock and the update the newest version, so the check and the
  // increment see the same usage. The quota rows stay locked for less: one round trip, not two.
  const reserve = () =>
    db.execute<{ resource: string; in_use: number; hard_limit: number; reserved: number }>(sql`
      with d(project_id, resource, delta, default_limit) as (values ${valuesList(projectId, sorted)}),
      locked as (
        select u.resource, u.in_use, coalesce(l.hard_limit, d.default_limit) as hard_limit, d.delta
          from d
          join quota_usages u on u.project_id = d.project_id and u.resource = d.resource
          left join quota_limits l on l.project_id = d.project_id and l.resource = d.resource
         order by u.resource
           for update of u),
      verdict as (
        select count(*) = ${sorted.length} and coalesce(bool_and(hard_limit < 0 or in_use + delta <= hard_limit), true)
               as ok
          from locked),
      reserved as (
        update quota_usages u set in_use = u.in_use + locked.delta, updated_at = now()
          from locked, verdict
         where verdict.ok and u.project_id = ${projectId} and u.resource = locked.resource
        returning u.resource)
      select locked.resource, locked.in_use, locked.hard_limit, (select count(*) from reserved)::int as reserved
        from locked`);
  let rows = await reserve();
  if (rows.length < sorted.length) {
    // NOTE: a project's first reservation creates its usage rows (in resource order). A concurrent
    // first reservation may be creating them too: our insert then waits for it and does nothing,
    // and the second attempt sees its rows.
    await db.execute(sql`
      insert into quota_usages (project_id, resource, in_use)
      select d.project_id, d.resource, 0 from (values ${valuesList(projectId, sorted)})
          as d(project_id, resource, delta, default_limit)
       order by d.resource
      on conflict do nothing`);
    rows = await reserve();
  }
  if (rows.length === sorted.length && Number(rows[0]?.reserved) === sorted.length) return undefined;
  return firstRefusal(projectId, sorted, rows);
}

/**
 * The first resource (of `sorted`, in order) that a reservation would take past its limit, from
 * the locked usage rows a refused reservation saw. Throws when the rows do not explain the refusal
 * (a usage row is missing).
 */
export function firstRefusal(
  projectId: string,
  sorted: readonly QuotaDelta[],
  rows: readonly { resource: string; in_use: number; hard_limit: number }[],
): QuotaRefusal {
  for (const d of sorted) {
    const row = rows.find((r) => r.resource === d.resource);
    const inUse = Number(row?.in_use ?? 0);
    const limit = Number(row?.hard_limit ?? d.defaultLimit);
    if (limit >= 0 && inUse + d.delta > limit) {
      return { resource: d.resource, inUse, limit, requested: d.delta };
    }
  }
  throw new Error(`quota rows of project ${projectId} missing for ${sorted.map((d) => d.resource).join(", ")}`);
}

/** Gives back usage (never below zero), locking rows in resource order like {@link reserveQuota}. */
export async function releaseQuota(
  db: Executor,
  projectId: string,
  deltas: readonly Pick<QuotaDelta, "resource" | "delta">[],
): Promise<void> {
  // NOTE: the same lock order as reserveQuota, or a release and a reservation deadlock.
  for (const d of [...deltas].sort((a, b) => a.resource.localeCompare(b.resource))) {
    await db.execute(sql`
      update quota_usages set in_use = greatest(in_use - ${d.delta}::int, 0), updated_at = now()
       where project_id = ${projectId} and resource = ${d.resource}`);
  }
}

/** Sets a project's hard limit for a resource, overriding the default. */
export async function setQuotaLimit(db: Executor, projectId: string, resource: string, limit: number): Promise<void> {
  await db.execute(sql`
    insert into quota_limits (project_id, resource, hard_limit) values (${projectId}, ${resource}, ${limit})
    on conflict (project_id, resource) do update set hard_limit = excluded.hard_limit`);
}

/** The project's own hard limits (overrides of the defaults) per resource. */
export async function getQuotaLimits(db: Executor, projectId: string): Promise<Record<string, number>> {
  const rows = await db.execute<{ resource: string; hard_limit: number }>(
    sql`select resource, hard_limit from quota_limits where project_id = ${projectId}`,
  );
  return Object.fromEntries(rows.map((r) => [r.resource, Number(r.hard_limit)]));
}

/** The project's usage per resource. */
export async function getQuotaUsage(db: Executor, projectId: string): Promise<Record<string, number>> {
  const rows = await db.execute<{ resource: string; in_use: number }>(
    sql`select resource, in_use from quota_usages where project_id = ${projectId}`,
  );
  return Object.fromEntries(rows.map((r) => [r.resource, Number(r.in_use)]));
}
