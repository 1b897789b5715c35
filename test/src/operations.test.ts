import { existsSync } from "node:fs";
import { open, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { createDb, type DbHandle } from "@cinderblock/db";
import {
  type CreateGroupSnapshotResponse,
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  CreateVolumeRequest,
  type DeleteGroupSnapshotResponse,
  type DeleteQuotasResponse,
  type DeleteSnapshotResponse,
  type DeleteVolumeResponse,
  EventsServiceClient,
  type GetQuotasResponse,
  GroupSnapshotStatus,
  GroupSnapshotsServiceClient,
  ListGroupSnapshotsRequest,
  type ListGroupSnapshotsResponse,
  ListSnapshotsRequest,
  type ListSnapshotsResponse,
  ListView,
  ListVolumesRequest,
  type ListVolumesResponse,
  type Notification,
  QuotasServiceClient,
  type ResetSnapshotStatusResponse,
  type SetSnapshotMetadataResponse,
  type Snapshot,
  SnapshotStatus,
  type UpdateQuotasResponse,
  type UpdateSnapshotResponse,
  type Volume,
  VolumeStatus,
  VolumeTypesServiceClient,
} from "@cinderblock/proto";
import {
  call,
  callError,
  createSettledVolume,
  identity,
  readAt,
  type Stack,
  settle,
  startStack,
  uniqueName,
  untilEnd,
  writeAt,
} from "@cinderblock/testing";
import { credentials, type Metadata, status } from "@grpc/grpc-js";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Every operation after create, through the three services on the real PostgreSQL and NATS.

let stack: Stack;
let db: DbHandle;
let quotas: QuotasServiceClient;
let events: EventsServiceClient;
let groups: GroupSnapshotsServiceClient;
/** Every notification published during the run (core NATS sees what the outbox relay publishes). */
const published: Array<{ subject: string; eventType: string; payload: Record<string, unknown> }> = [];

beforeAll(async () => {
  stack = await startStack();
  const sub = stack.nc.subscribe(`${stack.prefix}.notifications.>`);
  void (async () => {
    for await (const m of sub) {
      const n = m.json<{ eventType: string; payload: Record<string, unknown> }>();
      published.push({ subject: m.subject, eventType: n.eventType, payload: n.payload });
    }
  })();
  await stack.nc.flush();
  db = createDb({ url: stack.database.url, max: 2 });
  quotas = new QuotasServiceClient(stack.address, credentials.createInsecure());
  events = new EventsServiceClient(stack.address, credentials.createInsecure());
  groups = new GroupSnapshotsServiceClient(stack.address, credentials.createInsecure());
});

afterAll(async () => {
  quotas?.close();
  events?.close();
  groups?.close();
  await db?.close();
  // NOTE: the three services stop one after the other, each allowed its drain grace (20 s) plus
  // 5 s to close: by design this can take longer than vitest's default 60 s hook timeout.
  await stack?.stop();
}, 120_000);

function project() {
  const id = uniqueName("ops-");
  return { id, md: identity(id), admin: identity(id, "root", "admin") };
}

function volume(md: Metadata, extra: Partial<CreateVolumeRequest> = {}): Promise<Volume> {
  return createSettledVolume(stack.volumes, md, extra);
}

function createSnapshot(md: Metadata, volumeId: string, extra: Partial<CreateSnapshotRequest> = {}) {
  return call<CreateSnapshotResponse>((done) =>
    stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: "s", ...extra }), md, done),
  ).then((r) => r.snapshot as Snapshot);
}

/** Every state WatchSnapshot reports until it ends. */
function watch(md: Metadata, id: string): Promise<Snapshot[]> {
  return untilEnd<{ snapshot?: Snapshot }>(stack.snapshots.watchSnapshot({ id }, md)).then((seen) =>
    seen.map((m) => m.snapshot as Snapshot),
  );
}

async function availableSnapshot(md: Metadata, volumeId: string, extra: Partial<CreateSnapshotRequest> = {}) {
  const s = await createSnapshot(md, volumeId, extra);
  const seen = await watch(md, s.id);
  expect(seen.at(-1)?.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);
  return s;
}

async function readFirst(path: string): Promise<string> {
  const fh = await open(path, "r");
  const { buffer } = await fh.read(Buffer.alloc(9), 0, 9, 4096);
  await fh.close();
  return buffer.toString();
}

function getQuotas(md: Metadata, projectId = "") {
  return call<GetQuotasResponse>((done) => quotas.getQuotas({ projectId }, md, done));
}

function inUse(res: GetQuotasResponse): Record<string, number> {
  return Object.fromEntries(res.quotas.map((q) => [q.resource, q.inUse]));
}

/**
 * The event types published about a resource (its id in volume_id, snapshot_id or
 * group_snapshot_id), in order, once every one of `expected` is among them (or after 20 s).
 */
async function eventsOf(id: string, expected: string[]): Promise<string[]> {
  const read = async () =>
    published
      .filter((e) => [e.payload.volume_id, e.payload.snapshot_id, e.payload.group_snapshot_id].includes(id))
      .map((e) => e.eventType);
  return settle(read, (types) => expected.every((t) => types.includes(t)));
}

