import {
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  CreateVolumeRequest,
  type CreateVolumeResponse,
  type GetSnapshotResponse,
  type GetVolumeResponse,
  type Snapshot,
  type Volume,
} from "@cinderblock/proto";
import { call, identity, type Stack, settledVolume, untilEnd } from "@cinderblock/testing";

/**
 * The calls the backend suites (lvm, rbd) make as one project, against whatever stack `current`
 * returns when a call is made (throws when none is up).
 */
export function projectApi(current: () => Stack | undefined, project: string, snapshotName: string) {
  const md = identity(project);
  const live = () => {
    const stack = current();
    if (!stack) throw new Error("no stack");
    return stack;
  };
  return {
    createVolume: (name: string) =>
      call<CreateVolumeResponse>((done) =>
        live().volumes.createVolume(CreateVolumeRequest.fromPartial({ name, sizeGb: 1 }), md, done),
      ).then((r) => r.volume as Volume),
    /** A clone of `sourceVolumeId` of `sizeGb` GiB (CreateVolume with source_volume_id). */
    cloneVolume: (name: string, sourceVolumeId: string, sizeGb: number) =>
      call<CreateVolumeResponse>((done) =>
        live().volumes.createVolume(CreateVolumeRequest.fromPartial({ name, sizeGb, sourceVolumeId }), md, done),
      ).then((r) => r.volume as Volume),
    getVolume: (id: string) =>
      call<GetVolumeResponse>((done) => live().volumes.getVolume({ id }, md, done)).then((r) => r.volume as Volume),
    createSnapshot: (volumeId: string) =>
      call<CreateSnapshotResponse>((done) =>
        live().snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: snapshotName }), md, done),
      ).then((r) => r.snapshot as Snapshot),
    /** WatchSnapshot until the server ends the stream (at available or error); the last state. */
    settledSnapshot: (id: string) =>
      untilEnd<{ snapshot?: Snapshot }>(live().snapshots.watchSnapshot({ id }, md)).then(
        (seen) => seen.at(-1)?.snapshot,
      ),
    /** The volume once it has left `creating` (available, or error with its reason). */
    settledVolume: (id: string) => settledVolume(live().volumes, md, id),
    /** The snapshot as an admin of the project reads it (with the backend's status_detail). */
    snapshotAsAdmin: (id: string) =>
      call<GetSnapshotResponse>((done) =>
        live().snapshots.getSnapshot({ id }, identity(project, "operator", "admin"), done),
      ).then((r) => r.snapshot as Snapshot),
  };
}
