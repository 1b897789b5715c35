import {
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  CreateVolumeRequest,
  type CreateVolumeResponse,
  type GetVolumeResponse,
  type Snapshot,
  type Volume,
  VolumeStatus,
} from "@cinderblock/proto";
import type { Stack } from "@cinderblock/testing";
import { call, identity } from "./grpc.js";

/** The calls the backend suites (lvm, rbd) make as one project, against whatever stack is up. */
export function projectApi(live: () => Stack, project: string, snapshotName: string) {
  const md = identity(project);
  const api = {
    createVolume: (name: string) =>
      call<CreateVolumeResponse>((done) =>
        live().volumes.createVolume(CreateVolumeRequest.fromPartial({ name, sizeGb: 1 }), md, done),
      ).then((r) => r.volume as Volume),
    getVolume: (id: string) =>
      call<GetVolumeResponse>((done) => live().volumes.getVolume({ id }, md, done)).then((r) => r.volume as Volume),
    createSnapshot: (volumeId: string) =>
      call<CreateSnapshotResponse>((done) =>
        live().snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: snapshotName }), md, done),
      ).then((r) => r.snapshot as Snapshot),
    /** WatchSnapshot until the server ends the stream (at available or error); the last state. */
    settledSnapshot: (id: string) =>
      new Promise<Snapshot | undefined>((resolve, reject) => {
        let last: Snapshot | undefined;
        const stream = live().snapshots.watchSnapshot({ id }, md);
        stream.on("data", (m: { snapshot: Snapshot }) => {
          last = m.snapshot;
        });
        stream.on("error", reject);
        stream.on("end", () => resolve(last));
      }),
    /** The volume once it has left `creating` (available, or error with its reason). */
    async settledVolume(id: string): Promise<Volume> {
      for (let i = 0; i < 600; i++) {
        const volume = await api.getVolume(id);
        if (volume.status !== VolumeStatus.VOLUME_STATUS_CREATING) return volume;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`volume ${id} stayed creating`);
    },
  };
  return api;
}