/** Asserts that each `<op>.start` came before its `<op>.end` (both present). */
function expectStartThenEnd(types: string[], ...ops: string[]) {
  for (const op of ops) {
    const start = types.indexOf(`${op}.start`);
    const end = types.indexOf(`${op}.end`);
    expect(start, `${op}.start in ${types.join(", ")}`).toBeGreaterThanOrEqual(0);
    expect(end, `${op}.end after ${op}.start in ${types.join(", ")}`).toBeGreaterThan(start);
  }
}

describe("update and metadata", () => {
  it("updates name and description, leaving unset fields alone", async () => {
    const p = project();
    const v = await volume(p.md);
    const s = await availableSnapshot(p.md, v.id, { description: "first" });
    const updated = await call<UpdateSnapshotResponse>((done) =>
      stack.snapshots.updateSnapshot({ id: s.id, name: "renamed" }, p.md, done),
    );
    expect(updated.snapshot).toMatchObject({ name: "renamed", description: "first" });
    const tooLong = await callError(
      call((done) => stack.snapshots.updateSnapshot({ id: s.id, name: "x".repeat(256) }, p.md, done)),
    );
    expect(tooLong).toMatchObject({ code: status.INVALID_ARGUMENT, details: "name: must be at most 255 characters" });
    const renamedVolume = await call<{ volume?: Volume }>((done) =>
      stack.volumes.updateVolume({ id: v.id, description: "data disk" }, p.md, done),
    );
    expect(renamedVolume.volume).toMatchObject({ name: "v", description: "data disk" });
    expectStartThenEnd(await eventsOf(s.id, ["snapshot.update.end"]), "snapshot.update");
    expectStartThenEnd(await eventsOf(v.id, ["volume.update.end"]), "volume.update");
    // The refused update (name too long) announced nothing: one update, one pair of events.
    expect((await eventsOf(s.id, [])).filter((t) => t.startsWith("snapshot.update."))).toEqual([
      "snapshot.update.start",
      "snapshot.update.end",
    ]);
    const end = published.find((e) => e.eventType === "snapshot.update.end" && e.payload.snapshot_id === s.id);
    expect(end?.payload).toMatchObject({ tenant_id: p.id, display_name: "renamed", volume_id: v.id });
    expect(end?.subject).toBe(`${stack.prefix}.notifications.info.snapshot.update.end`);
  });

  it("merges, replaces and deletes metadata keys", async () => {
    const p = project();
    const v = await volume(p.md);
    const s = await availableSnapshot(p.md, v.id, { metadata: { a: "1" } });
    const set = (metadata: Record<string, string>, replace: boolean) =>
      call<SetSnapshotMetadataResponse>((done) =>
        stack.snapshots.setSnapshotMetadata({ id: s.id, metadata, replace }, p.md, done),
      ).then((r) => r.metadata);
    expect(await set({ b: "2" }, false)).toEqual({ a: "1", b: "2" });
    expect(await set({ c: "3" }, true)).toEqual({ c: "3" });
    const afterDelete = await call<{ metadata: Record<string, string> }>((done) =>
      stack.snapshots.deleteSnapshotMetadata({ id: s.id, key: "c" }, p.md, done),
    );
    expect(afterDelete.metadata).toEqual({});
    const missing = await callError(
      call((done) => stack.snapshots.deleteSnapshotMetadata({ id: s.id, key: "c" }, p.md, done)),
    );
    expect(missing.code).toBe(status.NOT_FOUND);
    const tooMany = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, "v"]));
    expect((await callError(set(tooMany, false))).code).toBe(status.INVALID_ARGUMENT);
    const volumeMetadata = await call<{ metadata: Record<string, string> }>((done) =>
      stack.volumes.setVolumeMetadata({ id: v.id, metadata: { tier: "gold" }, replace: false }, p.md, done),
    );
    expect(volumeMetadata.metadata).toEqual({ tier: "gold" });
    const types = await eventsOf(s.id, ["snapshot.update_metadata.end", "snapshot.delete_metadata.end"]);
    expectStartThenEnd(types, "snapshot.update_metadata", "snapshot.delete_metadata");
    // Two sets and one delete succeeded; the refused ones (missing key, too many keys) left no trace.
    expect(types.filter((t) => t.endsWith("_metadata.end"))).toEqual([
      "snapshot.update_metadata.end",
      "snapshot.update_metadata.end",
      "snapshot.delete_metadata.end",
    ]);
    expectStartThenEnd(await eventsOf(v.id, ["volume.update_metadata.end"]), "volume.update_metadata");
  });
});

