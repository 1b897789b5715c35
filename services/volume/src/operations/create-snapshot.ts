import { publishChange } from "@cinderblock/bus";
import {
  createBatcher,
  enqueueOutboxMany,
  finishOperation,
  finishOperationsDone,
  getSnapshotsWithVolumesElevated,
  getVolumeElevated,
  markSnapshotsAvailable,
  type SnapshotRow,
  type SnapshotTaken,
  transaction,
  updateSnapshotStatus,
  type VolumeRow,
} from "@cinderblock/db";
import { SNAPSHOT_OPERATIONS, snapshotUsage } from "@cinderblock/domain";
import type { VolumeCreateSnapshot } from "@cinderblock/proto";
import { DriverError } from "../drivers/driver.js";
import { type Delivery, type Failure, failureFields, type OperationContext } from "./context.js";

type Taken = SnapshotTaken & { operationId: string; volume: VolumeRow | undefined };

/**
 * Cinder's `VolumeManager.create_snapshot`: the driver takes the snapshot, a bootable volume's
 * image metadata is copied onto it, and the snapshot is marked available with its
 * `snapshot.create.end`; a driver failure marks it `error` with `snapshot.create.error`.
 */
export function createSnapshotOperation(
  ctx: OperationContext,
): (cast: VolumeCreateSnapshot, delivery: Delivery) => Promise<void> {
  const { db } = ctx;
  // NOTE: markSnapshotsAvailable is SNAPSHOT_OPERATIONS.create.done (creating → available) for many rows.
  const { failed } = SNAPSHOT_OPERATIONS.create;

  /**
   * Records created snapshots as available, their operations done and their `snapshot.create.end`
   * in the outbox: one transaction (three statements, one WAL flush) for every snapshot that
   * finished while the previous batch was being written (group commit). One notification per row
   * that changed, never per batch item: the original cast and a re-sent one may share a batch.
   * NOTE: this is record()'s contract written for many at once; per snapshot it was a transaction
   * of its own, and with 64 creates in flight the host spent more on that than on the copies.
   */
  const snapshotsTaken = createBatcher(async (batch: Taken[]) => {
    const rows = await transaction(db, async (tx) => {
      const [changed] = await Promise.all([
        markSnapshotsAvailable(tx, batch),
        finishOperationsDone(
          tx,
          batch.map((b) => b.operationId),
        ),
      ]);
      const byId = new Map(changed.map((row) => [row.id, row]));
      const items = new Map(batch.map((b) => [b.id, b]));
      await enqueueOutboxMany(
        tx,
        changed.map((row) =>
          ctx.announcer.message(
            "INFO",
            "snapshot.create.end",
            snapshotUsage(row, items.get(row.id)?.volume),
            items.get(row.id)?.operationId,
          ),
        ),
      );
      return byId;
    });
    if (rows.size > 0) ctx.onCommitted();
    for (const id of rows.keys()) publishChange(ctx.bus, "snapshot", id);
    return batch.map((b) => rows.get(b.id));
  });

  /**
   * Reads snapshots with their volumes as the completions are written: one statement for every
   * cast that arrived while the previous read ran (a lone cast reads at once, waiting for nothing).
   */
  const snapshotReads = createBatcher(async (ids: string[]) => {
    const found = await getSnapshotsWithVolumesElevated(db, ids);
    return ids.map((id) => found.get(id));
  });

  async function fail(snapshot: SnapshotRow, volume: VolumeRow | undefined, operationId: string, failure: Failure) {
    const { reason } = failure;
    const row = await ctx.record(async (tx, outcome) => {
      const [changed] = await Promise.all([
        updateSnapshotStatus(tx, snapshot.id, failed.from, failed.to, failureFields(failure)),
        finishOperation(tx, operationId, "failed", failure.detail),
      ]);
      if (changed) {
        await outcome.announce(
          "ERROR",
          "snapshot.create.error",
          { ...snapshotUsage(changed, volume), reason },
          operationId,
        );
        outcome.changed("snapshot", snapshot.id);
      }
      return changed;
    });
    if (row)
      ctx.log(
        { snapshot_id: snapshot.id, volume_id: snapshot.volumeId, operation_id: operationId, ...failure },
        "snapshot create failed",
        true,
      );
  }

  return async (cast, delivery) => {
    // The manager acts with elevated rights from here on (Cinder's context.elevated()).
    // NOTE: the snapshot and its own volume (its own volume id, not the cast's) in one statement,
    // shared with the casts that arrived while the previous read ran (snapshotReads).
    const found = await snapshotReads.submit(cast.snapshotId);
    const snapshot = found?.snapshot;
    if (snapshot?.status !== "creating") {
      // Done already (a re-sent cast), or gone: the operation has nothing left to wait for.
      await finishOperation(db, cast.operationId, snapshot?.status === "available" ? "done" : "failed");
      return;
    }
    const volume = found?.volume;
    // NOTE: the start notification is published while the driver works; it is awaited before any
    // other notification of this snapshot, so consumers still see start before end or error.
    const started = ctx.started("snapshot.create.start", snapshotUsage(snapshot, volume), cast.operationId);
    started.catch(() => {}); // awaited below; this only keeps an early failure from going unhandled

    let providerLocation = snapshot.providerLocation;
    try {
      if (!volume) throw new DriverError(`volume ${snapshot.volumeId} no longer exists`, { retryable: false });
      const update = await ctx.driverFor(volume.host).createSnapshot({
        id: snapshot.id,
        volumeId: volume.id,
        volumeSizeGb: snapshot.volumeSizeGb,
      });
      // NOTE: recorded with `available` (snapshotsTaken), not in an UPDATE of its own while the row is
      // still creating: no driver reads it back (each finds its snapshot by id), so a crash before
      // the completion loses nothing a re-run or a delete needs. One statement and commit fewer.
      if (update?.providerLocation) providerLocation = update.providerLocation;
    } catch (error) {
      const failure = ctx.finalFailure(
        error,
        delivery,
        "create_snapshot",
        "the storage backend failed to create the snapshot",
      );
      await started;
      await fail(snapshot, volume, cast.operationId, failure);
      return;
    }

    // A bootable volume's image metadata goes onto the snapshot so it can boot an instance again.
    await started;
    let imageMetadata: Record<string, string> = {};
    if (volume?.bootable) {
      const current = await getVolumeElevated(db, volume.id);
      if (!current) {
        const gone = "failed to copy image metadata to the snapshot: the volume is gone";
        await fail(snapshot, volume, cast.operationId, { reason: gone, detail: gone });
        return;
      }
      imageMetadata = { ...current.imageMetadata };
    }

    const row = await snapshotsTaken.submit({
      id: snapshot.id,
      operationId: cast.operationId,
      providerLocation,
      imageMetadata,
      encryptionKeyId: volume?.encryptionKeyId ?? snapshot.encryptionKeyId,
      volume,
    });
    if (row) {
      ctx.log(
        { snapshot_id: snapshot.id, volume_id: snapshot.volumeId, operation_id: cast.operationId },
        "snapshot created",
      );
    }
  };
}
