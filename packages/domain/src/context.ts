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