describe("list views", () => {
  it("lists a summary or every field, and refuses a view it does not know", async () => {
    const p = project();
    const v = await volume(p.md, { description: "data disk", metadata: { tier: "gold" } });
    const s = await availableSnapshot(p.md, v.id, { description: "nightly", metadata: { a: "1" } });
    const list = (view: ListView) =>
      call<ListSnapshotsResponse>((done) =>
        stack.snapshots.listSnapshots(ListSnapshotsRequest.fromPartial({ volumeId: v.id, view }), p.md, done),
      );
    const [summary] = (await list(ListView.LIST_VIEW_SUMMARY)).snapshots;
    expect(summary).toMatchObject({ id: s.id, name: "s", volumeId: v.id, volumeSizeGb: 1, description: "" });
    expect(summary?.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);
    expect(summary?.metadata).toEqual({});
    expect(summary?.createdAt).toBeInstanceOf(Date);
    const [detail] = (await list(ListView.LIST_VIEW_DETAIL)).snapshots;
    expect(detail).toMatchObject({ id: s.id, description: "nightly", metadata: { a: "1" }, projectId: p.id });
    const [byDefault] = (await list(ListView.LIST_VIEW_UNSPECIFIED)).snapshots;
    expect(byDefault).toEqual(detail);
    const volumes = await call<ListVolumesResponse>((done) =>
      stack.volumes.listVolumes(ListVolumesRequest.fromPartial({ view: ListView.LIST_VIEW_SUMMARY }), p.md, done),
    );
    expect(volumes.volumes).toEqual([
      expect.objectContaining({ id: v.id, name: "v", sizeGb: 1, description: "", metadata: {}, projectId: "" }),
    ]);
    const bad = await callError(list(7 as ListView));
    expect(bad).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: "view: must be LIST_VIEW_SUMMARY or LIST_VIEW_DETAIL",
    });
  });
});

describe("delete", () => {
  it("deletes an available snapshot on the backend, soft-deletes the row and releases its quota", async () => {
    const p = project();
    const v = await volume(p.md, { sizeGb: 2 });
    const s = await availableSnapshot(p.md, v.id);
    expect(inUse(await getQuotas(p.md))).toMatchObject({ snapshots: 1, gigabytes: 4 });
    const file = join(stack.dataDir, `snapshot-${s.id}.img`);
    expect(existsSync(file)).toBe(true);
    const res = await call<DeleteSnapshotResponse>((done) =>
      stack.snapshots.deleteSnapshot({ id: s.id, force: false }, p.md, done),
    );
    expect(res.snapshot?.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_DELETING);
    const seen = await watch(p.md, s.id);
    expect(seen.at(-1)?.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_DELETED);
    expect(existsSync(file)).toBe(false);
    expect(inUse(await getQuotas(p.md))).toMatchObject({ snapshots: 0, gigabytes: 2 });
    const gone = await callError(call((done) => stack.snapshots.getSnapshot({ id: s.id }, p.md, done)));
    expect(gone.code).toBe(status.NOT_FOUND);
  });

  it("refuses to delete a snapshot that is still creating, unless an admin forces it", async () => {
    const p = project();
    const v = await volume(p.md);
    const s = await availableSnapshot(p.md, v.id);
    await call<ResetSnapshotStatusResponse>((done) =>
      stack.snapshots.resetSnapshotStatus({ id: s.id, status: SnapshotStatus.SNAPSHOT_STATUS_CREATING }, p.admin, done),
    );
    const refused = await callError(
      call((done) => stack.snapshots.deleteSnapshot({ id: s.id, force: false }, p.md, done)),
    );
    expect(refused).toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: `snapshot ${s.id} status must be available, error or error_deleting to delete, but is creating`,
    });
    const notAdmin = await callError(
      call((done) => stack.snapshots.deleteSnapshot({ id: s.id, force: true }, p.md, done)),
    );
    expect(notAdmin.code).toBe(status.PERMISSION_DENIED);
    await call((done) => stack.snapshots.deleteSnapshot({ id: s.id, force: true }, p.admin, done));
    const [row] = await settle(
      () => db.db.execute<{ status: string }>(sql`select status from snapshots where id = ${s.id}`),
      (rows) => rows[0]?.status === "deleted",
    );
    expect(row?.status).toBe("deleted");
  });

  it("refuses to delete a volume with snapshots, and cascades when asked", async () => {
    const p = project();
    const v = await volume(p.md, { sizeGb: 3 });
    const a = await availableSnapshot(p.md, v.id);
    const b = await availableSnapshot(p.md, v.id);
    const refused = await callError(
      call((done) => stack.volumes.deleteVolume({ id: v.id, cascade: false, force: false }, p.md, done)),
    );
    expect(refused).toMatchObject({ code: status.FAILED_PRECONDITION });
    expect(refused.details).toContain("has 2 snapshot(s)");
    const res = await call<DeleteVolumeResponse>((done) =>
      stack.volumes.deleteVolume({ id: v.id, cascade: true, force: false }, p.md, done),
    );
    expect(res.volume?.status).toBe(VolumeStatus.VOLUME_STATUS_DELETING);
    const usage = await settle(
      () => getQuotas(p.md).then(inUse),
      (u) => u.volumes === 0,
    );
    // Every volume has a type (__DEFAULT__ here), counted per type too, as Cinder's quotas do.
    expect(usage).toEqual({
      volumes: 0,
      snapshots: 0,
      gigabytes: 0,
      volumes___DEFAULT__: 0,
      snapshots___DEFAULT__: 0,
      gigabytes___DEFAULT__: 0,
    });
    for (const name of [`volume-${v.id}.img`, `snapshot-${a.id}.img`, `snapshot-${b.id}.img`]) {
      expect(existsSync(join(stack.dataDir, name))).toBe(false);
    }
  });

  it("admins reset a status; others may not", async () => {
    const p = project();
    const v = await volume(p.md);
    const denied = await callError(
      call((done) =>
        stack.volumes.resetVolumeStatus({ id: v.id, status: VolumeStatus.VOLUME_STATUS_ERROR }, p.md, done),
      ),
    );
    expect(denied).toMatchObject({
      code: status.PERMISSION_DENIED,
      details: "policy does not allow volume_extension:volume_admin_actions:reset_status to be performed",
    });
    const reset = await call<{ volume?: Volume }>((done) =>
      stack.volumes.resetVolumeStatus({ id: v.id, status: VolumeStatus.VOLUME_STATUS_ERROR }, p.admin, done),
    );
    expect(reset.volume?.status).toBe(VolumeStatus.VOLUME_STATUS_ERROR);
    const bad = await callError(
      call((done) =>
        stack.volumes.resetVolumeStatus({ id: v.id, status: VolumeStatus.VOLUME_STATUS_UNSPECIFIED }, p.admin, done),
      ),
    );
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    // Cinder's admin action names the event after the collection.
    const types = await eventsOf(v.id, ["volumes.reset_status.end"]);
    expectStartThenEnd(types, "volumes.reset_status");
    expect(types.filter((t) => t.startsWith("volumes.reset_status"))).toHaveLength(2);
    const s = await availableSnapshot(p.md, (await volume(p.md)).id);
    await call((done) =>
      stack.snapshots.resetSnapshotStatus({ id: s.id, status: SnapshotStatus.SNAPSHOT_STATUS_ERROR }, p.admin, done),
    );
    expectStartThenEnd(await eventsOf(s.id, ["snapshots.reset_status.end"]), "snapshots.reset_status");
  });
});

