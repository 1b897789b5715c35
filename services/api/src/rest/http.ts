import type { ApiUseCases, PageTokens, RequestContext } from "@cinderblock/domain";
import type { RestReply } from "./faults.js";
import { parseBoolean } from "./input.js";
import type { Microversion } from "./microversion.js";
import type { ViewContext } from "./views.js";

/** One REST call as a route's handler sees it, after authentication and policy. */
export interface RestCall {
  /** The path's named parts (`id`, `key`...). */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The parsed JSON body (undefined when there is none). */
  body: unknown;
  version: Microversion;
  ctx: RequestContext;
  view: ViewContext;
  useCases: ApiUseCases;
  /** The same page tokens the gRPC lists issue (a Cinder `marker` becomes one). */
  pageTokens: PageTokens;
  /** The configured default quotas (os-quota-sets/defaults). */
  quotaDefaults: Record<string, number>;
  /** The request the policy allowed (see {@link Route.authorize}'s `otherwise`). */
  granted: { allProjects?: boolean };
}

/** What a route needs before it is authorized: the call without the identity. */
export type UnauthorizedCall = Omit<RestCall, "ctx" | "view" | "granted">;

/** One route: a method and path, the gRPC method whose policy rules it is held to, and its handler. */
export interface Route {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Matched against the path after `/v3[/{project_id}]`; named groups become `params`. */
  path: RegExp;
  /**
   * The public gRPC method whose API_METHOD_RULES apply, and the request those rules look at
   * (`allProjects`, `force`, `projectId`), so both front doors enforce one policy.
   */
  authorize(call: UnauthorizedCall): { method: string; request: object; otherwise?: object };
  handle(call: RestCall): Promise<RestReply>;
}

/** The whole path as a pattern with named `{param}` segments, e.g. `p("/volumes/{id}")`. */
export function p(template: string): RegExp {
  const source = template.replace(/\{(\w+)\}/g, "(?<$1>[^/]+)");
  return new RegExp(`^${source}$`);
}

/**
 * Authorizes a route under `method` with the rules' request `request` (default none). A list asking
 * for `all_tenants` that the policy refuses is served for the caller's own project instead, as
 * Cinder ignores `all_tenants` from those who may not use it (cinderclient sends it on every lookup
 * by name).
 */
export const authorizeList = (method: string) => (call: UnauthorizedCall) => {
  const allProjects = parseBoolean(call.query.get("all_tenants"), "all_tenants");
  return { method, request: { allProjects }, otherwise: allProjects ? { allProjects: false } : undefined };
};

/** Authorizes a route under `method` with the rules' request `request` (default none). */
export const authorizeAs =
  (method: string, request: (call: UnauthorizedCall) => object = () => ({})) =>
  (call: UnauthorizedCall) => ({ method, request: request(call) });
