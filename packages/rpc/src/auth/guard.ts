import { randomUUID } from "node:crypto";
import type { RequestContext } from "@cinderblock/domain";
import type { Metadata } from "@grpc/grpc-js";
import type { Authenticator, CallCredentials } from "./authenticator.js";
import { header } from "./noauth.js";
import type { Policy, PolicyTarget } from "./policy.js";

/** The rules a method names for one request, and the target they are checked against. */
export interface MethodRules<Req = never> {
  /** Rule names to enforce, all of them (e.g. `volume:delete_snapshot` and, with force, `...:force_delete`). */
  rules(request: Req): string[];
  /** The target; by default the caller's own project and user. */
  target?(request: Req, caller: { projectId: string; userId: string }): PolicyTarget;
}

/**
 * Establishes who is calling and whether they may: authentication, then the method's policy rules,
 * before the handler sees the request (so an admin method refuses a member before it validates
 * anything). Resolves to the request context, or rejects with UNAUTHENTICATED or PERMISSION_DENIED.
 */
export type Guard = (
  method: string,
  request: unknown,
  credentials: CallCredentials,
  requestId: string,
) => Promise<RequestContext>;

/** The caller's `x-request-id` when it is well formed, else a new one. */
export function requestIdOf(md: Metadata): string {
  const given = header(md, "x-request-id");
  return given && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : `req-${randomUUID()}`;
}

/** Options for {@link createGuard}. */
export interface GuardOptions {
  authenticator: Authenticator;
  policy: Policy;
  /** Each method's rules by its name ("CreateSnapshot"); a method missing here is refused. */
  methods: Readonly<Record<string, MethodRules<never>>>;
}

/** A guard enforcing `policy` on identities from `authenticator`. */
export function createGuard(options: GuardOptions): Guard {
  const { authenticator, policy, methods } = options;
  return async (method, request, credentials, requestId) => {
    const identity = await authenticator.authenticate(credentials);
    const base = { project_id: identity.projectId, user_id: identity.userId, roles: identity.roles };
    const creds = { ...base, is_admin: policy.isAdmin(base) };
    const entry = methods[method] as MethodRules<unknown> | undefined;
    // NOTE: a method without rules is a programming error; it must fail closed, not open.
    const rules = entry ? entry.rules(request) : [`cinderblock:undeclared:${method}`];
    const target = entry?.target?.(request, identity) ?? { project_id: identity.projectId, user_id: identity.userId };
    for (const rule of rules) policy.enforce(rule, creds, target);
    return {
      requestId,
      projectId: identity.projectId,
      userId: identity.userId,
      roles: identity.roles,
      isAdmin: creds.is_admin,
    };
  };
}

/**
 * The guard of internal servers whose callers are authenticated by the transport (mTLS) and state
 * on whose behalf they call: the stated identity, and the api's `x-is-admin` (its policy's
 * `context_is_admin`) or the role `admin` for an administrator; no policy of its own.
 */
export function statedIdentityGuard(authenticator: Authenticator): Guard {
  return async (_method, _request, credentials, requestId) => {
    const identity = await authenticator.authenticate(credentials);
    return {
      requestId,
      projectId: identity.projectId,
      userId: identity.userId,
      roles: identity.roles,
      isAdmin: header(credentials.metadata, "x-is-admin") === "true" || identity.roles.includes("admin"),
    };
  };
}
