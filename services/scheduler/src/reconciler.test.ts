import { type Bus, connectBus, createOutboxAnnouncer, createOutboxDispatcher } from "@cinderblock/bus";
import {
  createDb,
  type DbHandle,
  getSnapshotElevated,
  getVolumeElevated,
  insertOperation,
  insertSnapshot,
  insertVolume,
  runMigrations,
} from "@cinderblock/db";
import { derivedId } from "@cinderblock/domain";
import { SchedulerCreateSnapshot, SchedulerCreateVolume, SchedulerRetypeVolume } from "@cinderblock/proto";
import { createTestDatabase, TEST_NATS_URL, type TestDatabase, uniqueName } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reconcileOnce } from "./reconciler.js";

// Integration: the reconciler on the real PostgreSQL and NATS.

let database: TestDatabase;
let handle: DbHandle;
let bus: Bus;

beforeAll(async () => {
  database = await createTestDatabase(runMigrations);
  handle = createDb({ url: database.url, max: 4 });
  bus = await connectBus({ url: TEST_NATS_URL, prefix: uniqueName("cbrec"), name: "reconciler-test" });
});

afterAll(async () => {
  await handle?.close();
  await database?.drop();
  if (bus) {
    await bus.jsm.streams.delete(bus.subjects.castsStream).catch(() => false);
    await bus.jsm.streams.delete(bus.subjects.notificationsStream).catch(() => false);
    await bus.close();
  }
});

/** A snapshot stuck in `creating` whose operation's deadline has passed (its cast was lost). */
async function stuckSnapshot(attempts: number) {
  const { db } = handle;
  const volumeId = crypto.randomUUID();
  const snapshotId = crypto.randomUUID();
  const operationId = crypto.randomUUID();
  await insertVolume(db, {
    id: volumeId,
    projectId: "p1",
    userId: "u1",
    status: "available",
    sizeGb: 3,
    availabilityZone: "nova",
    host: "vol1@file",
  });
  await insertSnapshot(db, {
    id: snapshotId,
    projectId: "p1",
    userId: "u1",
    volumeId,
    status: "creating",
    volumeSizeGb: 3,
  });
  await insertOperation(db, {
    id: operationId,
    kind: "create_snapshot",
    resourceId: snapshotId,
    projectId: "p1",
    timeoutSeconds: 1,
  });
  await db.execute(
    sql`update operations set attempts = ${attempts}, deadline_at = now() - interval '1 second' where id = ${operationId}`,
  );
  return { volumeId, snapshotId, operationId };
}

const options = () => ({
  db: handle.db,
  bus,
  dispatcher: createOutboxDispatcher(bus.subjects),
  notifications: createOutboxAnnouncer(bus.subjects, "scheduler"),
  timeoutSeconds: 120,
  maxAttempts: 3,
});

