import { execFile } from "node:child_process";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { createDb, type DbHandle, reportService, setQuotaLimit } from "@cinderblock/db";
import {
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  CreateVolumeRequest,
  type CreateVolumeResponse,
  type GetSnapshotResponse,
  type GetVolumeResponse,
  ListSnapshotsRequest,
  type ListSnapshotsResponse,
  type Snapshot,
  SnapshotStatus,
  type SnapshotsServiceClient,
  type Volume,
  VolumeStatus,
  type VolumesServiceClient,
} from "@cinderblock/proto";
import {
  call,
  callError,
  identity,
  REPO_ROOT,
  type Stack,
  settledVolume,
  startStack,
  uniqueName,
  untilEnd,
} from "@cinderblock/testing";
import { Metadata, status } from "@grpc/grpc-js";
import type { Subscription } from "@nats-io/transport-node";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// End to end: api, scheduler and volume run as separate processes on the real PostgreSQL and
// NATS JetStream; the test speaks gRPC to the api and listens on the notification subjects.

const run = promisify(execFile);
let stack: Stack;
let db: DbHandle;
let notifications: Subscription;
const received: Array<{ subject: string; body: Record<string, unknown> }> = [];

const KEY_ID = "5f2b7d4e-1111-4222-8333-944455556666";

function volumesApi(projectId: string) {
  const client: VolumesServiceClient = stack.volumes;
  const md = identity(projectId);
  return {
    create: (req: Partial<CreateVolumeRequest>) =>
      call<CreateVolumeResponse>((done) =>
        client.createVolume(CreateVolumeRequest.fromPartial({ name: "vol", sizeGb: 1, ...req }), md, done),
      ).then((r) => r.volume as Volume),
    get: (id: string) =>
      call<GetVolumeResponse>((done) => client.getVolume({ id }, md, done)).then((r) => r.volume as Volume),
  };
}

function snapshotsApi(projectId: string) {
  const client: SnapshotsServiceClient = stack.snapshots;
  const md = identity(projectId);
  return {
    create: (volumeId: string, extra: Partial<CreateSnapshotRequest> = {}) =>
      call<CreateSnapshotResponse>((done) =>
        client.createSnapshot(
          CreateSnapshotRequest.fromPartial({ volumeId, name: "snapshot for snapshot1", ...extra }),
          md,
          done,
        ),
      ).then((r) => r.snapshot as Snapshot),
    list: (volumeId = "") =>
      call<ListSnapshotsResponse>((done) =>
        client.listSnapshots(ListSnapshotsRequest.fromPartial({ volumeId }), md, done),
      ).then((r) => r.snapshots),
    /** Every message WatchSnapshot sends, until the server ends the stream. */
    watch: (id: string) =>
      untilEnd<{ snapshot?: Snapshot }>(client.watchSnapshot({ id }, md)).then((seen) =>
        seen.map((m) => m.snapshot as Snapshot),
      ),
  };
}

async function notificationsFor(snapshotId: string, count: number) {
  for (let i = 0; i < 100; i++) {
    const hits = received.filter((n) => (n.body.payload as Record<string, unknown>)?.snapshot_id === snapshotId);
    if (hits.length >= count) return hits;
    await new Promise((r) => setTimeout(r, 50));
  }
  return received.filter((n) => (n.body.payload as Record<string, unknown>)?.snapshot_id === snapshotId);
}

beforeAll(async () => {
  stack = await startStack();
  db = createDb({ url: stack.database.url, max: 2 });
  notifications = stack.nc.subscribe(`${stack.prefix}.notifications.>`);
  void (async () => {
    for await (const m of notifications) received.push({ subject: m.subject, body: m.json() });
  })();
});

afterAll(async () => {
  notifications?.unsubscribe();
  await db?.close();
  const codes = await stack?.stop();
  // Every service stops cleanly on SIGTERM.
  expect(codes).toEqual({ api: 0, scheduler: 0, volume: 0 });
});

