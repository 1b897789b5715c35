import { randomUUID } from "node:crypto";
import { type Bus, createOutboxAnnouncer, createSubjects, type Notifier, RetryableError } from "@cinderblock/bus";
import {
  createDb,
  type Db,
  type DbHandle,
  getQuotaUsage,
  insertAttachment,
  insertOperation,
  insertSnapshot,
  insertVolume,
  insertVolumeType,
  reserveQuota,
  runMigrations,
  transaction,
} from "@cinderblock/db";
import { cascadedDeleteId, derivedId } from "@cinderblock/domain";
import {
  SchedulerCreateVolume,
  VolumeCreateSnapshot,
  VolumeCreateVolume,
  VolumeDeleteSnapshot,
  VolumeDeleteVolume,
  VolumeExtendVolume,
  VolumeMigrateVolume,
  VolumeRetypeVolume,
  VolumeRevertToSnapshot,
} from "@cinderblock/proto";
import { createTestDatabase, type TestDatabase, uniqueName } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DriverError, SnapshotBusyError, type VolumeDriver } from "./drivers/driver.js";
import { createVolumeManager } from "./manager.js";

// The volume manager's operations (as Cinder's tests/unit/volume/test_snapshot.py tests the real
// manager): the real PostgreSQL and outbox, a fake driver that records its calls and fails on
// demand, a notifier that records the `.start` events, and a bus that records change signals.

let database: TestDatabase;
let handle: DbHandle;
let db: Db;
const subjects = createSubjects(uniqueName("mgr"));
const host = "vol1";
const backendHost = "vol1@file";

/** What the fake driver was asked, and how it should answer next. */
const driver = {
  calls: [] as string[],
  fail: new Map<string, unknown>(),
  /** When set, createSnapshot waits for it (lets two deliveries of one cast overlap). */
  gate: undefined as Promise<void> | undefined,
  /** What retype answers (whether the backend could do it in place). */
  retypeHandled: true,
};
function call(name: string, id: string): void {
  driver.calls.push(`${name} ${id}`);
  const error = driver.fail.get(name);
  if (error) throw error;
}
const fakeDriver: VolumeDriver = {
  initialize: async () => {},
  createVolume: async (v) => call("createVolume", v.id),
  deleteVolume: async (v) => call("deleteVolume", v.id),
  async createSnapshot(s) {
    await driver.gate;
    call("createSnapshot", s.id);
    return { providerLocation: `file:${s.id}` };
  },
  deleteSnapshot: async (s) => call("deleteSnapshot", s.id),
  createVolumeFromSnapshot: async (v, s) => call("createVolumeFromSnapshot", `${v.id}<${s.id}`),
  createClonedVolume: async (v, s) => call("createClonedVolume", `${v.id}<${s.id}:${v.sizeGb}`),
  revertToSnapshot: async (v, s) => call("revertToSnapshot", `${v.id}<${s.id}`),
  extendVolume: async (v, size) => call("extendVolume", `${v.id}:${size}`),
  async retype(v, type) {
    call("retype", `${v.id}:${type.name}`);
    return driver.retypeHandled;
  },
  listManageableSnapshots: async () => [],
  manageExistingSnapshot: async () => ({ sizeGb: 1 }),
  unmanageSnapshot: async () => {},
  initializeConnection: async () => ({ driverVolumeType: "local", data: {} }),
  terminateConnection: async () => {},
  getStats: async () => ({}) as never,
  close: async () => {},
};

const starts: Array<{ eventType: string; key: string | undefined }> = [];
const notifier: Notifier = {
  async notify(_priority, eventType, _publisher, _payload, key) {
    starts.push({ eventType, key });
  },
};
const changed: string[] = [];
/** Payloads published on core NATS, by subject (compute agents' events). */
const published = new Map<string, unknown>();
const bus = {
  nc: {
    publish: (subject: string, data?: string) => {
      changed.push(subject);
      if (typeof data === "string") published.set(subject, JSON.parse(data));
    },
  },
  subjects,
} as unknown as Bus;

let manager: ReturnType<typeof createVolumeManager>;
let committed = 0;

function run<C>(codec: { encode(c: C): { finish(): Uint8Array } }, subject: string, cast: C, finalAttempt = false) {
  const handler = manager.get(subject);
  if (!handler) throw new Error(`no handler for ${subject}`);
  return handler.handle(handler.decode(codec.encode(cast).finish()), { finalAttempt });
}

