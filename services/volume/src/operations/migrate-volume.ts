import { finishOperation, getService, getVolumeElevated, getVolumeTypeBy, updateVolumeStatus } from "@cinderblock/db";
import { finishRetype, volumeUsage } from "@cinderblock/domain";
import type { VolumeMigrateVolume } from "@cinderblock/proto";
import type { PeerHostCalls } from "@cinderblock/rpc";
import { GIB } from "../drivers/checks.js";
import { DriverError, type DriverVolume, type VolumeChunk, type VolumeDriver } from "../drivers/driver.js";
import { digestOfVolume } from "../drivers/volume-digest.js";
import type { Delivery, Failure, OperationContext } from "./context.js";
import { previousStatusOf, recordRetypeFailure } from "./retype-volume.js";

/** A heartbeat age no backend passes: the source's address is wanted whether it counts as up or not. */
const ANY_AGE_SECONDS = 10 * 365 * 86_400;

/** Bytes per read when the target checks its copy. */
const VERIFY_CHUNK_BYTES = 1024 * 1024;

/**
 * Copies a volume from its source host into `driver`'s fresh `target` and checks the copy: the
 * source's digest of what it read against the target's digest of what it now holds.
 */
async function copyAndVerify(
  peers: PeerHostCalls,
  address: string,
  context: Parameters<PeerHostCalls["readVolume"]>[1],
  cast: VolumeMigrateVolume,
  driver: VolumeDriver,
  target: DriverVolume,
): Promise<{ sha256: string; sizeBytes: number }> {
  if (!driver.writeVolume || !driver.readVolume) {
    throw new DriverError(`backend ${cast.targetBackend} cannot receive a migrated volume`, { retryable: false });
  }
  // A retry starts over: whatever an earlier attempt wrote goes (gaps must read as zeros).
  await driver.deleteVolume(target);
  await driver.createVolume(target);
  let sent: { sha256: string; sizeBytes: number } | undefined;
  async function* pieces(): AsyncIterable<VolumeChunk> {
    for await (const piece of peers.readVolume(address, context, cast.volumeId, cast.operationId)) {
      if (piece.sha256) {
        sent = { sha256: piece.sha256, sizeBytes: piece.sizeBytes };
        return;
      }
      yield { offset: piece.offset, data: piece.data };
    }
  }
  await driver.writeVolume(target, pieces());
  if (!sent) throw new Error(`the source host ended the copy of volume ${cast.volumeId} without its digest`);
  // NOTE: the check re-reads the copy through readVolume rather than asking the backend for a
  // digest: it proves what a later migration away would read, and sparse readers (driver.ts)
  // ship only what is not zeros, so it costs a read on the storage side, not a second copy.
  const sizeBytes = target.sizeGb * GIB;
  const held = { sha256: await digestOfVolume(driver.readVolume(target, VERIFY_CHUNK_BYTES), sizeBytes), sizeBytes };
  if (held.sha256 !== sent.sha256 || held.sizeBytes !== sent.sizeBytes) {
    throw new Error(
      `the copy differs from the source: ${held.sizeBytes} bytes sha256 ${held.sha256} written, ` +
        `${sent.sizeBytes} bytes sha256 ${sent.sha256} read`,
    );
  }
  return held;
}

/**
 * A migration cast that comes when its retype is over (this host died mid-copy and was back after
 * the reconciler failed the retype, or a duplicate arrives late): a partial copy an earlier
 * attempt left on the target is removed, unless the volume lives there now, or is being retyped
 * again (another migration may be writing that copy).
 */
async function removeLeftover(
  ctx: OperationContext,
  cast: VolumeMigrateVolume,
  volume: Awaited<ReturnType<typeof getVolumeElevated>>,
): Promise<void> {
  if (volume && (volume.host === cast.targetBackend || volume.status === "retyping")) return;
  try {
    await ctx.driverFor(cast.targetBackend).deleteVolume({ id: cast.volumeId, sizeGb: volume?.sizeGb ?? 0 });
  } catch (error) {
    // Logged for the operator; the cast is done either way (its retype has ended).
    ctx.log(
      { volume_id: cast.volumeId, target: cast.targetBackend, error: String(error) },
      "leftover copy not removed",
      true,
    );
  }
}

/**
 * Cinder's generic (host-assisted) `migrate_volume` for a retype, run on the target host: the
 * volume's copy is made on the target backend (under the volume's own id: the backends differ),
 * filled from the source host (VolumeHostService.ReadVolume over mTLS, chunk by chunk as it is
 * written), and checked (SHA-256 of both ends). Then, in one transaction, the volume points at the
 * target with its new type and migration_status `success`, back in its previous status, the old
 * type's quota released, `volume.retype` sent; after it the source removes its copy. A failure
 * removes the target's copy and puts the volume back on its source with migration_status `error`
 * and the new type's reservation released.
 */