describe("create a snapshot of a bootable volume", () => {
  it("flows api → scheduler → volume host and ends available with the volume's metadata", async () => {
    const project = uniqueName("proj-");
    const volume = await volumesApi(project).create({
      name: "boot",
      sizeGb: 1,
      bootable: true,
      imageMetadata: { image_id: "9c1f7a52-0f2b-4d0e-a4a5-8a3b3b7e2c10", image_name: "debian-12", min_ram: "512" },
      encryptionKeyId: KEY_ID,
    });
    expect(volume.status).toBe(VolumeStatus.VOLUME_STATUS_CREATING);
    const ready = await settledVolume(stack.volumes, identity(project), volume.id);
    expect(ready).toMatchObject({ status: VolumeStatus.VOLUME_STATUS_AVAILABLE, host: `${stack.host}@file` });

    // Real bytes: what the volume holds at snapshot time is what the snapshot holds.
    const volumeFile = join(stack.dataDir, `volume-${volume.id}.img`);
    const marker = Buffer.from("cinderblock was here");
    const fh = await open(volumeFile, "r+");
    await fh.write(marker, 0, marker.length, 5 * 1024 * 1024);
    await fh.close();

    const api = snapshotsApi(project);
    const created = await api.create(volume.id, { description: "nova snapshot", metadata: { source: "nova" } });
    expect(created).toMatchObject({
      status: SnapshotStatus.SNAPSHOT_STATUS_CREATING,
      progress: "0%",
      volumeId: volume.id,
      volumeSizeGb: 1,
      name: "snapshot for snapshot1",
    });

    const seen = await api.watch(created.id);
    const last = seen[seen.length - 1];
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(last).toMatchObject({
      id: created.id,
      status: SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE,
      progress: "100%",
      encryptionKeyId: KEY_ID,
      imageMetadata: { image_id: "9c1f7a52-0f2b-4d0e-a4a5-8a3b3b7e2c10", image_name: "debian-12", min_ram: "512" },
      metadata: { source: "nova" },
    });
    expect(last?.providerLocation).toBe(join(stack.dataDir, `snapshot-${created.id}.img`));
    const copy = await open(join(stack.dataDir, `snapshot-${created.id}.img`), "r");
    const { size } = await copy.stat();
    const { buffer } = await copy.read(Buffer.alloc(marker.length), 0, marker.length, 5 * 1024 * 1024);
    await copy.close();
    expect(size).toBe(1024 ** 3);
    expect(buffer.toString()).toBe(marker.toString());

    const events = await notificationsFor(created.id, 2);
    expect(events.map((e) => e.subject)).toEqual([
      `${stack.prefix}.notifications.info.snapshot.create.start`,
      `${stack.prefix}.notifications.info.snapshot.create.end`,
    ]);
    const [start, end] = events.map((e) => e.body);
    expect(start).toMatchObject({
      eventType: "snapshot.create.start",
      publisherId: `snapshot.${stack.host}`,
      priority: "INFO",
    });
    expect(typeof start?.messageId).toBe("string");
    expect(Number.isNaN(Date.parse(String(start?.timestamp)))).toBe(false);
    expect(start?.payload).toMatchObject({ status: "creating", snapshot_id: created.id });
    expect(end).toMatchObject({ eventType: "snapshot.create.end", publisherId: `snapshot.${stack.host}` });
    expect(end?.payload).toEqual({
      tenant_id: project,
      user_id: "alice",
      availability_zone: "nova",
      volume_id: volume.id,
      volume_size: 1,
      snapshot_id: created.id,
      display_name: "snapshot for snapshot1",
      created_at: expect.any(String),
      status: "available",
      deleted: false,
      metadata: { source: "nova" },
    });

    // The notifications stream captured them for replay.
    const jsm = await (await import("@nats-io/jetstream")).jetstreamManager(stack.nc);
    const info = await jsm.streams.info(`${stack.prefix.toUpperCase()}_NOTIFICATIONS`);
    expect(info.state.messages).toBeGreaterThanOrEqual(4); // volume.create.start/end + snapshot.create.start/end
  });
});

describe("failures end in error with a reason, never stuck in creating", () => {
  it("a driver failure sets error with the driver's reason and sends an error notification", async () => {
    const project = uniqueName("proj-");
    const volume = await volumesApi(project).create({ name: "doomed" });
    await settledVolume(stack.volumes, identity(project), volume.id);
    // The backing file disappears under the driver (a real storage failure).
    await rm(join(stack.dataDir, `volume-${volume.id}.img`));
    const api = snapshotsApi(project);
    const created = await api.create(volume.id);
    const seen = await api.watch(created.id);
    const last = seen[seen.length - 1];
    expect(last?.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_ERROR);
    // The tenant reads what failed; the driver's words (file names) are for admins only.
    expect(last?.statusReason).toBe("the storage backend failed to create the snapshot");
    expect(last?.statusDetail).toBe("");
    const asAdmin = await call<GetSnapshotResponse>((done) =>
      stack.snapshots.getSnapshot({ id: created.id }, identity(project, "operator", "admin"), done),
    );
    expect(asAdmin.snapshot?.statusDetail).toContain(`volume-${volume.id}.img not found`);
    const events = await notificationsFor(created.id, 2);
    expect(events.map((e) => e.subject)).toEqual([
      `${stack.prefix}.notifications.info.snapshot.create.start`,
      `${stack.prefix}.notifications.error.snapshot.create.error`,
    ]);
    expect(events[1]?.body).toMatchObject({ priority: "ERROR", payload: { status: "error", snapshot_id: created.id } });
  });

  it("a snapshot whose backend is down fails in the scheduler with a reason", async () => {
    const project = uniqueName("proj-");
    const volume = await volumesApi(project).create({ name: "orphan" });
    await settledVolume(stack.volumes, identity(project), volume.id);
    // Move the volume to a backend that stopped sending heartbeats ten minutes ago.
    await reportService(db.db, {
      host: "ghost@file",
      hostName: "ghost",
      backend: "file",
      availabilityZone: "nova",
      capabilities: {},
    });
    await db.db.execute(
      sql`update services set heartbeat_at = now() - interval '10 minutes' where host = 'ghost@file'`,
    );
    await db.db.execute(sql`update volumes set host = 'ghost@file' where id = ${volume.id}`);
    const api = snapshotsApi(project);
    const created = await api.create(volume.id);
    const seen = await api.watch(created.id);
    expect(seen[seen.length - 1]).toMatchObject({
      status: SnapshotStatus.SNAPSHOT_STATUS_ERROR,
      statusReason: "scheduling failed: the volume's backend cannot take a snapshot now",
      statusDetail: "",
    });
    const asAdmin = await call<GetSnapshotResponse>((done) =>
      stack.snapshots.getSnapshot({ id: created.id }, identity(project, "operator", "admin"), done),
    );
    expect(asAdmin.snapshot?.statusDetail).toBe(
      "scheduling failed: backend ghost@file is down (no heartbeat for 60 s)",
    );
    // The notification follows the status change: wait for it rather than race it.
    const events = await notificationsFor(created.id, 1);
    expect(events.map((e) => e.subject)).toEqual([`${stack.prefix}.notifications.error.scheduler.create_snapshot`]);
  });
});

