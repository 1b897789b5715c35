import { and, eq, lte, sql } from "drizzle-orm";
import type { Executor } from "./client.js";
import { operations } from "./schema.js";
import type { OperationKind, OperationRow } from "./types.js";

/** Fields of a new in-flight operation. */
export interface NewOperation {
  id: string;
  kind: OperationKind;
  resourceId: string;
  projectId: string;
  /** Seconds until the reconciler may dispatch it again. */
  timeoutSeconds: number;
  /** Parameters a re-dispatch needs that the resource row does not hold. */
  detail?: Record<string, unknown>;
}

/** Records an in-flight operation (in the transaction that creates its resource). */
export async function insertOperation(db: Executor, op: NewOperation): Promise<void> {
  await db.insert(operations).values({
    id: op.id,
    kind: op.kind,
    resourceId: op.resourceId,
    projectId: op.projectId,
    detail: op.detail ?? {},
    deadlineAt: sql`now() + make_interval(secs => ${op.timeoutSeconds})`,
  });
}

/** Marks several operations `done` in one statement; those already finished stay as they are. */
export async function finishOperationsDone(db: Executor, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db
    .update(operations)
    .set({ state: "done", lastError: "", updatedAt: sql`now()` })
    .where(and(sql`${operations.id} = any(${sql.param([...ids])}::uuid[])`, eq(operations.state, "pending")));
}

/** Marks an operation finished (`done` or `failed`); a no-op when it already is. */
export async function finishOperation(
  db: Executor,
  id: string,
  state: "done" | "failed",
  lastError = "",
): Promise<void> {
  await db
    .update(operations)
    .set({ state, lastError, updatedAt: sql`now()` })
    .where(and(eq(operations.id, id), eq(operations.state, "pending")));
}

/** Pending operations past their deadline, locked for this reconciler pass (others skip them). */
export async function claimOverdueOperations(db: Executor, limit: number): Promise<OperationRow[]> {
  return db
    .select()
    .from(operations)
    .where(and(eq(operations.state, "pending"), lte(operations.deadlineAt, sql`now()`)))
    .orderBy(operations.deadlineAt)
    .limit(limit)
    .for("update", { skipLocked: true });
}

/** Counts one more dispatch of an operation and moves its deadline. */
export async function retryOperation(db: Executor, id: string, timeoutSeconds: number): Promise<number> {
  const [row] = await db
    .update(operations)
    .set({
      attempts: sql`${operations.attempts} + 1`,
      deadlineAt: sql`now() + make_interval(secs => ${timeoutSeconds})`,
      updatedAt: sql`now()`,
    })
    .where(eq(operations.id, id))
    .returning({ attempts: operations.attempts });
  return row?.attempts ?? 0;
}

/** A backend that failed a volume's create, kept on the create's operation (see {@link recordFailedPlacement}). */
export interface FailedPlacementRecord {
  /** "<host>@<backend>". */
  host: string;
  /** The backend's own words. */
  error: string;
}

/**
 * Locks a pending operation and reads the placements that already failed (a `create_volume`
 * rescheduled by its volume hosts); undefined when the operation is no longer pending.
 */
export async function lockFailedPlacements(db: Executor, id: string): Promise<FailedPlacementRecord[] | undefined> {
  const [row] = await db
    .select({ detail: operations.detail })
    .from(operations)
    .where(and(eq(operations.id, id), eq(operations.state, "pending")))
    .for("update");
  if (!row) return undefined;
  const placements = row.detail.failedPlacements;
  return Array.isArray(placements) ? (placements as FailedPlacementRecord[]) : [];
}

/**
 * Records the placements that failed so far on a pending create's operation (the reconciler
 * re-sends the create with them), and gives it again the time it was last given: a create handed
 * back to the scheduler is the same operation, not a lost dispatch.
 */
export async function recordFailedPlacements(
  db: Executor,
  id: string,
  placements: readonly FailedPlacementRecord[],
): Promise<void> {
  await db
    .update(operations)
    .set({
      detail: sql`${operations.detail} || jsonb_build_object('failedPlacements', ${JSON.stringify(placements)}::jsonb)`,
      deadlineAt: sql`now() + (${operations.deadlineAt} - ${operations.updatedAt})`,
      updatedAt: sql`now()`,
    })
    .where(and(eq(operations.id, id), eq(operations.state, "pending")));
}

/** The kinds of a resource's operations still pending (in flight), oldest first. */
export async function pendingOperationsOf(db: Executor, resourceId: string): Promise<string[]> {
  const rows = await db
    .select({ kind: operations.kind })
    .from(operations)
    .where(and(eq(operations.resourceId, resourceId), eq(operations.state, "pending")))
    .orderBy(operations.createdAt);
  return rows.map((r) => r.kind);
}