/** The notifications the manager wrote into the outbox for `id`, in order: event type and message id. */
async function outcomes(id: string): Promise<Array<{ event: string; msgId: string }>> {
  const rows = await db.execute<{ subject: string; msg_id: string; payload: Uint8Array }>(
    // Casts (a create handed back to the scheduler) are protobuf, not notifications.
    sql`select subject, msg_id, payload from outbox where subject <> ${subjects.schedulerCreateVolume} order by id`,
  );
  return rows
    .map((r) => ({ r, json: JSON.parse(Buffer.from(r.payload).toString("utf8")) }))
    .filter(
      ({ json }) =>
        (json.eventType.startsWith("snapshot.") && json.payload?.snapshot_id === id) ||
        (json.eventType.startsWith("volume.") && json.payload?.volume_id === id),
    )
    .map(({ r, json }) => ({ event: json.eventType as string, msgId: r.msg_id }));
}

async function statusOf(table: "volumes" | "snapshots", id: string) {
  const [row] = await db.execute<{ status: string; status_reason: string; status_detail: string }>(
    table === "volumes"
      ? sql`select status, status_reason, status_detail from volumes where id = ${id}`
      : sql`select status, status_reason, status_detail from snapshots where id = ${id}`,
  );
  return row;
}

async function operationState(id: string) {
  const [row] = await db.execute<{ state: string; last_error: string }>(
    sql`select state, last_error from operations where id = ${id}`,
  );
  return row;
}

const projectId = uniqueName("p-");

/** Sessions of this database waiting for a row lock. */
async function waitingForLocks(): Promise<number> {
  const [row] = await db.execute<{ n: number }>(sql`
    select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`);
  return Number(row?.n);
}

async function until(check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition never held");
}

async function volume(status: string, patch: { sizeGb?: number; sourceVolid?: string } = {}): Promise<string> {
  const id = randomUUID();
  await insertVolume(db, {
    id,
    projectId,
    userId: "u1",
    status: status as never,
    sizeGb: patch.sizeGb ?? 2,
    availabilityZone: "nova",
    host: backendHost,
    sourceVolid: patch.sourceVolid ?? null,
  });
  return id;
}

async function snapshot(volumeId: string, status: string): Promise<string> {
  const id = randomUUID();
  await insertSnapshot(db, { id, projectId, userId: "u1", volumeId, status: status as never, volumeSizeGb: 2 });
  return id;
}

async function operation(kind: string, resourceId: string, id: string = randomUUID()): Promise<string> {
  await insertOperation(db, { id, kind: kind as never, resourceId, projectId, timeoutSeconds: 120 });
  return id;
}

const context = { requestId: "r", projectId, userId: "u1", roles: [] };

beforeAll(async () => {
  database = await createTestDatabase(runMigrations);
  handle = createDb({ url: database.url, max: 8 });
  db = handle.db;
  manager = createVolumeManager(
    {
      db,
      bus,
      notifier,
      announcer: createOutboxAnnouncer(subjects, host),
      onCommitted: () => committed++,
      hostName: host,
      drivers: new Map([["file", fakeDriver]]),
    },
    subjects,
  );
});

afterAll(async () => {
  await handle?.close();
  await database?.drop();
});

beforeEach(() => {
  driver.calls = [];
  driver.fail.clear();
  driver.gate = undefined;
  starts.length = 0;
  changed.length = 0;
  published.clear();
});

