import { type Db, getSnapshot, listSnapshots, type SnapshotRow } from "@cinderblock/db";
import type { RequestContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { listQuery, toPage } from "../pages.js";
import { TERMINAL_SNAPSHOT_STATUSES } from "../state-machine.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId } from "../validation.js";

/** The project's snapshot by id, or NOT_FOUND; `includeDeleted` also finds a soft-deleted one. */
async function loadSnapshot(db: Db, ctx: RequestContext, id: string, includeDeleted = false): Promise<SnapshotRow> {
  const row = await getSnapshot(db, ctx.projectId, validateId("id", id), { includeDeleted });
  if (!row) throw new CinderblockError("NOT_FOUND", `snapshot ${id} not found`);
  return row;
}

/** Cinder's `volume/api.py` `get_snapshot`: one of the project's snapshots. */
export function getSnapshotUseCase(deps: Pick<ApiDependencies, "db">): ApiUseCases["getSnapshot"] {
  return (ctx, id) => loadSnapshot(deps.db, ctx, id);
}

/** Cinder's `volume/api.py` `get_all_snapshots`: a page of the project's (or, for an admin, all) snapshots. */
export function listSnapshotsUseCase(deps: Pick<ApiDependencies, "db" | "pageTokens">): ApiUseCases["listSnapshots"] {
  return async (ctx, input) => {
    const query = listQuery(ctx, input, deps.pageTokens);
    const volumeId = input.volumeId ? validateId("volume_id", input.volumeId) : undefined;
    return toPage(await listSnapshots(deps.db, { ...query, volumeId }), query, (s) => s.volumeSizeGb, deps.pageTokens);
  };
}

/**
 * No Cinder method (a Cinder client polls `get_snapshot`): the snapshot now and after each change,
 * until a terminal status. Driven by the change feed only: one read at the start, then one read of
 * this row per change signal; an idle watch costs no query.
 */
export function watchSnapshotUseCase(deps: Pick<ApiDependencies, "db" | "changes">): ApiUseCases["watchSnapshot"] {
  const { db } = deps;
  return async function* (ctx, rawId, signal) {
    const id = validateId("id", rawId);
    // NOTE: subscribe before the one read, so no change after it is missed.
    const changes = deps.changes.subscribe("snapshot", id);
    const onAbort = () => changes.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      // NOTE: deleted rows count, so a watcher that arrives just after a delete finished sees it end.
      let current = await loadSnapshot(db, ctx, id, true);
      yield current;
      if (TERMINAL_SNAPSHOT_STATUSES.includes(current.status)) return;
      for await (const _ of changes) {
        // A delete ends with the row soft-deleted: the watcher still sees its last state.
        const next = await loadSnapshot(db, ctx, id, true);
        if (next.updatedAt.getTime() === current.updatedAt.getTime() && next.status === current.status) continue;
        current = next;
        yield current;
        if (TERMINAL_SNAPSHOT_STATUSES.includes(current.status)) return;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      changes.close();
    }
  };
}
