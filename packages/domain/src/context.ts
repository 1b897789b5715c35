import type { RequestContext as CastContext } from "@cinderblock/proto";
import { CinderblockError } from "./errors.js";

/** Who is asking, as the api established it (from noauth metadata for now). */
export interface RequestContext {
  requestId: string;
  projectId: string;
  userId: string;
  roles: string[];
}

/** Whether the caller holds the admin role. */
export function isAdmin(ctx: RequestContext): boolean {
  return ctx.roles.includes("admin");
}

/** Refuses a caller without the admin role: PERMISSION_DENIED naming what was asked. */
export function requireAdmin(ctx: RequestContext, what: string): void {
  if (!isAdmin(ctx)) throw new CinderblockError("PERMISSION_DENIED", `${what} requires the admin role`);
}

/** The request context a cast carries to the scheduler or a volume host. */
export function castContext(ctx: RequestContext): CastContext {
  return { requestId: ctx.requestId, projectId: ctx.projectId, userId: ctx.userId, roles: ctx.roles };
}
