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
 * Adds `delta` to the project's usage of each resource, only where the result stays within the
 * limit (the project's override, else the default). One UPDATE locks and increments the usage
 * rows; rows a project never had are created first. Returns undefined when every resource was
 * reserved, or the first refused resource; the caller must roll its transaction back then.
 */
export async function reserveQuota(
  db: Executor,
  projectId: string,
  deltas: readonly QuotaDelta[],
): Promise<QuotaRefusal | undefined> {
  const update = () =>
    db.execute<{ resource: string }>(sql`
      update quota_usages u
         set in_use = u.in_use + d.delta, updated_at = now()
        from (values ${valuesList(projectId, deltas)}) as d(project_id, resource, delta, default_limit)
        left join quota_limits l on l.project_id = d.project_id and l.resource = d.resource
       where u.project_id = d.project_id and u.resource = d.resource
         and (coalesce(l.hard_limit, d.default_limit) < 0
              or u.in_use + d.delta <= coalesce(l.hard_limit, d.default_limit))
      returning u.resource`);
  let reserved = await update();
  if (reserved.length < deltas.length) {
    // NOTE: the first reservation of a project creates its usage rows; only then can they be locked.
    const missing = await db.execute<{ n: number }>(sql`
      insert into quota_usages (project_id, resource, in_use)
      select d.project_id, d.resource, 0 from (values ${valuesList(projectId, deltas)})
          as d(project_id, resource, delta, default_limit)
      on conflict do nothing
      returning 1 as n`);
    if (missing.length > 0) {
      // Undo the partial increments of the first attempt before retrying all of them.
      await releaseQuota(
        db,
        projectId,
        deltas.filter((d) => reserved.some((r) => r.resource === d.resource)),
      );
      reserved = await update();
    }
  }
  if (reserved.length === deltas.length) return undefined;
  const refused = deltas.find((d) => !reserved.some((r) => r.resource === d.resource));
  if (!refused) return undefined;
  const [usage] = await db.execute<{ in_use: number; hard_limit: number }>(sql`
    select coalesce(u.in_use, 0)::int as in_use,
           coalesce(l.hard_limit, ${refused.defaultLimit}::int)::int as hard_limit
      from (select 1) one
      left join quota_usages u on u.project_id = ${projectId} and u.resource = ${refused.resource}
      left join quota_limits l on l.project_id = ${projectId} and l.resource = ${refused.resource}`);
  return {
    resource: refused.resource,
    inUse: Number(usage?.in_use ?? 0),
    limit: Number(usage?.hard_limit ?? refused.defaultLimit),
    requested: refused.delta,
  };
}

/** Gives back usage (never below zero). */
export async function releaseQuota(
  db: Executor,
  projectId: string,
  deltas: readonly Pick<QuotaDelta, "resource" | "delta">[],
): Promise<void> {
  for (const d of deltas) {
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

/** The project's usage per resource. */
export async function getQuotaUsage(db: Executor, projectId: string): Promise<Record<string, number>> {
  const rows = await db.execute<{ resource: string; in_use: number }>(
    sql`select resource, in_use from quota_usages where project_id = ${projectId}`,
  );
  return Object.fromEntries(rows.map((r) => [r.resource, Number(r.in_use)]));
}