describe("create_snapshot", () => {
  it("takes the snapshot, marks it available and ends its operation, start before end", async () => {
    const volumeId = await volume("available");
    const snapshotId = await snapshot(volumeId, "creating");
    const operationId = await operation("create_snapshot", snapshotId);
    const before = committed;
    await run(VolumeCreateSnapshot, subjects.volumeCreateSnapshot(host), {
      operationId,
      context,
      snapshotId,
      volumeId,
    });
    expect(driver.calls).toEqual([`createSnapshot ${snapshotId}`]);
    expect(await statusOf("snapshots", snapshotId)).toEqual({
      status: "available",
      status_reason: "",
      status_detail: "",
    });
    expect(await operationState(operationId)).toEqual({ state: "done", last_error: "" });
    expect(starts).toEqual([{ eventType: "snapshot.create.start", key: operationId }]);
    expect(await outcomes(snapshotId)).toEqual([
      { event: "snapshot.create.end", msgId: derivedId("notification", operationId, "snapshot.create.end") },
    ]);
    expect(committed).toBe(before + 1);
    expect(changed).toContain(subjects.change("snapshot", snapshotId));
  });

  it("one .end when the original cast and a re-sent one finish in the same batch", async () => {
    const volumeId = await volume("available");
    const first = await snapshot(volumeId, "creating");
    const firstOp = await operation("create_snapshot", first);
    const snapshotId = await snapshot(volumeId, "creating");
    const operationId = await operation("create_snapshot", snapshotId);
    // The batch of another snapshot is held (its operation's row locked here), so both
    // deliveries of this cast queue behind it and are recorded in the next batch, together.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const lockTaken = new Promise<void>((r) => (locked = r));
    const holder = transaction(db, async (tx) => {
      await tx.execute(sql`select id from operations where id = ${firstOp} for update`);
      locked();
      await held;
    });
    await lockTaken;
    const blocked = run(VolumeCreateSnapshot, subjects.volumeCreateSnapshot(host), {
      operationId: firstOp,
      context,
      snapshotId: first,
      volumeId,
    });
    await until(async () => (await waitingForLocks()) > 0);
    const cast = { operationId, context, snapshotId, volumeId };
    const both = Promise.all([
      run(VolumeCreateSnapshot, subjects.volumeCreateSnapshot(host), cast),
      run(VolumeCreateSnapshot, subjects.volumeCreateSnapshot(host), cast),
    ]);
    await until(async () => driver.calls.filter((c) => c === `createSnapshot ${snapshotId}`).length === 2);
    await new Promise((r) => setTimeout(r, 50));
    release();
    await Promise.all([holder, blocked, both]);
    expect(await statusOf("snapshots", snapshotId)).toMatchObject({ status: "available" });
    expect(await outcomes(snapshotId)).toEqual([
      { event: "snapshot.create.end", msgId: derivedId("notification", operationId, "snapshot.create.end") },
    ]);
  });

  it("asks for a retry while deliveries remain, then records a reason for the tenant and the driver's words for admins", async () => {
    const volumeId = await volume("available");
    const snapshotId = await snapshot(volumeId, "creating");
    const operationId = await operation("create_snapshot", snapshotId);
    const cast = { operationId, context, snapshotId, volumeId };
    driver.fail.set("createSnapshot", new Error("EIO"));
    await expect(run(VolumeCreateSnapshot, subjects.volumeCreateSnapshot(host), cast)).rejects.toBeInstanceOf(
      RetryableError,
    );
    expect(await statusOf("snapshots", snapshotId)).toMatchObject({ status: "creating" });
    driver.fail.set("createSnapshot", new DriverError("the volume file is gone", { retryable: false }));
    await run(VolumeCreateSnapshot, subjects.volumeCreateSnapshot(host), cast);
    expect(await statusOf("snapshots", snapshotId)).toEqual({
      status: "error",
      status_reason: "the storage backend failed to create the snapshot",
      status_detail: "the volume file is gone",
    });
    expect(await operationState(operationId)).toEqual({ state: "failed", last_error: "the volume file is gone" });
    expect((await outcomes(snapshotId)).map((o) => o.event)).toEqual(["snapshot.create.error"]);
  });

  it("a cast for a snapshot that is no longer creating only closes its operation", async () => {
    const volumeId = await volume("available");
    const snapshotId = await snapshot(volumeId, "available");
    const operationId = await operation("create_snapshot", snapshotId);
    await run(VolumeCreateSnapshot, subjects.volumeCreateSnapshot(host), {
      operationId,
      context,
      snapshotId,
      volumeId,
    });
    expect(driver.calls).toEqual([]);
    expect(await operationState(operationId)).toMatchObject({ state: "done" });
    expect(await outcomes(snapshotId)).toEqual([]);
  });
});