describe("refused requests change nothing", () => {
  it("refuses an over-quota snapshot with RESOURCE_EXHAUSTED and writes nothing", async () => {
    const project = uniqueName("proj-");
    const volume = await volumesApi(project).create({ name: "small" });
    await settledVolume(stack.volumes, identity(project), volume.id);
    await setQuotaLimit(db.db, project, "snapshots", 1);
    const api = snapshotsApi(project);
    await api.create(volume.id);
    const before = await db.db.execute(sql`select count(*)::int as n from snapshots where project_id = ${project}`);
    const error = await callError(api.create(volume.id));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toBe("quota exceeded for snapshots: requested 1, 1 of 1 in use");
    const after = await db.db.execute(sql`select count(*)::int as n from snapshots where project_id = ${project}`);
    expect(after).toEqual(before);
    expect(await api.list()).toHaveLength(1);
  });

  it("answers bad input with the right status and a message naming the field", async () => {
    const project = uniqueName("proj-");
    expect(await callError(volumesApi(project).create({ sizeGb: 0 }))).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: "size_gb: must be at least 1",
    });
    expect(await callError(volumesApi(project).create({ name: "  " }))).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: "name: must not be blank (leave it empty for an unnamed volume)",
    });
    expect(await callError(snapshotsApi(project).create("not-a-uuid"))).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: "volume_id: must be a UUID",
    });
    expect(await callError(snapshotsApi(project).create("00000000-0000-4000-8000-000000000000"))).toMatchObject({
      code: status.NOT_FOUND,
    });
    const anonymous = await callError(call((done) => stack.volumes.getVolume({ id: "x" }, new Metadata(), done)));
    expect(anonymous).toMatchObject({ code: status.UNAUTHENTICATED });
    const [row] = await db.db.execute<{ n: number }>(
      sql`select count(*)::int as n from volumes where project_id = ${project}`,
    );
    expect(row?.n).toBe(0);
  });
});

describe("developer tools", () => {
  const buf = join(REPO_ROOT, "node_modules", ".bin", "buf");

  it("buf curl lists the services through server reflection and calls a method with JSON", async () => {
    const url = `http://${stack.address}`;
    const flags = ["curl", "--protocol", "grpc", "--http2-prior-knowledge"];
    const listed = await run(buf, [...flags, "--list-services", url]);
    expect(listed.stdout.split("\n").filter(Boolean).sort()).toEqual([
      "cinderblock.v1.EventsService",
      "cinderblock.v1.GroupSnapshotsService",
      "cinderblock.v1.QuotasService",
      "cinderblock.v1.ServicesService",
      "cinderblock.v1.SnapshotsService",
      "cinderblock.v1.VolumeTypesService",
      "cinderblock.v1.VolumesService",
      "grpc.health.v1.Health",
    ]);
    const methods = await run(buf, [...flags, "--list-methods", url]);
    expect(methods.stdout).toContain("cinderblock.v1.SnapshotsService/WatchSnapshot");
    const project = uniqueName("proj-");
    const created = await run(buf, [
      ...flags,
      "-H",
      `x-project-id: ${project}`,
      "-H",
      "x-user-id: bob",
      "-d",
      JSON.stringify({ name: "from-buf", sizeGb: 2 }),
      `${url}/cinderblock.v1.VolumesService/CreateVolume`,
    ]);
    expect(JSON.parse(created.stdout)).toMatchObject({
      volume: { name: "from-buf", sizeGb: 2, status: "VOLUME_STATUS_CREATING", projectId: project, userId: "bob" },
    });
    const health = await run(buf, [...flags, "-d", "{}", `${url}/grpc.health.v1.Health/Check`]);
    expect(JSON.parse(health.stdout)).toEqual({ status: "SERVING" });
  });
});
