import type { RequestContext as CastContext } from "@cinderblock/proto";

/** Who is asking, as the api's authentication strategy established it. */
export interface RequestContext {
  requestId: string;
  projectId: string;
  userId: string;
  roles: string[];
  /**
   * Whether the caller is an administrator (the policy's `context_is_admin` rule, computed at the
   * boundary); when absent (a context rebuilt from a cast), holding the exact role `admin`.
   */
  isAdmin?: boolean;
}

/** Whether the caller is an administrator (may see and act on every project's resources). */
export function isAdmin(ctx: RequestContext): boolean {
  return ctx.isAdmin ?? ctx.roles.includes("admin");
}

/** The request context a cast carries to the scheduler or a volume host. */
export function castContext(ctx: RequestContext): CastContext {
  return { requestId: ctx.requestId, projectId: ctx.projectId, userId: ctx.userId, roles: ctx.roles };
}
