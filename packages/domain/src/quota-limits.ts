import { type Db, deleteQuotaLimits, getQuotaLimits, getQuotaUsage, setQuotaLimit, transaction } from "@cinderblock/db";
import { CinderblockError } from "./errors.js";
import type { QuotaDefaults } from "./quota.js";
import type { ApiDependencies, ApiUseCases } from "./use-cases.js";

/** A resource's quota: its limit (-1 unlimited) and usage. */
export interface QuotaView {
  resource: string;
  limit: number;
  inUse: number;
}

const QUOTA_RESOURCES = ["volumes", "snapshots", "gigabytes"] as const;
/** Cinder's per-volume-type quotas: `volumes_<type>`, `snapshots_<type>`, `gigabytes_<type>`. */
const TYPED_RESOURCE = /^(volumes|snapshots|gigabytes)_.{1,255}$/s;

/** The base resources, then every per-volume-type one the project has a limit or usage for. */
async function quotas(db: Db, defaults: QuotaDefaults, projectId: string): Promise<QuotaView[]> {
  const [limits, usage] = await Promise.all([getQuotaLimits(db, projectId), getQuotaUsage(db, projectId)]);
  const typed = [...new Set([...Object.keys(limits), ...Object.keys(usage)])]
    .filter((r) => TYPED_RESOURCE.test(r))
    .sort();
  return [
    ...QUOTA_RESOURCES.map((resource) => ({
      resource,
      limit: limits[resource] ?? defaults[resource],
      inUse: usage[resource] ?? 0,
    })),
    ...typed.map((resource) => ({ resource, limit: limits[resource] ?? -1, inUse: usage[resource] ?? 0 })),
  ];
}

/**
 * Cinder's `api/contrib/quotas.py` `QuotaSetsController.show` (with usage): a project's limits and
 * what it uses; another project's only for an admin.
 */
export function getQuotasUseCase(deps: Pick<ApiDependencies, "db" | "quota">): ApiUseCases["getQuotas"] {
  return async (ctx, rawProjectId) => {
    const projectId = rawProjectId || ctx.projectId;
    return { projectId, quotas: await quotas(deps.db, deps.quota, projectId) };
  };
}

/**
 * Cinder's `api/contrib/quotas.py` `QuotaSetsController.update` (admin only): new limits, none
 * below what is in use.
 */
export function updateQuotasUseCase(deps: Pick<ApiDependencies, "db" | "quota">): ApiUseCases["updateQuotas"] {
  const { db } = deps;
  return async (ctx, rawProjectId, limits) => {
    const projectId = rawProjectId || ctx.projectId;
    const current = await quotas(db, deps.quota, projectId);
    for (const [resource, limit] of Object.entries(limits)) {
      const known =
        current.find((q) => q.resource === resource) ??
        (TYPED_RESOURCE.test(resource) ? { resource, limit: -1, inUse: 0 } : undefined);
      if (!known) {
        throw new CinderblockError(
          "INVALID_ARGUMENT",
          `limits.${resource}: unknown resource (${QUOTA_RESOURCES.join(", ")}, or <resource>_<volume type>)`,
        );
      }
      if (!Number.isInteger(limit) || limit < -1) {
        throw new CinderblockError("INVALID_ARGUMENT", `limits.${resource}: must be -1 (unlimited) or more`);
      }
      if (limit >= 0 && limit < known.inUse) {
        throw new CinderblockError(
          "INVALID_ARGUMENT",
          `limits.${resource}: must be at least ${known.inUse}, the amount in use`,
        );
      }
    }
    await transaction(db, async (tx) => {
      for (const [resource, limit] of Object.entries(limits)) await setQuotaLimit(tx, projectId, resource, limit);
    });
    return { projectId, quotas: await quotas(db, deps.quota, projectId) };
  };
}

/**
 * Cinder's `api/contrib/quotas.py` `QuotaSetsController.delete` (admin only): the project's own
 * limits go, so the configured defaults apply again; usage stays as it is.
 */
export function deleteQuotasUseCase(deps: Pick<ApiDependencies, "db" | "quota">): ApiUseCases["deleteQuotas"] {
  return async (ctx, rawProjectId) => {
    const projectId = rawProjectId || ctx.projectId;
    await deleteQuotaLimits(deps.db, projectId);
    return { projectId, quotas: await quotas(deps.db, deps.quota, projectId) };
  };
}
