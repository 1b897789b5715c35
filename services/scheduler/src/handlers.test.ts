import { randomUUID } from "node:crypto";
import { type Bus, connectBus, createOutboxAnnouncer, createVolumeHostCaster } from "@cinderblock/bus";
import {
  createDb,
  type DbHandle,
  getSnapshotElevated,
  getVolumeElevated,
  insertOperation,
  insertSnapshot,
  insertVolume,
  insertVolumeType,
  reportService,
  runMigrations,
  setServiceFlags,
} from "@cinderblock/db";
import { derivedId } from "@cinderblock/domain";
import { SchedulerCreateSnapshot, SchedulerCreateVolume } from "@cinderblock/proto";
import { createTestDatabase, TEST_NATS_URL, type TestDatabase, uniqueName } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSchedulerHandlers, type SchedulerDependencies } from "./handlers.js";

// Integration: the scheduler's createVolume on the real PostgreSQL and NATS, while the only
// backend is still coming up (defect 7: its first report said down, 0 GiB; the create came at once).

let database: TestDatabase;
let handle: DbHandle;
let bus: Bus;

beforeAll(async () => {
  database = await createTestDatabase(runMigrations);
  handle = createDb({ url: database.url, max: 4 });
  bus = await connectBus({ url: TEST_NATS_URL, prefix: uniqueName("cbsch"), name: "scheduler-handlers-test" });
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

function handlers(extra: Partial<SchedulerDependencies> = {}) {
  return createSchedulerHandlers({
    db: handle.db,
    bus,
    caster: createVolumeHostCaster(bus),
    notifications: createOutboxAnnouncer(bus.subjects, "test"),
    onCommitted: () => {},
    serviceDownTimeSeconds: 60,
    ...extra,
  });
}

/** A volume the api has just written (`creating`, no host yet) and the cast it sent the scheduler. */
async function newVolume(
  availabilityZone: string,
  placement: { volumeTypeId?: string; schedulerHints?: { sameHost: string[]; differentHost: string[] } } = {},
) {
  const id = randomUUID();
  await insertVolume(handle.db, {
    id,
    projectId: "p1",
    userId: "u1",
    status: "creating",
    sizeGb: 1,
    availabilityZone,
    ...placement,
  });
  const cast = SchedulerCreateVolume.fromPartial({
    operationId: randomUUID(),
    context: { requestId: "req-test", projectId: "p1", userId: "u1", roles: [] },
    volumeId: id,
    sizeGb: 1,
    availabilityZone,
  });
  return { id, cast };
}

const report = (
  host: string,
  availabilityZone: string,
  backendState: "up" | "down",
  freeCapacityGb: number,
  thinProvisioning = true,
) =>
  reportService(handle.db, {
    host,
    hostName: host.split("@")[0] ?? host,
    backend: "file",
    availabilityZone,
    capabilities: {
      driver: "file",
      totalCapacityGb: freeCapacityGb,
      freeCapacityGb,
      provisionedCapacityGb: 0,
      thinProvisioning,
      maxOverSubscriptionRatio: 20,
      reservedPercentage: 0,
      totalVolumes: 0,
      backendState,
    },
    grpcAddress: "127.0.0.1:1",
  });

describe("createVolume before any backend has reported up", () => {
  it("waits for the backend's next report and places the volume on it", async () => {
    const zone = uniqueName("az-");
    const host = `${uniqueName("vol")}@file`;
    // The backend's first report: its storage is not there yet.
    await report(host, zone, "down", 0);
    const { id, cast } = await newVolume(zone);
    const scheduled = handlers().createVolume(cast, `test-${id}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await report(host, zone, "up", 100);
    await scheduled;
    const volume = await getVolumeElevated(handle.db, id);
    expect({ status: volume?.status, host: volume?.host, pool: volume?.pool, reason: volume?.statusReason }).toEqual({
      status: "creating",
      host,
      // Its pool (a backend that names none is one pool named after it): Cinder's `host@backend#pool`.
      pool: "file",
      reason: "",
    });
    // ...and the volume host got its create.
    const sent = await bus.jsm.streams.getMessage(bus.subjects.castsStream, {
      last_by_subj: bus.subjects.volumeCreateVolume(host.split("@")[0] ?? ""),
    });
    expect(sent?.subject).toBe(bus.subjects.volumeCreateVolume(host.split("@")[0] ?? ""));
  });

  it("fails once the wait is over, saying no backend has reported up", async () => {
    const zone = uniqueName("az-");
    await report(`${uniqueName("vol")}@file`, zone, "down", 0);
    const { id, cast } = await newVolume(zone);
    const started = Date.now();
    await handlers({ backendWaitMs: 400 }).createVolume(cast, `test-${id}`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    const volume = await getVolumeElevated(handle.db, id);
    expect(volume?.status).toBe("error");
    expect(volume?.statusReason).toBe("no backend was ready to take the volume");
    expect(volume?.statusDetail).toMatch(/^no backend has reported up within 0\.4 s/);
  });

  it("does not wait when a backend is up but has no room", async () => {
    const zone = uniqueName("az-");
    const host = `${uniqueName("vol")}@file`;
    await report(host, zone, "up", 0);
    const { id, cast } = await newVolume(zone);
    const started = Date.now();
    await handlers({ backendWaitMs: 10_000 }).createVolume(cast, `test-${id}`);
    expect(Date.now() - started).toBeLessThan(5_000);
    const volume = await getVolumeElevated(handle.db, id);
    expect(volume?.status).toBe("error");
    // The tenant reads that no backend fits; the backends and their reasons are the admin's detail.
    expect(volume?.statusReason).toBe("no valid backend was found");
    expect(volume?.statusDetail).toMatch(/^no valid backend was found: /);
    expect(volume?.statusDetail).toContain(`${host}#file: has a total capacity of 0 GiB`);
  });
});

describe("createVolume through the filter scheduler", () => {
  it("names every backend of the zone and why it was turned down, the disabled one included", async () => {
    const zone = uniqueName("az-");
    const disabled = `${uniqueName("vol")}@file`;
    const full = `${uniqueName("vol")}@file`;
    await report(disabled, zone, "up", 100);
    await setServiceFlags(handle.db, disabled, { disabled: true, disabledReason: "maintenance" });
    await report(full, zone, "up", 0);
    const { id, cast } = await newVolume(zone);
    await handlers({ backendWaitMs: 10_000 }).createVolume(cast, `test-${id}`);
    const volume = await getVolumeElevated(handle.db, id);
    expect(volume?.status).toBe("error");
    expect(volume?.statusDetail).toContain(`${disabled}#file: disabled: maintenance`);
    expect(volume?.statusDetail).toContain(`${full}#file: has a total capacity of 0 GiB`);
  });

  it("weighs with the multipliers it is given: spread by default, stacked with a negative capacity multiplier", async () => {
    const zone = uniqueName("az-");
    const roomy = `${uniqueName("vol")}@file`;
    const tight = `${uniqueName("vol")}@file`;
    await report(roomy, zone, "up", 500);
    await report(tight, zone, "up", 50);
    const spread = await newVolume(zone);
    await handlers().createVolume(spread.cast, `test-${spread.id}`);
    expect((await getVolumeElevated(handle.db, spread.id))?.host).toBe(roomy);
    const stacked = await newVolume(zone);
    await handlers({ weigherMultipliers: { capacity: -1, allocatedCapacity: 0 } }).createVolume(
      stacked.cast,
      `test-${stacked.id}`,
    );
    expect((await getVolumeElevated(handle.db, stacked.id))?.host).toBe(tight);
  });
});

describe("createSnapshot on a backend that cannot take it", () => {
  it("fails the snapshot, its operation and notifies in one transaction, the message id from the operation", async () => {
    const volumeHost = `${uniqueName("gone")}@file`;
    const volumeId = randomUUID();
    const snapshotId = randomUUID();
    const operationId = randomUUID();
    await insertVolume(handle.db, {
      id: volumeId,
      projectId: "p1",
      userId: "u1",
      status: "available",
      sizeGb: 1,
      availabilityZone: "nova",
      host: volumeHost,
    });
    await insertSnapshot(handle.db, {
      id: snapshotId,
      projectId: "p1",
      userId: "u1",
      volumeId,
      status: "creating",
      volumeSizeGb: 1,
    });
    await insertOperation(handle.db, {
      id: operationId,
      kind: "create_snapshot",
      resourceId: snapshotId,
      projectId: "p1",
      timeoutSeconds: 60,
    });
    const cast = SchedulerCreateSnapshot.fromPartial({
      operationId,
      snapshotId,
      volumeId,
      volumeSizeGb: 1,
      volumeHost,
    });
    // A re-delivered cast finds the snapshot in error already and writes nothing more.
    await handlers().createSnapshot(cast, `test-${snapshotId}`);
    await handlers().createSnapshot(cast, `test-${snapshotId}-again`);
    expect(await getSnapshotElevated(handle.db, snapshotId)).toMatchObject({
      status: "error",
      statusReason: "scheduling failed: the volume's backend cannot take a snapshot now",
      statusDetail: `scheduling failed: backend ${volumeHost} is unknown`,
    });
    const rows = await handle.db.execute<{ state: string; msg_id: string | null }>(sql`
      select o.state, (select string_agg(msg_id, ',') from outbox
                        where subject = ${bus.subjects.notification("ERROR", "scheduler.create_snapshot")}) as msg_id
        from operations o where o.id = ${operationId}`);
    expect(rows).toEqual([
      { state: "failed", msg_id: derivedId("notification", operationId, "scheduler.create_snapshot") },
    ]);
  });
});

describe("createVolume by the volume's type and hints", () => {
  const typed = async (extraSpecs: Record<string, string>) => {
    const type = await insertVolumeType(handle.db, { id: randomUUID(), name: uniqueName("type-"), extraSpecs });
    return type.id;
  };

  it("places a volume only on a pool whose capabilities its type's extra specs accept", async () => {
    const zone = uniqueName("az-");
    const thin = `${uniqueName("thin")}@file`;
    const thick = `${uniqueName("thick")}@file`;
    await report(thin, zone, "up", 10, true); // 200 GiB virtual (ratio 20)
    await report(thick, zone, "up", 500, false); // roomier: the weigher alone picks it
    const untyped = await newVolume(zone);
    await handlers().createVolume(untyped.cast, `test-${untyped.id}`);
    expect((await getVolumeElevated(handle.db, untyped.id))?.host).toBe(thick);
    const volumeTypeId = await typed({ thin_provisioning_support: "<is> True" });
    const wantsThin = await newVolume(zone, { volumeTypeId });
    await handlers().createVolume(wantsThin.cast, `test-${wantsThin.id}`);
    expect((await getVolumeElevated(handle.db, wantsThin.id))?.host).toBe(thin);
  });

  it("fails a type no pool satisfies, the detail naming each pool and the spec it missed", async () => {
    const zone = uniqueName("az-");
    const host = `${uniqueName("vol")}@file`;
    await report(host, zone, "up", 100);
    const volumeTypeId = await typed({ "capabilities:storage_protocol": "s== iSCSI" });
    const { id, cast } = await newVolume(zone, { volumeTypeId });
    await handlers().createVolume(cast, `test-${id}`);
    const volume = await getVolumeElevated(handle.db, id);
    expect(volume).toMatchObject({ status: "error", statusReason: "no valid backend was found" });
    expect(volume?.statusDetail).toContain(`${host}#file:`);
    expect(volume?.statusDetail).toContain("storage_protocol");
  });

  it("follows same_host and different_host hints naming the project's volumes", async () => {
    const zone = uniqueName("az-");
    const small = `${uniqueName("small")}@file`;
    const big = `${uniqueName("big")}@file`;
    await report(small, zone, "up", 50);
    await report(big, zone, "up", 500);
    const anchor = await newVolume(zone);
    await handlers().createVolume(anchor.cast, `test-${anchor.id}`);
    expect((await getVolumeElevated(handle.db, anchor.id))?.host).toBe(big);
    const away = await newVolume(zone, { schedulerHints: { sameHost: [], differentHost: [anchor.id] } });
    await handlers().createVolume(away.cast, `test-${away.id}`);
    expect((await getVolumeElevated(handle.db, away.id))?.host).toBe(small);
    const beside = await newVolume(zone, { schedulerHints: { sameHost: [away.id], differentHost: [] } });
    await handlers().createVolume(beside.cast, `test-${beside.id}`);
    expect((await getVolumeElevated(handle.db, beside.id))?.host).toBe(small);
  });
});

describe("createVolume handed back by a backend that failed it (Cinder's RetryFilter)", () => {
  /** The volume's operation, as the api records it with the create. */
  const withOperation = async (v: { id: string; cast: SchedulerCreateVolume }) => {
    await insertOperation(handle.db, {
      id: v.cast.operationId,
      kind: "create_volume",
      resourceId: v.id,
      projectId: "p1",
      timeoutSeconds: 60,
    });
    return v;
  };
  const errorEvents = (operationId: string) =>
    handle.db.execute<{ subject: string; msg_id: string }>(sql`
      select subject, msg_id from outbox
       where msg_id in (${derivedId("notification", operationId, "scheduler.create_volume")},
                        ${derivedId("notification", operationId, "volume.create.error")})
       order by id`);

  it("places the volume on a backend it has not tried, the roomier failed one excluded", async () => {
    const zone = uniqueName("az-");
    const failing = `${uniqueName("failing")}@file`;
    const other = `${uniqueName("other")}@file`;
    await report(failing, zone, "up", 500);
    await report(other, zone, "up", 50);
    const { id, cast } = await withOperation(await newVolume(zone));
    cast.failedPlacements = [{ host: failing, error: "injected failure" }];
    await handlers().createVolume(cast, `test-${id}`);
    expect(await getVolumeElevated(handle.db, id)).toMatchObject({ status: "creating", host: other });
  });

  it("fails with no valid backend when no other backend fits, the detail naming the attempt and each pool", async () => {
    const zone = uniqueName("az-");
    const failing = `${uniqueName("failing")}@file`;
    const full = `${uniqueName("full")}@file`;
    await report(failing, zone, "up", 500);
    await report(full, zone, "up", 0);
    const v = await withOperation(await newVolume(zone));
    v.cast.failedPlacements = [{ host: failing, error: "cannot create volume-x.img: EIO" }];
    await handlers().createVolume(v.cast, `test-${v.id}`);
    const volume = await getVolumeElevated(handle.db, v.id);
    expect(volume).toMatchObject({ status: "error", statusReason: "no valid backend was found" });
    expect(volume?.statusDetail).toContain(`attempt 1 on ${failing} failed: cannot create volume-x.img: EIO`);
    expect(volume?.statusDetail).toContain(`${failing}#file: already tried for this volume`);
    expect(volume?.statusDetail).toContain(`${full}#file: has a total capacity of 0 GiB`);
    // The create a backend started ends with its .error (and the scheduler's own), once.
    expect((await errorEvents(v.cast.operationId)).map((r) => r.subject)).toEqual([
      bus.subjects.notification("ERROR", "scheduler.create_volume"),
      bus.subjects.notification("ERROR", "volume.create.error"),
    ]);
    const [op] = await handle.db.execute<{ state: string }>(
      sql`select state from operations where id = ${v.cast.operationId}`,
    );
    expect(op?.state).toBe("failed");
  });

  it("stops after the max attempts even while other backends would fit", async () => {
    const zone = uniqueName("az-");
    const hosts = [1, 2, 3].map(() => `${uniqueName("vol")}@file`);
    for (const h of hosts) await report(h, zone, "up", 100);
    const v = await withOperation(await newVolume(zone));
    v.cast.failedPlacements = hosts.slice(0, 2).map((host) => ({ host, error: "EIO" }));
    await handlers({ maxAttempts: 2 }).createVolume(v.cast, `test-${v.id}`);
    const volume = await getVolumeElevated(handle.db, v.id);
    expect(volume).toMatchObject({ status: "error", statusReason: "no valid backend was found", host: null });
    expect(volume?.statusDetail).toBe(
      `no valid backend was found: attempt 1 on ${hosts[0]} failed: EIO; attempt 2 on ${hosts[1]} failed: EIO; ` +
        `exceeded max scheduling attempts 2 for volume ${v.id}`,
    );
    // The third backend, untried, would have fitted: with one more attempt allowed it gets the volume.
    const again = await withOperation(await newVolume(zone));
    again.cast.failedPlacements = hosts.slice(0, 2).map((host) => ({ host, error: "EIO" }));
    await handlers({ maxAttempts: 3 }).createVolume(again.cast, `test-${again.id}`);
    expect((await getVolumeElevated(handle.db, again.id))?.host).toBe(hosts[2]);
  });
});
