import { AsyncLocalStorage } from "node:async_hooks";

/** The call whose work is running: its signal, and whether it is still running. */
interface CallScope {
  signal: AbortSignal;
  open: boolean;
}

const currentCall = new AsyncLocalStorage<CallScope>();

/**
 * Runs `work` so that the statements it sends through a {@link createDb} pool are dropped, unsent,
 * when `signal` aborts (the client cancelled, or the call's deadline passed) while they still wait
 * for a free connection. A flood of calls that are then cancelled does not leave its queries
 * queued in front of everyone else's.
 *
 * NOTE: only while `work` runs. Whatever it starts that outlives it (the outbox relay it kicks, a
 * feed it subscribes) inherits this async context, and must not lose its statements to a signal
 * that fires after the call has answered.
 *
 * NOTE: a statement already sent is left to finish (or to the `statement_timeout`). PostgreSQL's
 * cancel request names a backend, not a statement: postgres.js pipelines several queries on one
 * connection, so by the time the request arrives that backend may be running another call's
 * statement, which would fail instead.
 */
export async function cancellingQueuedStatements<T>(
  signal: AbortSignal | undefined,
  work: () => Promise<T>,
): Promise<T> {
  if (!signal) return work();
  const scope: CallScope = { signal, open: true };
  try {
    return await currentCall.run(scope, work);
  } finally {
    scope.open = false;
  }
}

/** A postgres.js query as far as cancelling goes: `state` is set once it is sent on a connection. */
interface CancellableQuery {
  state?: unknown;
  cancel(): unknown;
}

/** Drops `query` if the running call's signal aborts, while the call runs, before the query was sent. */
export function dropIfCancelledWhileQueued(query: CancellableQuery): void {
  const scope = currentCall.getStore();
  if (!scope?.open) return;
  const drop = () => {
    if (scope.open && !query.state) query.cancel();
  };
  if (scope.signal.aborted) drop();
  else scope.signal.addEventListener("abort", drop, { once: true });
}

/** True while a call runs (see {@link cancellingQueuedStatements}) whose signal has aborted. */
export function currentCallCancelled(): boolean {
  const scope = currentCall.getStore();
  return scope?.open === true && scope.signal.aborted;
}
