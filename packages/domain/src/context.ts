import type { RequestContext as CastContext } from "@cinderblock/proto";
import { CinderblockError } from "./errors.js";

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
  /**
   * Aborted when the caller gave up (cancelled, or its deadline or the server's passed): work that
   * waits (a quiesce, a snapshot to finish) stops waiting and undoes what it must.
   */
  signal?: AbortSignal;
}

/** Throws DEADLINE_EXCEEDED when the call behind `ctx` was given up (see {@link RequestContext.signal}). */
export function throwIfGivenUp(ctx: RequestContext): void {
  if (ctx.signal?.aborted) throw givenUp(ctx.signal);
}

/** The error for a call whose signal aborted: its reason when it is an Error, else DEADLINE_EXCEEDED. */
function givenUp(signal: AbortSignal): Error {
  return signal.reason instanceof Error
    ? signal.reason
    : new CinderblockError("DEADLINE_EXCEEDED", "the call was cancelled or ran past its deadline");
}

/**
 * `work`, or a rejection with {@link givenUp} as soon as the call's signal aborts (the work itself
 * goes on; the caller undoes what it must).
 */
export function unlessGivenUp<T>(ctx: RequestContext, work: Promise<T>): Promise<T> {
  const signal = ctx.signal;
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(givenUp(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(givenUp(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Whether the caller is an administrator (may see and act on every project's resources). */
export function isAdmin(ctx: RequestContext): boolean {
  return ctx.isAdmin ?? ctx.roles.includes("admin");
}

/** The request context a cast carries to the scheduler or a volume host. */
export function castContext(ctx: RequestContext): CastContext {
  return { requestId: ctx.requestId, projectId: ctx.projectId, userId: ctx.userId, roles: ctx.roles };
}
