import type { Subjects } from "@cinderblock/bus";
import {
  VolumeCreateSnapshot,
  VolumeCreateVolume,
  VolumeDeleteSnapshot,
  VolumeDeleteVolume,
  VolumeExtendVolume,
  VolumeMigrateVolume,
  VolumeRetypeVolume,
  VolumeRevertToSnapshot,
} from "@cinderblock/proto";
import { createOperationContext, type Delivery, type ManagerDependencies } from "./operations/context.js";
import { createSnapshotOperation } from "./operations/create-snapshot.js";
import { createVolumeOperation } from "./operations/create-volume.js";
import { deleteSnapshotOperation } from "./operations/delete-snapshot.js";
import { deleteVolumeOperation } from "./operations/delete-volume.js";
import { extendVolumeOperation } from "./operations/extend-volume.js";
import { migrateVolumeOperation } from "./operations/migrate-volume.js";
import { retypeVolumeOperation } from "./operations/retype-volume.js";
import { revertToSnapshotOperation } from "./operations/revert-to-snapshot.js";

export type { ManagerDependencies } from "./operations/context.js";

/** One cast handler: its decoder and the operation it runs. */
interface Handler {
  decode(data: Uint8Array): unknown;
  handle(cast: unknown, delivery: Delivery): Promise<void>;
}

/** A cast's decoder paired with its operation, typed together. */
function handler<C>(
  codec: { decode(data: Uint8Array): C },
  run: (cast: C, delivery: Delivery) => Promise<void>,
): Handler {
  return { decode: (data) => codec.decode(data), handle: (cast, delivery) => run(cast as C, delivery) };
}

/**
 * The volume manager (after Cinder's `VolumeManager`): one operation per cast, each in its own
 * file under operations/, keyed by the subject it arrives on. Every operation is idempotent (a
 * redelivered cast does no harm) and records its outcome one way (OperationContext.record).
 */
export function createVolumeManager(deps: ManagerDependencies, subjects: Subjects): ReadonlyMap<string, Handler> {
  const ctx = createOperationContext(deps);
  const host = deps.hostName;
  return new Map([
    [subjects.volumeCreateSnapshot(host), handler(VolumeCreateSnapshot, createSnapshotOperation(ctx))],
    [subjects.volumeCreateVolume(host), handler(VolumeCreateVolume, createVolumeOperation(ctx))],
    [subjects.volumeDeleteSnapshot(host), handler(VolumeDeleteSnapshot, deleteSnapshotOperation(ctx))],
    [subjects.volumeDeleteVolume(host), handler(VolumeDeleteVolume, deleteVolumeOperation(ctx))],
    [subjects.volumeExtendVolume(host), handler(VolumeExtendVolume, extendVolumeOperation(ctx))],
    [subjects.volumeRevertToSnapshot(host), handler(VolumeRevertToSnapshot, revertToSnapshotOperation(ctx))],
    [subjects.volumeRetypeVolume(host), handler(VolumeRetypeVolume, retypeVolumeOperation(ctx))],
    [subjects.volumeMigrateVolume(host), handler(VolumeMigrateVolume, migrateVolumeOperation(ctx, deps.peers))],
  ]);
}
