import { CinderblockError } from "@cinderblock/domain";
import type { RestReply } from "./faults.js";
import { authorizeAs, p, type RestCall, type Route, type UnauthorizedCall } from "./http.js";
import { optionalString, parseBoolean } from "./input.js";
import { atLeast } from "./microversion.js";
import { poolsView, serviceListView } from "./views.js";

const bad = (message: string) => new CinderblockError("INVALID_ARGUMENT", message);

/** A request body's fields (400 when it is not a JSON object). */
function fields(body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw bad("Malformed request body: must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/** The `host` a service update names (400 naming it when missing). */
function hostOf(body: Record<string, unknown>): string {
  const host = optionalString(body, "host");
  if (!host) throw bad("host: is required");
  return host;
}

/** The gRPC method (for its policy rules) of each `PUT /os-services/{action}`. */
const SERVICE_ACTIONS: Record<string, string> = {
  enable: "EnableService",
  disable: "DisableService",
  "disable-log-reason": "DisableService",
  freeze: "FreezeHost",
  thaw: "ThawHost",
};

/** `GET /os-services` (`host`, `binary` and the deprecated `service` filters). */
async function listServices(call: RestCall): Promise<RestReply> {
  const services = await call.useCases.listServices(call.ctx, {
    host: call.query.get("host") ?? "",
    binary: call.query.get("binary") || call.query.get("service") || "",
  });
  return { status: 200, body: { services: services.map((s) => serviceListView(s, call.view)) } };
}

/**
 * `PUT /os-services/{action}`: enable, disable (with `disable-log-reason` a reason), freeze and thaw.
 * Enable and disable answer Cinder's `{disabled, status, host, service, binary[, disabled_reason]}`;
 * freeze and thaw an empty 200.
 */
async function updateService(call: RestCall): Promise<RestReply> {
  const action = call.params.action ?? "";
  // Cinder answers an action it does not know (failover_host, set-log...) with 400 "Unknown action".
  if (!SERVICE_ACTIONS[action]) throw bad(`Unknown action: ${action}`);
  const body = fields(call.body);
  const host = hostOf(body);
  const uc = call.useCases;
  if (action === "freeze" || action === "thaw") {
    try {
      await (action === "freeze" ? uc.freezeHost(call.ctx, host) : uc.thawHost(call.ctx, host));
    } catch (error) {
      // Cinder answers a freeze or thaw of a host it does not know with 400 (InvalidInput), not 404.
      if (error instanceof CinderblockError && error.code === "NOT_FOUND") throw bad(`Host not found: ${host}`);
      throw error;
    }
    return { status: 200 };
  }
  const service = optionalString(body, "service") ?? "";
  const binary = optionalString(body, "binary") ?? "";
  if (!binary && !service) throw bad("binary: is required");
  const selector = { host, binary: binary || service };
  const shown = { host, service, binary };
  if (action === "enable") {
    await uc.enableService(call.ctx, selector);
    return { status: 200, body: { disabled: false, disabled_reason: null, status: "enabled", ...shown } };
  }
  if (action === "disable") {
    await uc.disableService(call.ctx, { ...selector, disabledReason: "" });
    return { status: 200, body: { disabled: true, status: "disabled", ...shown } };
  }
  // disable-log-reason
  const reason = (optionalString(body, "disabled_reason") ?? "").trim();
  if (!reason) throw bad("disabled_reason: is required (1 to 255 characters)");
  await uc.disableService(call.ctx, { ...selector, disabledReason: reason });
  return { status: 200, body: { disabled: true, disabled_reason: reason, status: "disabled", ...shown } };
}

/**
 * `GET /scheduler-stats/get_pools` (`detail`; the `name` filter from 3.28 and `volume_type` from 3.35,
 * ignored before, as Cinder).
 */
async function getPools(call: RestCall): Promise<RestReply> {
  const detail = parseBoolean(call.query.get("detail"), "detail");
  const pools = await call.useCases.listPools(call.ctx, {
    name: atLeast(call.version, "3.28") ? (call.query.get("name") ?? "") : "",
    volumeType: atLeast(call.version, "3.35") ? (call.query.get("volume_type") ?? "") : "",
  });
  return { status: 200, body: { pools: poolsView(pools, detail) } };
}

/** Operators' os-services and scheduler-stats. */
export const serviceRoutes: Route[] = [
  { method: "GET", path: p("/os-services"), authorize: authorizeAs("ListServices"), handle: listServices },
  {
    method: "PUT",
    path: p("/os-services/{action}"),
    authorize: (call: UnauthorizedCall) => {
      // NOTE: an action we do not serve is authorized as the list, then refused with 400 by name.
      return { method: SERVICE_ACTIONS[call.params.action ?? ""] ?? "ListServices", request: {} };
    },
    handle: updateService,
  },
  { method: "GET", path: p("/scheduler-stats/get_pools"), authorize: authorizeAs("ListPools"), handle: getPools },
];