describe("volumes from snapshots, extend and revert", () => {
  const MiB = 1024 * 1024;

  it("creates a volume from a snapshot on the same backend, inheriting its properties and bytes", async () => {
    const p = project();
    const origin = await volume(p.md, {
      sizeGb: 1,
      bootable: true,
      imageMetadata: { image_name: "debian-12" },
      encryptionKeyId: "5f2b7d4e-1111-4222-8333-944455556666",
    });
    await writeAt(join(stack.dataDir, `volume-${origin.id}.img`), 3 * MiB, Buffer.from("first pattern"));
    const s = await availableSnapshot(p.md, origin.id);
    await writeAt(join(stack.dataDir, `volume-${origin.id}.img`), 3 * MiB, Buffer.from("SECOND PATTERN"));
    const sameSize = await volume(p.md, { snapshotId: s.id, sizeGb: 0, name: "same" });
    expect(sameSize.sizeGb).toBe(1); // 0 means the snapshot's size
    const clone = await volume(p.md, { snapshotId: s.id, sizeGb: 2, name: "clone" });
    expect(clone).toMatchObject({
      status: VolumeStatus.VOLUME_STATUS_AVAILABLE,
      sizeGb: 2,
      snapshotId: s.id,
      host: origin.host,
      availabilityZone: origin.availabilityZone,
      bootable: true,
      imageMetadata: { image_name: "debian-12" },
      encryptionKeyId: "5f2b7d4e-1111-4222-8333-944455556666",
    });
    expect((await readAt(join(stack.dataDir, `volume-${clone.id}.img`), 3 * MiB, 13)).toString()).toBe("first pattern");
    const refused = await callError(
      call((done) =>
        stack.volumes.createVolume(
          CreateVolumeRequest.fromPartial({ name: "x", snapshotId: s.id, availabilityZone: "elsewhere" }),
          p.md,
          done,
        ),
      ),
    );
    expect(refused).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: "availability_zone: must be the snapshot's, nova",
    });
  });

  it("extends an available volume, counting the new gigabytes", async () => {
    const p = project();
    const v = await volume(p.md, { sizeGb: 1 });
    const shrink = await callError(call((done) => stack.volumes.extendVolume({ id: v.id, newSizeGb: 1 }, p.md, done)));
    expect(shrink).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: "new_size_gb: must be larger than the current size 1",
    });
    const res = await call<{ volume?: Volume }>((done) =>
      stack.volumes.extendVolume({ id: v.id, newSizeGb: 3 }, p.md, done),
    );
    expect(res.volume?.status).toBe(VolumeStatus.VOLUME_STATUS_EXTENDING);
    const done = await settle(
      () => call<{ volume?: Volume }>((cb) => stack.volumes.getVolume({ id: v.id }, p.md, cb)),
      (r) => r.volume?.status === VolumeStatus.VOLUME_STATUS_AVAILABLE,
    );
    expect(done.volume?.sizeGb).toBe(3);
    expect((await stat(join(stack.dataDir, `volume-${v.id}.img`))).size).toBe(3 * 1024 * MiB);
    expect(inUse(await getQuotas(p.md)).gigabytes).toBe(3);
  });

  it("reverts a volume to its latest snapshot only, restoring the bytes", async () => {
    const p = project();
    const v = await volume(p.md, { sizeGb: 1 });
    const file = join(stack.dataDir, `volume-${v.id}.img`);
    await writeAt(file, 7 * MiB, Buffer.from("before"));
    const older = await availableSnapshot(p.md, v.id);
    const latest = await availableSnapshot(p.md, v.id);
    await writeAt(file, 7 * MiB, Buffer.from("AFTER!"));
    const notLatest = await callError(
      call((done) => stack.volumes.revertVolumeToSnapshot({ volumeId: v.id, snapshotId: older.id }, p.md, done)),
    );
    expect(notLatest).toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: `volume ${v.id} can only revert to its latest snapshot, ${latest.id}`,
    });
    const res = await call<{ volume?: Volume }>((done) =>
      stack.volumes.revertVolumeToSnapshot({ volumeId: v.id, snapshotId: latest.id }, p.md, done),
    );
    expect(res.volume?.status).toBe(VolumeStatus.VOLUME_STATUS_REVERTING);
    await settle(
      () => call<{ volume?: Volume }>((cb) => stack.volumes.getVolume({ id: v.id }, p.md, cb)),
      (r) => r.volume?.status === VolumeStatus.VOLUME_STATUS_AVAILABLE,
    );
    expect((await readAt(file, 7 * MiB, 6)).toString()).toBe("before");
    const snap = await call<{ snapshot?: Snapshot }>((done) =>
      stack.snapshots.getSnapshot({ id: latest.id }, p.md, done),
    );
    expect(snap.snapshot?.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);

    // Extended since: refused as Cinder refuses it (cinder-tempest-plugin's negative revert test),
    // and neither the volume nor the snapshot leaves available.
    await call((done) => stack.volumes.extendVolume({ id: v.id, newSizeGb: 2 }, p.md, done));
    await settle(
      () => call<{ volume?: Volume }>((cb) => stack.volumes.getVolume({ id: v.id }, p.md, cb)),
      (r) => r.volume?.status === VolumeStatus.VOLUME_STATUS_AVAILABLE,
    );
    const extended = await callError(
      call((done) => stack.volumes.revertVolumeToSnapshot({ volumeId: v.id, snapshotId: latest.id }, p.md, done)),
    );
    expect(extended).toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: `volume ${v.id} is 2 GiB but snapshot ${latest.id} was taken at 1 GiB: a volume extended after its snapshot cannot be reverted to it`,
    });
    const after = await call<{ volume?: Volume }>((cb) => stack.volumes.getVolume({ id: v.id }, p.md, cb));
    expect(after.volume?.status).toBe(VolumeStatus.VOLUME_STATUS_AVAILABLE);
    const stays = await call<{ snapshot?: Snapshot }>((done) =>
      stack.snapshots.getSnapshot({ id: latest.id }, p.md, done),
    );
    expect(stays.snapshot?.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);
  });
});