describe("reconcileOnce", () => {
  it("dispatches an overdue create again, as a new message of the same operation", async () => {
    const { snapshotId, operationId } = await stuckSnapshot(1);
    expect(await reconcileOnce(options())).toMatchObject({ redispatched: 1 });
    const rows = await handle.db.execute<{ subject: string; msg_id: string; payload: Uint8Array }>(
      sql`select subject, msg_id, payload from outbox`,
    );
    const cast = rows.find((r) => r.msg_id === `${operationId}:2:scheduler`);
    expect(cast?.subject).toBe(bus.subjects.schedulerCreateSnapshot);
    expect(SchedulerCreateSnapshot.decode(new Uint8Array(cast?.payload ?? []))).toMatchObject({
      operationId,
      snapshotId,
      volumeSizeGb: 3,
      volumeHost: "vol1@file",
    });
    const [op] = await handle.db.execute<{ attempts: number; overdue: boolean }>(
      sql`select attempts, deadline_at < now() as overdue from operations where id = ${operationId}`,
    );
    expect(op).toEqual({ attempts: 2, overdue: false });
    // Not overdue any more: a second pass leaves it alone.
    expect(await reconcileOnce(options())).toEqual({ redispatched: 0, failed: 0, finished: 0 });
    await handle.db.execute(sql`delete from outbox`);
  });

  it("re-sends an overdue volume create with the backends that already failed it, still excluded", async () => {
    const { db } = handle;
    const volumeId = crypto.randomUUID();
    const operationId = crypto.randomUUID();
    await insertVolume(db, {
      id: volumeId,
      projectId: "p1",
      userId: "u1",
      status: "creating",
      sizeGb: 2,
      availabilityZone: "az1",
    });
    await insertOperation(db, {
      id: operationId,
      kind: "create_volume",
      resourceId: volumeId,
      projectId: "p1",
      timeoutSeconds: 1,
      detail: { failedPlacements: [{ host: "vol3@file-c", error: "EIO" }] },
    });
    await db.execute(sql`update operations set deadline_at = now() - interval '1 second' where id = ${operationId}`);
    expect(await reconcileOnce(options())).toMatchObject({ redispatched: 1 });
    const [cast] = await db.execute<{ payload: Uint8Array }>(
      sql`select payload from outbox where msg_id = ${`${operationId}:2:scheduler`}`,
    );
    expect(SchedulerCreateVolume.decode(new Uint8Array(cast?.payload ?? []))).toMatchObject({
      operationId,
      volumeId,
      availabilityZone: "az1",
      failedPlacements: [{ host: "vol3@file-c", error: "EIO" }],
    });
    await db.execute(sql`delete from outbox`);
  });

  it("fails a create that used up its attempts, with a reason and an error notification", async () => {
    const { snapshotId, operationId } = await stuckSnapshot(3);
    expect(await reconcileOnce(options())).toMatchObject({ failed: 1 });
    const snapshot = await getSnapshotElevated(handle.db, snapshotId);
    expect(snapshot).toMatchObject({
      status: "error",
      statusReason: "snapshot create did not finish after 3 attempts",
    });
    // The .error is in the outbox with the change, its message id derived from the operation: a
    // second pass (or another reconciler) giving the same operation up writes a duplicate JetStream drops.
    const [event] = await handle.db.execute<{ msg_id: string; payload: Uint8Array }>(
      sql`select msg_id, payload from outbox where subject = ${bus.subjects.notification("ERROR", "snapshot.create.error")}`,
    );
    expect(event?.msg_id).toBe(derivedId("notification", operationId, "snapshot.create.error"));
    expect(JSON.parse(Buffer.from(event?.payload ?? []).toString("utf8"))).toMatchObject({
      messageId: event?.msg_id,
      payload: { snapshot_id: snapshotId, status: "error" },
    });
    const [op] = await handle.db.execute<{ state: string }>(
      sql`select state from operations where id = ${operationId}`,
    );
    expect(op?.state).toBe("failed");
  });

  it("closes an operation whose snapshot already finished", async () => {
    const { snapshotId, operationId } = await stuckSnapshot(1);
    await handle.db.execute(sql`update snapshots set status = 'available' where id = ${snapshotId}`);
    expect(await reconcileOnce(options())).toMatchObject({ finished: 1, redispatched: 0 });
    const [op] = await handle.db.execute<{ state: string }>(
      sql`select state from operations where id = ${operationId}`,
    );
    expect(op?.state).toBe("done");
  });

  it("gives up a manage whose api died: the row goes and its quota is released", async () => {
    const { db } = handle;
    const { snapshotId, operationId } = await stuckSnapshot(1);
    await db.execute(sql`update operations set kind = 'manage_snapshot' where id = ${operationId}`);
    await db.execute(sql`insert into quota_usages (project_id, resource, in_use) values ('p1', 'snapshots', 1), ('p1', 'gigabytes', 3)
      on conflict (project_id, resource) do update set in_use = quota_usages.in_use + excluded.in_use`);
    const before = await db.execute<{ resource: string; in_use: number }>(
      sql`select resource, in_use from quota_usages where project_id = 'p1'`,
    );
    expect(await reconcileOnce(options())).toMatchObject({ failed: 1, redispatched: 0 });
    expect(await getSnapshotElevated(db, snapshotId)).toBeUndefined();
    const after = await db.execute<{ resource: string; in_use: number }>(
      sql`select resource, in_use from quota_usages where project_id = 'p1'`,
    );
    const used = (rows: typeof after, r: string) => rows.find((x) => x.resource === r)?.in_use ?? 0;
    expect(used(after, "snapshots")).toBe(used(before, "snapshots") - 1);
    expect(used(after, "gigabytes")).toBe(used(before, "gigabytes") - 3);
  });

  it("puts a snapshot whose unmanage was cut short back to its status", async () => {
    const { db } = handle;
    const { snapshotId, operationId } = await stuckSnapshot(1);
    await db.execute(sql`update snapshots set status = 'unmanaging' where id = ${snapshotId}`);
    await db.execute(
      sql`update operations set kind = 'unmanage_snapshot', detail = '{"previousStatus":"available"}' where id = ${operationId}`,
    );
    expect(await reconcileOnce(options())).toMatchObject({ failed: 1 });
    expect(await getSnapshotElevated(db, snapshotId)).toMatchObject({ status: "available" });
  });

  it("re-sends a retype to the scheduler; gives one up (a migration too) back to its status, the new type's quota released", async () => {
    const { db } = handle;
    /** A volume left `retyping` from `previousStatus`, with the new type's quota reserved. */
    const stuckRetype = async (attempts: number, previousStatus: string, migrationStatus: string | null) => {
      const volumeId = crypto.randomUUID();
      const operationId = crypto.randomUUID();
      const project = uniqueName("p-");
      await insertVolume(db, {
        id: volumeId,
        projectId: project,
        userId: "u1",
        status: "retyping",
        sizeGb: 4,
        availabilityZone: "nova",
        host: "vol1@file",
        volumeType: "old",
        migrationStatus,
      });
      await db.execute(sql`insert into quota_usages (project_id, resource, in_use) values
        (${project}, 'volumes_old', 1), (${project}, 'gigabytes_old', 4), (${project}, 'volumes_new', 1), (${project}, 'gigabytes_new', 4)`);
      const detail = {
        newTypeId: crypto.randomUUID(),
        newTypeName: "new",
        oldTypeName: "old",
        migrationPolicy: "on-demand",
        previousStatus,
        sizeGb: 4,
      };
      await insertOperation(db, {
        id: operationId,
        kind: "retype_volume",
        resourceId: volumeId,
        projectId: project,
        timeoutSeconds: 1,
        detail,
      });
      await db.execute(
        sql`update operations set attempts = ${attempts}, deadline_at = now() - interval '1 second' where id = ${operationId}`,
      );
      return { volumeId, operationId, project, detail };
    };
    const usage = async (project: string) =>
      Object.fromEntries(
        (
          await db.execute<{ resource: string; in_use: number }>(
            sql`select resource, in_use from quota_usages where project_id = ${project}`,
          )
        ).map((r) => [r.resource, r.in_use]),
      );

    const again = await stuckRetype(1, "in-use", null);
    expect(await reconcileOnce(options())).toMatchObject({ redispatched: 1 });
    const [cast] = await db.execute<{ subject: string; payload: Uint8Array }>(
      sql`select subject, payload from outbox where msg_id = ${`${again.operationId}:2:scheduler`}`,
    );
    expect(cast?.subject).toBe(bus.subjects.schedulerRetypeVolume);
    expect(SchedulerRetypeVolume.decode(new Uint8Array(cast?.payload ?? []))).toMatchObject({
      volumeId: again.volumeId,
      newTypeId: again.detail.newTypeId,
      migrationPolicy: "on-demand",
      previousStatus: "in-use",
    });
    await db.execute(sql`update volumes set status = 'in-use' where id = ${again.volumeId}`);

    const spent = await stuckRetype(3, "available", "migrating");
    expect(await reconcileOnce(options())).toMatchObject({ failed: 1 });
    expect(await getVolumeElevated(db, spent.volumeId)).toMatchObject({
      status: "available",
      volumeType: "old",
      migrationStatus: "error",
      statusReason: "volume retype did not finish after 3 attempts",
    });
    expect(await usage(spent.project)).toEqual({ volumes_old: 1, gigabytes_old: 4, volumes_new: 0, gigabytes_new: 0 });
    await db.execute(sql`delete from outbox`);
  });
});