describe("delete_snapshot", () => {
  it("removes the snapshot, releases its quota and ends with snapshot.delete.end", async () => {
    const volumeId = await volume("available");
    const snapshotId = await snapshot(volumeId, "deleting");
    await reserveQuota(db, projectId, [
      { resource: "snapshots", delta: 1, defaultLimit: -1 },
      { resource: "gigabytes", delta: 2, defaultLimit: -1 },
    ]);
    const usage = await getQuotaUsage(db, projectId);
    const operationId = await operation("delete_snapshot", snapshotId);
    await run(VolumeDeleteSnapshot, subjects.volumeDeleteSnapshot(host), { operationId, context, snapshotId });
    expect(await statusOf("snapshots", snapshotId)).toMatchObject({ status: "deleted" });
    expect(await getQuotaUsage(db, projectId)).toMatchObject({
      snapshots: (usage.snapshots ?? 0) - 1,
      gigabytes: (usage.gigabytes ?? 0) - 2,
    });
    expect(starts).toEqual([{ eventType: "snapshot.delete.start", key: operationId }]);
    expect((await outcomes(snapshotId)).map((o) => o.event)).toEqual(["snapshot.delete.end"]);
    expect(await operationState(operationId)).toMatchObject({ state: "done" });
  });

  it("a busy snapshot goes back to available; a failed one to error_deleting", async () => {
    const volumeId = await volume("available");
    const busy = await snapshot(volumeId, "deleting");
    const busyOp = await operation("delete_snapshot", busy);
    driver.fail.set("deleteSnapshot", new SnapshotBusyError("2 clones depend on it"));
    await run(VolumeDeleteSnapshot, subjects.volumeDeleteSnapshot(host), {
      operationId: busyOp,
      context,
      snapshotId: busy,
    });
    expect(await statusOf("snapshots", busy)).toEqual({
      status: "available",
      status_reason: "the snapshot is busy: something on the storage backend still depends on it",
      status_detail: "2 clones depend on it",
    });
    const failed = await snapshot(volumeId, "deleting");
    const failedOp = await operation("delete_snapshot", failed);
    driver.fail.set("deleteSnapshot", new DriverError("permission denied", { retryable: false }));
    await run(VolumeDeleteSnapshot, subjects.volumeDeleteSnapshot(host), {
      operationId: failedOp,
      context,
      snapshotId: failed,
    });
    expect(await statusOf("snapshots", failed)).toEqual({
      status: "error_deleting",
      status_reason: "the storage backend failed to delete the snapshot",
      status_detail: "permission denied",
    });
    expect((await outcomes(failed)).map((o) => o.event)).toEqual(["snapshot.delete.error"]);
    expect(await operationState(failedOp)).toMatchObject({ state: "failed" });
  });
});

describe("delete_volume", () => {
  it("a cascade deletes each snapshot under its own operation, then the volume", async () => {
    const volumeId = await volume("deleting");
    const snapshots = [await snapshot(volumeId, "deleting"), await snapshot(volumeId, "deleting")];
    const operationId = randomUUID();
    for (const s of snapshots) await operation("delete_snapshot", s, cascadedDeleteId(operationId, s));
    await operation("delete_volume", volumeId, operationId);
    await run(VolumeDeleteVolume, subjects.volumeDeleteVolume(host), { operationId, context, volumeId, cascade: true });
    expect(driver.calls.sort()).toEqual(
      [...snapshots.map((s) => `deleteSnapshot ${s}`), `deleteVolume ${volumeId}`].sort(),
    );
    for (const s of snapshots) {
      expect(await statusOf("snapshots", s)).toMatchObject({ status: "deleted" });
      expect(await operationState(cascadedDeleteId(operationId, s))).toMatchObject({ state: "done" });
    }
    expect(await statusOf("volumes", volumeId)).toMatchObject({ status: "deleted" });
    expect((await outcomes(volumeId)).map((o) => o.event)).toEqual(["volume.delete.end"]);
  });

  it("a snapshot that cannot go keeps the volume (error_deleting) but the others still go", async () => {
    const volumeId = await volume("deleting");
    const kept = await snapshot(volumeId, "available");
    const gone = await snapshot(volumeId, "deleting");
    const operationId = await operation("delete_volume", volumeId);
    await operation("delete_snapshot", gone, cascadedDeleteId(operationId, gone));
    await run(VolumeDeleteVolume, subjects.volumeDeleteVolume(host), { operationId, context, volumeId, cascade: true });
    expect(await statusOf("snapshots", gone)).toMatchObject({ status: "deleted" });
    expect(await statusOf("volumes", volumeId)).toEqual({
      status: "error_deleting",
      status_reason: `snapshot ${kept} is available; the volume keeps it`,
      status_detail: `snapshot ${kept} is available; the volume keeps it`,
    });
    expect(driver.calls).not.toContain(`deleteVolume ${volumeId}`);
    expect((await outcomes(volumeId)).map((o) => o.event)).toEqual(["volume.delete.error"]);
  });
});