describe("manage existing", () => {
  it("lists what a backend holds unowned, manages it with its quota, and unmanages it leaving the storage", async () => {
    const p = project();
    const v = await volume(p.md, { sizeGb: 1 });
    const legacy = `legacy-${p.id}.img`;
    const fh = await open(join(stack.dataDir, legacy), "w");
    await fh.truncate(1024 * 1024 * 1024);
    await fh.write(Buffer.from("old bytes"), 0, 9, 4096);
    await fh.close();
    const host = `${stack.host}@file`;
    const denied = await callError(call((done) => stack.snapshots.listManageableSnapshots({ host }, p.md, done)));
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    const listed = await call<{ snapshots: Array<{ reference: string; sizeGb: number; safeToManage: boolean }> }>(
      (done) => stack.snapshots.listManageableSnapshots({ host }, p.admin, done),
    );
    expect(listed.snapshots).toContainEqual(
      expect.objectContaining({ reference: legacy, sizeGb: 1, safeToManage: true }),
    );
    const managed = await call<{ snapshot?: Snapshot }>((done) =>
      stack.snapshots.manageSnapshot(
        { volumeId: v.id, reference: legacy, name: "imported", description: "", metadata: {} },
        p.admin,
        done,
      ),
    );
    const id = managed.snapshot?.id ?? "";
    expect(managed.snapshot).toMatchObject({
      status: SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE,
      volumeSizeGb: 1,
      name: "imported",
    });
    expect(existsSync(join(stack.dataDir, legacy))).toBe(false);
    expect(await readFirst(join(stack.dataDir, `snapshot-${id}.img`))).toBe("old bytes");
    expect(inUse(await getQuotas(p.md))).toMatchObject({ snapshots: 1, gigabytes: 2 });
    const again = await callError(
      call((done) =>
        stack.snapshots.manageSnapshot(
          { volumeId: v.id, reference: legacy, name: "", description: "", metadata: {} },
          p.admin,
          done,
        ),
      ),
    );
    expect(again.code).toBe(status.NOT_FOUND);
    await call((done) => stack.snapshots.unmanageSnapshot({ id }, p.admin, done));
    expect((await callError(call((done) => stack.snapshots.getSnapshot({ id }, p.md, done)))).code).toBe(
      status.NOT_FOUND,
    );
    expect(existsSync(join(stack.dataDir, `unmanaged-snapshot-${id}.img`))).toBe(true);
    expect(inUse(await getQuotas(p.md))).toMatchObject({ snapshots: 0, gigabytes: 1 });
    const types = await eventsOf(id, ["snapshot.manage_existing.end", "snapshot.unmanage.end"]);
    expectStartThenEnd(types, "snapshot.manage_existing", "snapshot.unmanage");
  });
});

