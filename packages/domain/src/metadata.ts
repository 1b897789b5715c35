import { deleteMetadataKey, type EditableTable, type Executor, setMetadata, transaction } from "@cinderblock/db";
import type { RequestContext } from "./context.js";
import { CinderblockError } from "./errors.js";
import type { Announcer } from "./ports.js";
import { announced, mustGetSnapshot, mustGetVolume } from "./rows.js";
import type { ApiDependencies, ApiUseCases } from "./use-cases.js";
import { assertMetadataBound, validateId, validateMetadata, validateMetadataKey } from "./validation.js";

/**
 * A metadata change of one snapshot or volume with its `<resource>.<op>.start/.end` events;
 * `change` resolves false when the row is not there. Returns the metadata after it.
 */
async function metadataChange(
  notifications: Announcer,
  tx: Executor,
  ctx: RequestContext,
  table: EditableTable,
  id: string,
  op: "update_metadata" | "delete_metadata",
  change: () => Promise<boolean>,
): Promise<Record<string, string>> {
  const apply = async () => {
    if (!(await change())) throw new CinderblockError("NOT_FOUND", `${table.slice(0, -1)} ${id} not found`);
  };
  if (table === "snapshots") {
    const before = await mustGetSnapshot(tx, ctx, id);
    const after = await announced(notifications, tx, "snapshot", `snapshot.${op}`, before, async () => {
      await apply();
      return mustGetSnapshot(tx, ctx, id);
    });
    return after.metadata;
  }
  const before = await mustGetVolume(tx, ctx, id);
  const after = await announced(notifications, tx, "volume", `volume.${op}`, before, async () => {
    await apply();
    return mustGetVolume(tx, ctx, id);
  });
  return after.metadata;
}

/**
 * Cinder's `volume/api.py` `update_volume_metadata` and `update_snapshot_metadata`: merges keys
 * into a volume's or a snapshot's metadata, or (`replace`) replaces it.
 */
export function setMetadataUseCase(
  deps: Pick<ApiDependencies, "db" | "notifications" | "onCommitted" | "changes">,
): ApiUseCases["setMetadata"] {
  return async (ctx, table, rawId, raw, replace) => {
    const id = validateId("id", rawId);
    const metadata = validateMetadata(raw);
    const result = await transaction(deps.db, (tx) =>
      metadataChange(deps.notifications, tx, ctx, table, id, "update_metadata", async () => {
        const after = await setMetadata(tx, table, ctx.projectId, id, metadata, replace);
        if (after) assertMetadataBound(after);
        return after !== undefined;
      }),
    );
    deps.onCommitted?.();
    if (table === "snapshots") deps.changes.publish("snapshot", id);
    return result;
  };
}

/**
 * Cinder's `volume/api.py` `delete_volume_metadata` and `delete_snapshot_metadata`: removes one
 * key of a volume's or a snapshot's metadata.
 */
export function deleteMetadataUseCase(
  deps: Pick<ApiDependencies, "db" | "notifications" | "onCommitted" | "changes">,
): ApiUseCases["deleteMetadata"] {
  return async (ctx, table, rawId, rawKey) => {
    const id = validateId("id", rawId);
    const key = validateMetadataKey(rawKey);
    const result = await transaction(deps.db, (tx) =>
      metadataChange(deps.notifications, tx, ctx, table, id, "delete_metadata", async () => {
        if (await deleteMetadataKey(tx, table, ctx.projectId, id, key)) return true;
        throw new CinderblockError(
          "NOT_FOUND",
          `${table.slice(0, -1)} ${id} has no metadata key ${JSON.stringify(key)}`,
        );
      }),
    );
    deps.onCommitted?.();
    if (table === "snapshots") deps.changes.publish("snapshot", id);
    return result;
  };
}