describe("extend_volume, revert_to_snapshot, create_volume", () => {
  it("an extend ends available at the new size; a failed one error_extending", async () => {
    const volumeId = await volume("extending");
    const operationId = await operation("extend_volume", volumeId);
    await run(VolumeExtendVolume, subjects.volumeExtendVolume(host), { operationId, context, volumeId, newSizeGb: 5 });
    const [row] = await db.execute<{ status: string; size_gb: number }>(
      sql`select status, size_gb from volumes where id = ${volumeId}`,
    );
    expect(row).toEqual({ status: "available", size_gb: 5 });
    expect((await outcomes(volumeId)).map((o) => o.event)).toEqual(["volume.resize.end"]);

    const failing = await volume("extending");
    const failingOp = await operation("extend_volume", failing);
    driver.fail.set("extendVolume", new DriverError("no space left in the pool", { retryable: false }));
    await run(VolumeExtendVolume, subjects.volumeExtendVolume(host), {
      operationId: failingOp,
      context,
      volumeId: failing,
      newSizeGb: 9,
    });
    expect(await statusOf("volumes", failing)).toEqual({
      status: "error_extending",
      status_reason: "the storage backend failed to extend the volume",
      status_detail: "no space left in the pool",
    });
  });

  it("an extend of an attached volume ends in-use, and each attached instance's compute agent is told", async () => {
    const volumeId = await volume("extending");
    const instances = [randomUUID(), randomUUID()];
    for (const instanceId of instances) {
      await insertAttachment(db, {
        id: randomUUID(),
        volumeId,
        projectId,
        instanceId,
        mountpoint: "/dev/vdb",
        connector: {},
      });
    }
    const operationId = await operation("extend_volume", volumeId);
    await run(VolumeExtendVolume, subjects.volumeExtendVolume(host), { operationId, context, volumeId, newSizeGb: 7 });
    const [row] = await db.execute<{ status: string; size_gb: number }>(
      sql`select status, size_gb from volumes where id = ${volumeId}`,
    );
    expect(row).toEqual({ status: "in-use", size_gb: 7 });
    expect((await outcomes(volumeId)).map((o) => o.event)).toEqual(["volume.resize.end"]);
    for (const instanceId of instances) {
      expect(published.get(subjects.compute(instanceId, "volume_extended"))).toEqual({
        instanceId,
        volumeId,
        newSizeGb: 7,
      });
    }
  });

  it("a revert puts both back to available; a failed one leaves the volume in error", async () => {
    const volumeId = await volume("reverting");
    const snapshotId = await snapshot(volumeId, "restoring");
    const operationId = await operation("revert_volume", volumeId);
    await run(VolumeRevertToSnapshot, subjects.volumeRevertToSnapshot(host), {
      operationId,
      context,
      volumeId,
      snapshotId,
    });
    expect(await statusOf("volumes", volumeId)).toMatchObject({ status: "available" });
    expect(await statusOf("snapshots", snapshotId)).toMatchObject({ status: "available" });
    expect((await outcomes(volumeId)).map((o) => o.event)).toEqual(["volume.revert.end"]);

    const failing = await volume("reverting");
    const failingSnapshot = await snapshot(failing, "restoring");
    const failingOp = await operation("revert_volume", failing);
    driver.fail.set("revertToSnapshot", new DriverError("rollback failed", { retryable: false }));
    await run(VolumeRevertToSnapshot, subjects.volumeRevertToSnapshot(host), {
      operationId: failingOp,
      context,
      volumeId: failing,
      snapshotId: failingSnapshot,
    });
    expect(await statusOf("volumes", failing)).toEqual({
      status: "error",
      status_reason: "the storage backend failed to revert the volume",
      status_detail: "rollback failed",
    });
    expect(await statusOf("snapshots", failingSnapshot)).toMatchObject({ status: "available" });
  });

  it("a create makes the volume available, or error with the reason on the final delivery", async () => {
    const volumeId = await volume("creating");
    const operationId = await operation("create_volume", volumeId);
    await run(VolumeCreateVolume, subjects.volumeCreateVolume(host), {
      operationId,
      context,
      volumeId,
      backend: "file",
    });
    expect(await statusOf("volumes", volumeId)).toMatchObject({ status: "available" });
    expect(starts).toEqual([{ eventType: "volume.create.start", key: operationId }]);
    expect((await outcomes(volumeId)).map((o) => o.event)).toEqual(["volume.create.end"]);

    const failing = await volume("creating");
    const failingOp = await operation("create_volume", failing);
    driver.fail.set("createVolume", new Error("ENOSPC"));
    await run(
      VolumeCreateVolume,
      subjects.volumeCreateVolume(host),
      { operationId: failingOp, context, volumeId: failing, backend: "file" },
      true,
    );
    expect(await statusOf("volumes", failing)).toEqual({
      status: "error",
      status_reason: "the storage backend failed to create the volume",
      status_detail: "ENOSPC",
    });
    expect((await outcomes(failing)).map((o) => o.event)).toEqual(["volume.create.error"]);
  });
});