describe("group snapshots", () => {
  it("replays a create under the same client_request_id, refuses the key for another body, and pages the list", async () => {
    const p = project();
    const a = await volume(p.md, { sizeGb: 1 });
    const b = await volume(p.md, { sizeGb: 1 });
    const create = (name: string, volumeIds: string[], clientRequestId: string) =>
      call<CreateGroupSnapshotResponse>((done) =>
        groups.createGroupSnapshot({ name, description: "", volumeIds, clientRequestId }, p.md, done),
      );
    const first = await create("nightly", [a.id], "nightly-1");
    const again = await create("nightly", [a.id], "nightly-1");
    expect(again.groupSnapshot?.id).toBe(first.groupSnapshot?.id);
    expect(again.groupSnapshot?.status).toBe(GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_AVAILABLE);
    const reused = await callError(create("nightly", [b.id], "nightly-1"));
    expect(reused).toMatchObject({ code: status.ALREADY_EXISTS });
    expect(reused.details).toContain("nightly-1");
    expect(inUse(await getQuotas(p.md))).toMatchObject({ snapshots: 1 });
    const second = await create("weekly", [b.id], "");
    // Pages of one, oldest first, then the name filter.
    const list = (request: Partial<ListGroupSnapshotsRequest>) =>
      call<ListGroupSnapshotsResponse>((done) =>
        groups.listGroupSnapshots(ListGroupSnapshotsRequest.fromPartial(request), p.md, done),
      );
    const page1 = await list({ pageSize: 1, sortDir: "asc" });
    expect(page1.groupSnapshots.map((g) => g.id)).toEqual([first.groupSnapshot?.id]);
    const page2 = await list({ pageSize: 1, sortDir: "asc", pageToken: page1.nextPageToken });
    expect(page2.groupSnapshots.map((g) => g.id)).toEqual([second.groupSnapshot?.id]);
    expect(page2.nextPageToken).toBe(""); // the last page
    expect((await list({ name: "weekly" })).groupSnapshots.map((g) => g.id)).toEqual([second.groupSnapshot?.id]);
    const badSort = await callError(list({ sortKey: "size" }));
    expect(badSort).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(badSort.details).toMatch(/^sort_key: /);
  });

  it("snapshots several volumes together, and deletes the group with its members", async () => {
    const p = project();
    const a = await volume(p.md, { sizeGb: 1 });
    const b = await volume(p.md, { sizeGb: 2 });
    const res = await call<CreateGroupSnapshotResponse>((done) =>
      groups.createGroupSnapshot(
        { name: "db-and-logs", description: "", volumeIds: [a.id, b.id], clientRequestId: "" },
        p.md,
        done,
      ),
    );
    const group = res.groupSnapshot;
    expect(group?.status).toBe(GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_AVAILABLE);
    // Members are recorded in one transaction (one created_at): their order is not part of the contract.
    const members = (group?.snapshots ?? []).map((s) => [s.volumeId, s.status, s.groupSnapshotId]);
    expect(members).toHaveLength(2);
    expect(members).toEqual(
      expect.arrayContaining([
        [a.id, SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE, group?.id],
        [b.id, SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE, group?.id],
      ]),
    );
    expect(inUse(await getQuotas(p.md))).toMatchObject({ snapshots: 2, gigabytes: 6 });
    const deleted = await call<DeleteGroupSnapshotResponse>((done) =>
      groups.deleteGroupSnapshot({ id: group?.id ?? "" }, p.md, done),
    );
    // The group is deleting until its members' deletes finish on the backend, then it is gone.
    expect(deleted.groupSnapshot?.status).toBe(GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_DELETING);
    const gone = await settle(
      () =>
        callError(call((done) => groups.getGroupSnapshot({ id: group?.id ?? "" }, p.md, done))).catch(() => undefined),
      (e) => e?.code === status.NOT_FOUND,
    );
    expect(gone?.code).toBe(status.NOT_FOUND);
    const types = await eventsOf(group?.id ?? "", ["group_snapshot.delete.end"]);
    expectStartThenEnd(types, "group_snapshot.create", "group_snapshot.delete");
    expect(types.filter((t) => t === "snapshot.delete.end")).toHaveLength(2);
    expect(types.indexOf("group_snapshot.delete.end")).toBeGreaterThan(types.lastIndexOf("snapshot.delete.end"));
    const usage = await settle(
      () => getQuotas(p.md).then(inUse),
      (u) => u.snapshots === 0,
    );
    expect(usage).toMatchObject({ snapshots: 0, gigabytes: 3 });
  });

  it("is all or none: when one member fails, the others are deleted and the group is error", async () => {
    const p = project();
    const good = await volume(p.md, { sizeGb: 1 });
    const doomed = await volume(p.md, { sizeGb: 1 });
    await rm(join(stack.dataDir, `volume-${doomed.id}.img`));
    const res = await call<CreateGroupSnapshotResponse>((done) =>
      groups.createGroupSnapshot(
        { name: "g", description: "", volumeIds: [good.id, doomed.id], clientRequestId: "" },
        p.md,
        done,
      ),
    );
    expect(res.groupSnapshot?.status).toBe(GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_ERROR);
    // The tenant's reason says which member failed, in user terms (the file name is the admin's detail).
    expect(res.groupSnapshot?.statusReason).toContain(
      `snapshot of volume ${doomed.id} ended error: the storage backend failed to create the snapshot`,
    );
    const types = await eventsOf(res.groupSnapshot?.id ?? "", ["group_snapshot.create.error"]);
    expect(types).toContain("group_snapshot.create.start");
    expect(types).not.toContain("group_snapshot.create.end");
    const leftovers = await settle(
      () =>
        db.db.execute<{ n: number }>(
          sql`select count(*)::int as n from snapshots where project_id = ${p.id} and not deleted`,
        ),
      (rows) => rows[0]?.n === 0,
    );
    expect(leftovers[0]?.n).toBe(0);
    const refused = await callError(
      call((done) =>
        groups.createGroupSnapshot(
          { name: "g", description: "", volumeIds: [good.id, good.id], clientRequestId: "" },
          p.md,
          done,
        ),
      ),
    );
    expect(refused).toMatchObject({ code: status.INVALID_ARGUMENT, details: "volume_ids: must not repeat a volume" });
  });
});

