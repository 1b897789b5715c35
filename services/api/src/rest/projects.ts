import { CinderblockError } from "@cinderblock/domain";
import { authorizeAs, p, type RestCall, type Route } from "./http.js";
import { element, parseBoolean, parseInteger } from "./input.js";
import { availabilityZonesView, limitsView, quotaSetView } from "./views.js";

const target = (call: { params: Record<string, string> }) => ({ projectId: call.params.project ?? "" });

/** `PUT /os-quota-sets/{project}`: the limits Cinderblock keeps; the rest of Cinder's keys are refused by name. */
async function updateQuotaSet(call: RestCall) {
  const given = element(call.body, "quota_set");
  const limits: Record<string, number> = {};
  for (const [key, value] of Object.entries(given)) {
    // NOTE: clients send these alongside the limits (python-cinderclient sends `skip_validation` and
    // `tenant_id`; Cinder's NON_QUOTA_KEYS are `tenant_id` and `id`).
    if (key === "skip_validation" || key === "id" || key === "tenant_id") continue;
    limits[key] = parseInteger(value, `quota_set.${key}`);
  }
  const { quotas } = await call.useCases.updateQuotas(call.ctx, call.params.project ?? "", limits);
  return { status: 200, body: { quota_set: quotaSetView(undefined, quotas, false) } };
}

/** Quotas (os-quota-sets show, defaults, update and delete; limits) and availability zones. */
export const projectRoutes: Route[] = [
  {
    method: "GET",
    path: p("/limits"),
    authorize: authorizeAs("GetQuotas"),
    handle: async (call) => {
      const { quotas } = await call.useCases.getQuotas(call.ctx, "");
      return { status: 200, body: { limits: limitsView(quotas) } };
    },
  },
  {
    method: "GET",
    path: p("/os-quota-sets/{project}"),
    authorize: authorizeAs("GetQuotas", target),
    handle: async (call) => {
      const usage = parseBoolean(call.query.get("usage"), "usage");
      const { projectId, quotas } = await call.useCases.getQuotas(call.ctx, call.params.project ?? "");
      return { status: 200, body: { quota_set: quotaSetView(projectId, quotas, usage) } };
    },
  },
  {
    method: "GET",
    path: p("/os-quota-sets/{project}/defaults"),
    authorize: authorizeAs("GetQuotas", target),
    handle: async (call) => {
      const quotas = Object.entries(call.quotaDefaults).map(([resource, limit]) => ({ resource, limit, inUse: 0 }));
      return { status: 200, body: { quota_set: quotaSetView(call.params.project ?? "", quotas, false) } };
    },
  },
  {
    method: "PUT",
    path: p("/os-quota-sets/{project}"),
    authorize: authorizeAs("UpdateQuotas", target),
    handle: updateQuotaSet,
  },
  // NOTE: Cinder answers 200 with no body; the project's own limits go and the defaults apply again.
  {
    method: "DELETE",
    path: p("/os-quota-sets/{project}"),
    authorize: authorizeAs("DeleteQuotas", target),
    handle: async (call) => {
      await call.useCases.deleteQuotas(call.ctx, call.params.project ?? "");
      return { status: 200 };
    },
  },
  {
    method: "GET",
    path: p("/os-availability-zone"),
    authorize: authorizeAs("ListAvailabilityZones"),
    handle: async (call) => ({
      status: 200,
      body: { availabilityZoneInfo: availabilityZonesView(await call.useCases.listAvailabilityZones(call.ctx)) },
    }),
  },
];

/** Refuses a request whose project in the path is not the caller's (Cinder: "Malformed request URL"). */
export function checkPathProject(pathProject: string | undefined, callerProject: string): void {
  if (pathProject !== undefined && pathProject !== callerProject) {
    throw new CinderblockError(
      "INVALID_ARGUMENT",
      `Malformed request URL: URL's project_id '${pathProject}' doesn't match Context's project_id '${callerProject}'`,
    );
  }
}