describe("create_volume with retries on another backend (CINDERBLOCK_SCHEDULER_MAX_ATTEMPTS 3)", () => {
  let retrying: ReturnType<typeof createVolumeManager>;
  beforeAll(() => {
    retrying = createVolumeManager(
      {
        db,
        bus,
        notifier,
        announcer: createOutboxAnnouncer(subjects, host),
        onCommitted: () => committed++,
        hostName: host,
        drivers: new Map([["file", fakeDriver]]),
        maxSchedulingAttempts: 3,
      },
      subjects,
    );
  });
  const create = (operationId: string, volumeId: string) => {
    const handler = retrying.get(subjects.volumeCreateVolume(host));
    if (!handler) throw new Error("no create_volume handler");
    const cast = { operationId, context, volumeId, backend: "file" };
    return handler.handle(handler.decode(VolumeCreateVolume.encode(cast).finish()), { finalAttempt: true });
  };
  const schedulerCasts = (operationId: string) =>
    db.execute<{ msg_id: string; payload: Uint8Array }>(
      sql`select msg_id, payload from outbox where subject = ${subjects.schedulerCreateVolume}
           and msg_id like ${`${operationId}:%`} order by id`,
    );
  const operationRow = async (id: string) => {
    const [row] = await db.execute<{ state: string; detail: Record<string, unknown>; window: number }>(sql`
      select state, detail, extract(epoch from deadline_at - updated_at)::int as window from operations where id = ${id}`);
    return row;
  };

  it("hands a failed blank create back to the scheduler: creating, no host, the tried host in the cast and the operation", async () => {
    const volumeId = await volume("creating");
    const operationId = await operation("create_volume", volumeId);
    // A placement that failed before, on another host.
    await db.execute(
      sql`update operations set detail = ${JSON.stringify({ failedPlacements: [{ host: "vol0@file", error: "EIO" }] })}::jsonb where id = ${operationId}`,
    );
    driver.fail.set("createVolume", new DriverError("cannot create volume image: EROFS", { retryable: false }));
    await create(operationId, volumeId);
    expect(await statusOf("volumes", volumeId)).toEqual({ status: "creating", status_reason: "", status_detail: "" });
    const [row] = await db.execute<{ host: string | null }>(sql`select host from volumes where id = ${volumeId}`);
    expect(row?.host).toBeNull();
    const placements = [
      { host: "vol0@file", error: "EIO" },
      { host: backendHost, error: "cannot create volume image: EROFS" },
    ];
    // Still the same operation, pending, with its time given again.
    expect(await operationRow(operationId)).toEqual({
      state: "pending",
      detail: { failedPlacements: placements },
      window: 120,
    });
    const casts = await schedulerCasts(operationId);
    expect(casts.map((c) => c.msg_id)).toEqual([`${operationId}:placement-2:scheduler`]);
    const cast = SchedulerCreateVolume.decode(new Uint8Array(casts[0]?.payload ?? []));
    expect(cast).toMatchObject({ operationId, volumeId, sizeGb: 2, availabilityZone: "nova" });
    expect(cast.failedPlacements).toEqual(placements);
    // No .error: the create is not over.
    expect(await outcomes(volumeId)).toEqual([]);
    expect(changed).toContain(subjects.change("volume", volumeId));

    // A second delivery of the same cast finds the volume gone from this backend: it does nothing.
    driver.calls = [];
    await create(operationId, volumeId);
    expect(driver.calls).toEqual([]);
    expect(await schedulerCasts(operationId)).toHaveLength(1);
    expect(await statusOf("volumes", volumeId)).toMatchObject({ status: "creating" });
  });

  it("a volume from a snapshot is bound to its backend: its failed create is an error at once", async () => {
    const source = await volume("available");
    const snapshotId = await snapshot(source, "available");
    const volumeId = randomUUID();
    await insertVolume(db, {
      id: volumeId,
      projectId,
      userId: "u1",
      status: "creating",
      sizeGb: 2,
      availabilityZone: "nova",
      host: backendHost,
      snapshotId,
    });
    const operationId = await operation("create_volume", volumeId);
    driver.fail.set("createVolumeFromSnapshot", new DriverError("clone failed", { retryable: false }));
    await create(operationId, volumeId);
    expect(await statusOf("volumes", volumeId)).toEqual({
      status: "error",
      status_reason: "the storage backend failed to create the volume",
      status_detail: "clone failed",
    });
    expect(await schedulerCasts(operationId)).toEqual([]);
    expect((await outcomes(volumeId)).map((o) => o.event)).toEqual(["volume.create.error"]);
  });

  it("a clone is bound to its source's backend too: its failed create is an error at once", async () => {
    const source = await volume("available");
    const volumeId = randomUUID();
    await insertVolume(db, {
      id: volumeId,
      projectId,
      userId: "u1",
      status: "creating",
      sizeGb: 2,
      availabilityZone: "nova",
      host: backendHost,
      sourceVolid: source,
    });
    const operationId = await operation("create_volume", volumeId);
    driver.fail.set("createClonedVolume", new DriverError("reflink failed", { retryable: false }));
    await create(operationId, volumeId);
    expect(await statusOf("volumes", volumeId)).toEqual({
      status: "error",
      status_reason: "the storage backend failed to create the volume",
      status_detail: "reflink failed",
    });
    expect(await schedulerCasts(operationId)).toEqual([]);
  });
});