describe("idempotent creates", () => {
  it("returns the first snapshot for a retried request and refuses the key for another body", async () => {
    const p = project();
    const v = await volume(p.md);
    const key = uniqueName("retry-");
    const attempts = await Promise.all(
      Array.from({ length: 8 }, () => createSnapshot(p.md, v.id, { clientRequestId: key, name: "once" })),
    );
    expect(new Set(attempts.map((s) => s.id)).size).toBe(1);
    const [row] = await db.db.execute<{ n: number }>(
      sql`select count(*)::int as n from snapshots where project_id = ${p.id}`,
    );
    expect(row?.n).toBe(1);
    expect(inUse(await getQuotas(p.md)).snapshots).toBe(1);
    const conflict = await callError(createSnapshot(p.md, v.id, { clientRequestId: key, name: "other" }));
    expect(conflict.code).toBe(status.ALREADY_EXISTS);
  });
});

describe("quotas", () => {
  it("shows limits and usage, and lets only admins change limits (never below usage)", async () => {
    const p = project();
    await volume(p.md, { sizeGb: 5 });
    const mine = await getQuotas(p.md);
    expect(mine.quotas).toEqual([
      { resource: "volumes", limit: 10, inUse: 1 },
      { resource: "snapshots", limit: 10, inUse: 0 },
      { resource: "gigabytes", limit: 1000, inUse: 5 },
      // The volume's type (the default, __DEFAULT__), counted per type too.
      { resource: "gigabytes___DEFAULT__", limit: -1, inUse: 5 },
      { resource: "snapshots___DEFAULT__", limit: -1, inUse: 0 },
      { resource: "volumes___DEFAULT__", limit: -1, inUse: 1 },
    ]);
    const other = await callError(getQuotas(p.md, "someone-else"));
    expect(other.code).toBe(status.PERMISSION_DENIED);
    const update = (limits: Record<string, number>, md = p.admin) =>
      call<UpdateQuotasResponse>((done) => quotas.updateQuotas({ projectId: p.id, limits }, md, done));
    expect((await callError(update({ snapshots: 3 }, p.md))).code).toBe(status.PERMISSION_DENIED);
    expect(await callError(update({ gigabytes: 4 }))).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: "limits.gigabytes: must be at least 5, the amount in use",
    });
    expect((await callError(update({ disks: 3 }))).code).toBe(status.INVALID_ARGUMENT);
    const updated = await update({ snapshots: 3, gigabytes: -1 });
    expect(updated.quotas).toContainEqual({ resource: "snapshots", limit: 3, inUse: 0 });
    expect(updated.quotas).toContainEqual({ resource: "gigabytes", limit: -1, inUse: 5 });

    // DeleteQuotas (admin): the project's own limits go, the defaults apply again, usage stays.
    const reset = (md = p.admin) =>
      call<DeleteQuotasResponse>((done) => quotas.deleteQuotas({ projectId: p.id }, md, done));
    expect((await callError(reset(p.md))).code).toBe(status.PERMISSION_DENIED);
    const defaults = await reset();
    expect(defaults.projectId).toBe(p.id);
    expect(defaults.quotas).toContainEqual({ resource: "snapshots", limit: 10, inUse: 0 });
    expect(defaults.quotas).toContainEqual({ resource: "gigabytes", limit: 1000, inUse: 5 });
    expect((await getQuotas(p.md)).quotas).toEqual(defaults.quotas);
  });

  it("counts per volume type too, and refuses past a type's own limit", async () => {
    const p = project();
    // A volume type is a real one (issue 15): "gold" must exist first.
    const types = new VolumeTypesServiceClient(stack.address, credentials.createInsecure());
    await call((done) =>
      types.createVolumeType({ name: "gold", description: "", extraSpecs: {} }, p.admin, done),
    ).catch((e: { code: number }) => {
      if (e.code !== status.ALREADY_EXISTS) throw e;
    });
    types.close();
    await call((done) =>
      quotas.updateQuotas({ projectId: p.id, limits: { volumes_gold: 1, gigabytes_gold: 10 } }, p.admin, done),
    );
    const gold = await volume(p.md, { sizeGb: 2, volumeType: "gold" });
    await volume(p.md, { sizeGb: 3 }); // the default type: not gold's quotas
    const refused = await callError(
      call((done) =>
        stack.volumes.createVolume(
          CreateVolumeRequest.fromPartial({ name: "g2", sizeGb: 1, volumeType: "gold" }),
          p.md,
          done,
        ),
      ),
    );
    expect(refused).toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      details: "quota exceeded for volumes_gold: requested 1, 1 of 1 in use",
    });
    await availableSnapshot(p.md, gold.id);
    const usage = inUse(await getQuotas(p.md));
    expect(usage).toMatchObject({
      volumes: 2,
      gigabytes: 7,
      snapshots: 1,
      volumes_gold: 1,
      gigabytes_gold: 4,
      snapshots_gold: 1,
    });
  });

  it("never drifts: usage equals a fresh count after concurrent creates and deletes at the limit", async () => {
    const p = project();
    const v = await volume(p.md, { sizeGb: 1 });
    await call((done) => quotas.updateQuotas({ projectId: p.id, limits: { snapshots: 4 } }, p.admin, done));
    let peak = 0;
    const sampling = (async () => {
      for (let i = 0; i < 200; i++) {
        const [row] = await db.db.execute<{ n: number }>(
          sql`select count(*)::int as n from snapshots where project_id = ${p.id} and not deleted`,
        );
        peak = Math.max(peak, row?.n ?? 0);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    // Rounds of 8 concurrent creates against a limit of 4, each followed by deleting what was made.
    for (let round = 0; round < 3; round++) {
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => createSnapshot(p.md, v.id)));
      const made = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      expect(made.length).toBeLessThanOrEqual(4);
      for (const r of results) {
        if (r.status === "rejected") expect((r.reason as { code: number }).code).toBe(status.RESOURCE_EXHAUSTED);
      }
      await Promise.all(made.map((s) => watch(p.md, s.id)));
      await Promise.all(
        made.map((s) => call((done) => stack.snapshots.deleteSnapshot({ id: s.id, force: false }, p.md, done))),
      );
    }
    await sampling;
    const counted = async () => {
      const [row] = await db.db.execute<{ snapshots: number; gigabytes: number }>(sql`
        select count(*)::int as snapshots, coalesce(sum(volume_size_gb), 0)::int as gigabytes
          from snapshots where project_id = ${p.id} and not deleted`);
      return row;
    };
    await settle(counted, (row) => row?.snapshots === 0);
    const usage = inUse(await getQuotas(p.md));
    const fresh = await counted();
    expect(usage.snapshots).toBe(fresh?.snapshots);
    expect(usage.gigabytes).toBe((fresh?.gigabytes ?? 0) + 1); // plus the volume itself
    expect(peak).toBeLessThanOrEqual(4);
  });
});

