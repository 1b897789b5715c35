import { randomUUID } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import {
  type AttachVolumeResponse,
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  CreateVolumeRequest,
  type CreateVolumeResponse,
  type ExtendVolumeResponse,
  type GetVolumeResponse,
  type Snapshot,
  SnapshotStatus,
  type Volume,
  VolumeStatus,
} from "@cinderblock/proto";
import {
  call,
  callError,
  identity,
  readAt,
  type Stack,
  settle,
  settledVolume,
  startStack,
  uniqueName,
  writeAt,
} from "@cinderblock/testing";
import { status } from "@grpc/grpc-js";
import type { Subscription } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// End to end on the file backend: a clone of a volume holds its bytes; an attached volume is
// extended (back in-use, its instance's compute agent told) and snapshotted without force.

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  const codes = await stack?.stop();
  expect(codes).toEqual({ api: 0, scheduler: 0, volume: 0 });
});

const volumeFile = (id: string) => join(stack.dataDir, `volume-${id}.img`);

function api(project: string) {
  const md = identity(project);
  return {
    md,
    create: (req: Partial<CreateVolumeRequest>) =>
      call<CreateVolumeResponse>((done) =>
        stack.volumes.createVolume(CreateVolumeRequest.fromPartial({ name: "v", sizeGb: 1, ...req }), md, done),
      ).then((r) => r.volume as Volume),
    get: (id: string) =>
      call<GetVolumeResponse>((done) => stack.volumes.getVolume({ id }, md, done)).then((r) => r.volume as Volume),
    settled: (id: string) => settledVolume(stack.volumes, md, id),
    attach: (volumeId: string, instanceId: string) =>
      call<AttachVolumeResponse>((done) =>
        stack.volumes.attachVolume(
          { volumeId, instanceId, mountpoint: "/dev/vdb", connector: { host: "compute1" } },
          md,
          done,
        ),
      ),
    extend: (id: string, newSizeGb: number) =>
      call<ExtendVolumeResponse>((done) => stack.volumes.extendVolume({ id, newSizeGb }, md, done)).then(
        (r) => r.volume as Volume,
      ),
    snapshot: (volumeId: string, force: boolean) =>
      call<CreateSnapshotResponse>((done) =>
        stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: "s", force }), md, done),
      ).then((r) => r.snapshot as Snapshot),
    getSnapshot: (id: string) =>
      call<{ snapshot?: Snapshot }>((done) => stack.snapshots.getSnapshot({ id }, md, done)).then(
        (r) => r.snapshot as Snapshot,
      ),
  };
}

/** A 1 GiB volume, available, holding distinct bytes at a few offsets; returns it and its bytes. */
async function volumeWithData(p: ReturnType<typeof api>) {
  const volume = await p.settled((await p.create({ sizeGb: 1, bootable: true })).id);
  expect(volume.status).toBe(VolumeStatus.VOLUME_STATUS_AVAILABLE);
  const marks = new Map<number, Buffer>();
  for (const offset of [0, 5 * MIB + 3, 512 * MIB, GIB - 32]) {
    const bytes = Buffer.from(`${volume.id}@${offset}`.slice(0, 32).padEnd(32, "#"));
    await writeAt(volumeFile(volume.id), offset, bytes);
    marks.set(offset, bytes);
  }
  return { volume, marks };
}

describe("clone a volume (source_volume_id)", () => {
  it("makes an available volume of the source's type and zone holding the source's bytes, larger when asked", async () => {
    const p = api(uniqueName("clone-"));
    const { volume: source, marks } = await volumeWithData(p);

    const clone = await p.create({ sizeGb: 2, sourceVolumeId: source.id });
    expect(clone).toMatchObject({ sourceVolumeId: source.id, host: source.host, bootable: true, sizeGb: 2 });
    const made = await p.settled(clone.id);
    expect(made.status).toBe(VolumeStatus.VOLUME_STATUS_AVAILABLE);
    expect(made).toMatchObject({
      sourceVolumeId: source.id,
      volumeType: source.volumeType,
      availabilityZone: source.availabilityZone,
    });

    expect((await stat(volumeFile(clone.id))).size).toBe(2 * GIB);
    for (const [offset, bytes] of marks) {
      expect((await readAt(volumeFile(clone.id), offset, bytes.length)).equals(bytes)).toBe(true);
    }
    expect((await readAt(volumeFile(clone.id), GIB + MIB, 4096)).equals(Buffer.alloc(4096))).toBe(true);
    // The two are independent from now on.
    await writeAt(volumeFile(clone.id), 0, Buffer.from("clone's own"));
    expect((await readAt(volumeFile(source.id), 0, 32)).equals(marks.get(0) as Buffer)).toBe(true);
  });

  it("refuses a snapshot_id together with a source_volume_id, and a smaller size, naming the field", async () => {
    const p = api(uniqueName("clone-"));
    const { volume: source } = await volumeWithData(p);
    const both = await callError(p.create({ sourceVolumeId: source.id, snapshotId: randomUUID() }));
    expect(both.code).toBe(status.INVALID_ARGUMENT);
    expect(both.details).toContain("source_volume_id: must be empty when snapshot_id is set");
    const other = await callError(api(uniqueName("other-")).create({ sourceVolumeId: source.id }));
    expect(other.code).toBe(status.NOT_FOUND);
  });
});

describe("an attached volume", () => {
  it("is extended back to in-use at its new size, its compute agent told, and snapshotted without force", async () => {
    const p = api(uniqueName("inuse-"));
    const { volume, marks } = await volumeWithData(p);
    const instanceId = randomUUID();
    await p.attach(volume.id, instanceId);
    expect((await p.get(volume.id)).status).toBe(VolumeStatus.VOLUME_STATUS_IN_USE);
    const agent: Subscription = stack.nc.subscribe(`${stack.prefix}.v1.compute.${instanceId}.volume_extended`, {
      max: 1,
    });
    const told = (async () => {
      for await (const m of agent) return m.json<Record<string, unknown>>();
      return undefined;
    })();

    expect(await p.extend(volume.id, 3)).toMatchObject({ status: VolumeStatus.VOLUME_STATUS_EXTENDING });
    const extended = await settle(
      () => p.get(volume.id),
      (v) => v.status !== VolumeStatus.VOLUME_STATUS_EXTENDING,
      { timeoutMs: 30_000 },
    );
    expect(extended).toMatchObject({ status: VolumeStatus.VOLUME_STATUS_IN_USE, sizeGb: 3 });
    expect(extended.attachments.map((a) => a.instanceId)).toEqual([instanceId]);
    expect(await told).toEqual({ instanceId, volumeId: volume.id, newSizeGb: 3 });
    expect((await stat(volumeFile(volume.id))).size).toBe(3 * GIB);
    for (const [offset, bytes] of marks) {
      expect((await readAt(volumeFile(volume.id), offset, bytes.length)).equals(bytes)).toBe(true);
    }

    // Cinder 3.66: no force needed for an in-use volume (and force is still accepted).
    for (const force of [false, true]) {
      const snapshot = await p.snapshot(volume.id, force);
      const done = await settle(
        () => p.getSnapshot(snapshot.id),
        (s) => s.status !== SnapshotStatus.SNAPSHOT_STATUS_CREATING,
        { timeoutMs: 30_000 },
      );
      expect(done.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);
    }
    expect((await p.get(volume.id)).status).toBe(VolumeStatus.VOLUME_STATUS_IN_USE);
  });
});