describe("create_volume of a clone", () => {
  it("asks the driver for a clone of the source at the new size, and volume.create.end names the source", async () => {
    const sourceId = await volume("in-use", { sizeGb: 2 });
    const cloneId = await volume("creating", { sizeGb: 3, sourceVolid: sourceId });
    const operationId = await operation("create_volume", cloneId);
    await run(VolumeCreateVolume, subjects.volumeCreateVolume(host), {
      operationId,
      context,
      volumeId: cloneId,
      backend: "file",
    });
    expect(driver.calls).toEqual([`createClonedVolume ${cloneId}<${sourceId}:3`]);
    expect(await statusOf("volumes", cloneId)).toMatchObject({ status: "available" });
    const [end] = await db.execute<{ payload: Uint8Array }>(
      sql`select payload from outbox where convert_from(payload, 'UTF8') like ${`%volume.create.end%${cloneId}%`}`,
    );
    expect(JSON.parse(Buffer.from(end?.payload ?? []).toString("utf8")).payload).toMatchObject({
      volume_id: cloneId,
      source_volid: sourceId,
      snapshot_id: null,
    });
    expect(await statusOf("volumes", sourceId)).toMatchObject({ status: "in-use" });
  });

  it("fails terminally when the source is gone", async () => {
    const cloneId = await volume("creating", { sourceVolid: randomUUID() });
    const operationId = await operation("create_volume", cloneId);
    await run(VolumeCreateVolume, subjects.volumeCreateVolume(host), {
      operationId,
      context,
      volumeId: cloneId,
      backend: "file",
    });
    expect(driver.calls).toEqual([]);
    expect(await statusOf("volumes", cloneId)).toMatchObject({
      status: "error",
      status_reason: "the storage backend failed to create the volume",
    });
  });
});