export function migrateVolumeOperation(
  ctx: OperationContext,
  peers: PeerHostCalls | undefined,
): (cast: VolumeMigrateVolume, delivery: Delivery) => Promise<void> {
  return async (cast, delivery) => {
    const volume = await getVolumeElevated(ctx.db, cast.volumeId);
    if (volume?.status !== "retyping" || volume.host !== cast.sourceBackend) {
      await removeLeftover(ctx, cast, volume);
      await finishOperation(ctx.db, cast.operationId, "done");
      return;
    }
    const previousStatus = previousStatusOf(cast);
    const ids = {
      volume_id: volume.id,
      operation_id: cast.operationId,
      source: cast.sourceBackend,
      target: cast.targetBackend,
    };
    const target: DriverVolume = { id: volume.id, sizeGb: volume.sizeGb };
    /** Removes this attempt's copy, unless the volume lives there now (a duplicate of this cast won). */
    const removeCopy = async (driver: VolumeDriver | undefined) => {
      const now = await getVolumeElevated(ctx.db, volume.id).catch(() => undefined);
      if (!driver || now?.host === cast.targetBackend) return;
      await driver.deleteVolume(target).catch(() => {});
    };
    const newType = await getVolumeTypeBy(ctx.db, { id: cast.newTypeId });
    let failure: Failure | undefined;
    let driver: VolumeDriver | undefined;
    try {
      driver = ctx.driverFor(cast.targetBackend);
      if (!newType) throw new DriverError(`volume type ${cast.newTypeId} was deleted`, { retryable: false });
      if (!peers) {
        throw new DriverError(`host ${ctx.hostName} has no client certificate for its peers`, { retryable: false });
      }
      const source = await getService(ctx.db, cast.sourceBackend, ANY_AGE_SECONDS);
      if (!source?.grpcAddress) {
        throw new DriverError(`backend ${cast.sourceBackend} has no address`, { retryable: true });
      }
      await updateVolumeStatus(ctx.db, volume.id, ["retyping"], "retyping", { migrationStatus: "migrating" });
      await ctx.started("volume.migrate.start", volumeUsage(volume), cast.operationId);
      const copied = await copyAndVerify(peers, source.grpcAddress, castContextOf(cast), cast, driver, target);
      ctx.log({ ...ids, sha256: copied.sha256, size_bytes: copied.sizeBytes }, "volume copied and verified");
    } catch (error) {
      // NOTE: the partial copy goes before a retry too; each attempt starts afresh.
      await removeCopy(driver);
      failure = ctx.finalFailure(
        error,
        delivery,
        "migrate",
        "the volume could not be moved to a backend of the new type",
      );
    }
    if (failure || !newType) {
      const failed = failure ?? { reason: "", detail: "" };
      await recordRetypeFailure(ctx, volume.id, cast.operationId, {
        previousStatus,
        newType: { id: cast.newTypeId, name: newType?.name ?? "" },
        ...failed,
        migrated: true,
      });
      ctx.log({ ...ids, ...failed }, "volume migration failed", true);
      return;
    }
    let moved = false;
    await ctx.record(async (tx, outcome) => {
      const [row] = await Promise.all([
        finishRetype(tx, volume.id, {
          previousStatus,
          newType: { id: newType.id, name: newType.name },
          oldTypeName: volume.volumeType,
          host: cast.targetBackend,
          pool: cast.targetPool,
        }),
        finishOperation(tx, cast.operationId, "done"),
      ]);
      if (!row) return;
      moved = true;
      const payload = { ...volumeUsage(row), old_volume_type: volume.volumeType, new_volume_type: newType.name };
      await outcome.announce("INFO", "volume.migrate.end", payload, cast.operationId);
      await outcome.announce("INFO", "volume.retype", payload, cast.operationId);
      outcome.changed("volume", volume.id);
    });
    if (!moved) {
      // The retype was ended meanwhile (the reconciler gave up on it): the volume stays where it was.
      await removeCopy(driver);
      ctx.log(ids, "volume migration ended elsewhere; the copy is removed", true);
      return;
    }
    ctx.log(ids, "volume migrated");
    try {
      const source = await getService(ctx.db, cast.sourceBackend, ANY_AGE_SECONDS);
      await peers?.deleteMigrationSource(
        source?.grpcAddress ?? "",
        castContextOf(cast),
        volume.id,
        cast.operationId,
        cast.sourceBackend,
      );
    } catch (error) {
      // NOTE: the volume has moved and is whole; only the old copy's space is left behind.
      ctx.log({ ...ids, err: String(error) }, "the source's copy of a migrated volume could not be removed", true);
    }
  };
}

/** The identity a migration's calls to its source carry (the request's, with the admin's say). */
function castContextOf(cast: VolumeMigrateVolume) {
  const c = cast.context;
  return {
    requestId: c?.requestId ?? cast.operationId,
    projectId: c?.projectId ?? "",
    userId: c?.userId ?? "",
    roles: c?.roles ?? [],
  };
}