describe("WatchEvents", () => {
  it("streams the project's notifications, filtered by resource, without other projects' events", async () => {
    const p = project();
    const other = project();
    const v = await volume(p.md);
    const otherVolume = await volume(other.md);
    const got: Notification[] = [];
    const stream = events.watchEvents(
      { resourceId: "", eventTypes: ["snapshot.create.end"], allProjects: false, startSequence: 0 },
      p.md,
    );
    stream.on("data", (m: { event: Notification }) => got.push(m.event));
    stream.on("error", () => {});
    await new Promise((r) => setTimeout(r, 200)); // the subscription is live
    await availableSnapshot(other.md, otherVolume.id);
    const mine = await availableSnapshot(p.md, v.id);
    await settle(
      async () => got.length,
      (n) => n >= 1,
    );
    stream.cancel();
    expect(got.map((e) => [e.eventType, e.payload?.snapshot_id, e.payload?.tenant_id])).toEqual([
      ["snapshot.create.end", mine.id, p.id],
    ]);
    const allProjects = await callError(
      new Promise((resolve, reject) => {
        const s = events.watchEvents({ resourceId: "", eventTypes: [], allProjects: true, startSequence: 0 }, p.md);
        s.on("error", reject);
        s.on("end", resolve);
      }),
    );
    expect(allProjects.code).toBe(status.PERMISSION_DENIED);
  });
});