describe("retype_volume", () => {
  /** A volume `retyping` from type `old` to a new type, with the new type's quota reserved as the api does. */
  async function retyping() {
    const [oldType, newType] = await Promise.all(
      ["old", "new"].map((n) =>
        insertVolumeType(db, {
          id: randomUUID(),
          name: uniqueName(`${n}-`),
          extraSpecs: { volume_backend_name: "file" },
        }),
      ),
    );
    if (!oldType || !newType) throw new Error("no types");
    const volumeId = await volume("retyping", { sizeGb: 3 });
    await db.execute(
      sql`update volumes set volume_type = ${oldType.name}, volume_type_id = ${oldType.id} where id = ${volumeId}`,
    );
    await transaction(db, (tx) =>
      reserveQuota(tx, projectId, [
        { resource: `volumes_${oldType.name}`, delta: 1, defaultLimit: -1 },
        { resource: `gigabytes_${oldType.name}`, delta: 3, defaultLimit: -1 },
        { resource: `volumes_${newType.name}`, delta: 1, defaultLimit: -1 },
        { resource: `gigabytes_${newType.name}`, delta: 3, defaultLimit: -1 },
      ]),
    );
    const operationId = await operation("retype_volume", volumeId);
    return { volumeId, operationId, oldType, newType };
  }

  it("in place: the driver retypes, the volume goes back to its status with the new type, the old quota goes", async () => {
    const { volumeId, operationId, oldType, newType } = await retyping();
    await run(VolumeRetypeVolume, subjects.volumeRetypeVolume(host), {
      operationId,
      context,
      volumeId,
      newTypeId: newType.id,
      previousStatus: "in-use",
    });
    expect(driver.calls).toEqual([`retype ${volumeId}:${newType.name}`]);
    const [row] = await db.execute<{ status: string; volume_type: string; volume_type_id: string }>(
      sql`select status, volume_type, volume_type_id from volumes where id = ${volumeId}`,
    );
    expect(row).toEqual({ status: "in-use", volume_type: newType.name, volume_type_id: newType.id });
    expect(await operationState(operationId)).toMatchObject({ state: "done" });
    expect((await outcomes(volumeId)).map((o) => o.event)).toEqual(["volume.retype"]);
    const usage = await getQuotaUsage(db, projectId);
    expect([usage[`volumes_${oldType.name}`], usage[`gigabytes_${oldType.name}`]]).toEqual([0, 0]);
    expect([usage[`volumes_${newType.name}`], usage[`gigabytes_${newType.name}`]]).toEqual([1, 3]);
  });

  it("a driver that cannot do it in place: back to its status with the old type and the reason, the new quota goes", async () => {
    const { volumeId, operationId, oldType, newType } = await retyping();
    driver.retypeHandled = false;
    try {
      await run(VolumeRetypeVolume, subjects.volumeRetypeVolume(host), {
        operationId,
        context,
        volumeId,
        newTypeId: newType.id,
        previousStatus: "available",
      });
    } finally {
      driver.retypeHandled = true;
    }
    expect(await statusOf("volumes", volumeId)).toEqual({
      status: "available",
      status_reason: "the volume's backend cannot change it to the new type in place",
      status_detail: `the driver of ${backendHost} declined to retype the volume to ${newType.name}`,
    });
    expect(await operationState(operationId)).toMatchObject({ state: "failed" });
    expect((await outcomes(volumeId)).map((o) => o.event)).toEqual(["volume.retype.error"]);
    const usage = await getQuotaUsage(db, projectId);
    expect([usage[`volumes_${oldType.name}`], usage[`gigabytes_${oldType.name}`]]).toEqual([1, 3]);
    expect([usage[`volumes_${newType.name}`], usage[`gigabytes_${newType.name}`]]).toEqual([0, 0]);
  });
});

describe("migrate_volume that comes after its retype ended", () => {
  /** The cast to this host (the target) for a migration of `volumeId` from another host. */
  const migrateCast = (volumeId: string, operationId: string) => ({
    operationId,
    context,
    volumeId,
    newTypeId: randomUUID(),
    targetBackend: backendHost,
    targetPool: "data",
    sourceBackend: "vol9@file",
    previousStatus: "available",
  });

  it("removes the partial copy an attempt that died mid-copy left on this backend", async () => {
    // The reconciler failed the retype meanwhile: the volume is back on its source, available.
    const volumeId = await volume("available");
    await db.execute(sql`update volumes set host = 'vol9@file', migration_status = 'error' where id = ${volumeId}`);
    const operationId = await operation("retype_volume", volumeId);
    await run(VolumeMigrateVolume, subjects.volumeMigrateVolume(host), migrateCast(volumeId, operationId));
    expect(driver.calls).toEqual([`deleteVolume ${volumeId}`]);
    expect(await statusOf("volumes", volumeId)).toMatchObject({ status: "available" });
  });

  it("leaves the copy when the volume lives on this backend now, or another retype is moving it", async () => {
    const moved = await volume("available");
    const again = await volume("retyping");
    await db.execute(sql`update volumes set host = 'vol9@file', migration_status = 'migrating' where id = ${again}`);
    for (const volumeId of [moved, again]) {
      await run(
        VolumeMigrateVolume,
        subjects.volumeMigrateVolume(host),
        // A duplicate of the cast that moved it, or one of an earlier retype: from another source.
        { ...migrateCast(volumeId, await operation("retype_volume", volumeId)), sourceBackend: "vol8@file" },
      );
    }
    expect(driver.calls).toEqual([]);
  });
});
