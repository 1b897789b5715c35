import { type SQL, sql } from "drizzle-orm";
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

/**
 * The common table expressions of a quota reservation, shared by {@link reserveQuota} and the
 * one-statement snapshot create: `d` (the deltas), `locked` (the project's usage rows, locked in
 * resource order, only when `gate` holds), `verdict` (`gate_ok`, `quota_rows`, `quota_ok`: every
 * row there and every resource within its limit) and `reserved` (the increments, made only when
 * both hold). `sorted` must be in resource order.
 *
 * NOTE: `locked` takes every row lock (in order) before `reserved` updates anything: `verdict`
 * aggregates all of `locked` first. The UPDATE touches only rows this statement holds, and READ
 * COMMITTED hands both the lock and the update the newest version, so the check and the increment
 * see the same usage. Usage is a row, never a count over the resource tables.
 */
export function reservationCtes(projectId: string, sorted: readonly QuotaDelta[], gate: SQL = sql`true`): SQL {
  return sql`
      d as (
        select * from unnest(${sql.param(sorted.map((q) => q.resource))}::text[],
                             ${sql.param(sorted.map((q) => q.delta))}::int[],
                             ${sql.param(sorted.map((q) => q.defaultLimit))}::int[]) as d(resource, delta, default_limit)),
      locked as (
        select u.resource, u.in_use, coalesce(l.hard_limit, d.default_limit) as hard_limit, d.delta
          from d
          join quota_usages u on u.project_id = ${projectId} and u.resource = d.resource
          left join quota_limits l on l.project_id = ${projectId} and l.resource = d.resource
         where ${gate}
         order by u.resource
           for update of u),
      verdict as (
        select ${gate} as gate_ok, count(*)::int as quota_rows,
               count(*) = ${sorted.length}::int
                 and coalesce(bool_and(hard_limit < 0 or in_use + delta <= hard_limit), true) as quota_ok
          from locked),
      reserved as (
        update quota_usages u set in_use = u.in_use + locked.delta, updated_at = now()
          from locked, verdict
         where verdict.gate_ok and verdict.quota_ok
           and u.project_id = ${projectId} and u.resource = locked.resource
        returning u.resource)`;
}

/**
 * Creates the project's usage rows for these resources (at 0) where it has none yet, in resource
 * order; a no-op for rows that exist. A reservation then only has rows to lock.
 */
export async function ensureQuotaRows(db: Executor, projectId: string, resources: readonly string[]): Promise<void> {
  // NOTE: a concurrent insert of the same rows waits for this one and does nothing.
  await db.execute(sql`
    insert into quota_usages (project_id, resource, in_use)
    select ${projectId}, r, 0 from unnest(${sql.param([...resources].sort())}::text[]) as r
     order by r
    on conflict do nothing`);
}

/**
 * Adds `delta` to the project's usage of each resource, only if every result stays within its
 * limit (the project's override, else the default). One statement, one round trip (see
 * {@link reservationCtes}); rows a project never had are created first. Returns undefined when all
 * were reserved, or the first refused resource; the caller must then roll its transaction back.
 */
export async function reserveQuota(
  db: Executor,
  projectId: string,
  deltas: readonly QuotaDelta[],
): Promise<QuotaRefusal | undefined> {
  const sorted = [...deltas].sort((a, b) => a.resource.localeCompare(b.resource));
  const reserve = () =>
    db.execute<{ resource: string; in_use: number; hard_limit: number; quota_rows: number; reserved: number }>(sql`
      with ${reservationCtes(projectId, sorted)}
      select locked.resource, locked.in_use, locked.hard_limit, (select count(*) from reserved)::int as reserved
        from locked`);
  let rows = await reserve();
  if (rows.length < sorted.length) {
    await ensureQuotaRows(
      db,
      projectId,
      sorted.map((d) => d.resource),
    );
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

/** Drops the project's own hard limits (the defaults apply again); how many there were. */
export async function deleteQuotaLimits(db: Executor, projectId: string): Promise<number> {
  const rows = await db.execute(sql`delete from quota_limits where project_id = ${projectId} returning resource`);
  return rows.length;
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
