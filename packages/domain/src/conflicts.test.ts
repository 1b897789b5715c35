import { randomUUID } from "node:crypto";
import {
  createDb,
  type Db,
  type DbHandle,
  type Executor,
  insertAttachment,
  insertSnapshot,
  insertVolume,
  lockInstance,
  reportService,
  runMigrations,
  transaction,
  updateSnapshotStatus,
  updateVolumeStatus,
} from "@cinderblock/db";
import { createTestDatabase, type TestDatabase, uniqueName } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RequestContext } from "./context.js";
import { CinderblockError } from "./errors.js";
import { createPageTokens } from "./pages.js";
import type { Dispatcher, HostConnection, VolumeHostCalls } from "./ports.js";
import { type ApiUseCases, createApiUseCases } from "./use-cases.js";
import type { CreateVolumeInput } from "./validation.js";

// Integration: operations that must not overlap on one volume or snapshot (the state machine's
// conflicts), against the real PostgreSQL. Where the defect was a race, the test holds the other
// operation's lock open exactly where the race was and lets it go once the call under test waits.

let database: TestDatabase;
let handle: DbHandle;
let db: Db;
let api: ApiUseCases;

/** Casts go nowhere here: these tests are about what the api accepts and writes. */
const dispatcher: Dispatcher = {
  createSnapshot: async () => {},
  createSnapshotMessage: () => ({ subject: "test.cast", msgId: randomUUID(), payload: new Uint8Array(0) }),
  createVolume: async () => {},
  deleteSnapshot: async () => {},
  deleteVolume: async () => {},
  extendVolume: async () => {},
  revertToSnapshot: async () => {},
  retypeVolume: async () => {},
};

/** A volume host that exports any volume after a moment (long enough for attaches to overlap). */
const hosts: VolumeHostCalls = {
  initializeConnection: async (): Promise<HostConnection> => {
    await new Promise((r) => setTimeout(r, 20));
    return { driverVolumeType: "local", data: { device_path: "/dev/null" } };
  },
  terminateConnection: async () => {},
  listManageableSnapshots: () => Promise.reject(new Error("not in this test")),
  manageSnapshot: () => Promise.reject(new Error("not in this test")),
  unmanageSnapshot: () => Promise.reject(new Error("not in this test")),
};

function ctx(): RequestContext {
  return { requestId: "req-test", projectId: uniqueName("p-"), userId: "alice", roles: [] };
}

const volumeInput: CreateVolumeInput = {
  name: "vol",
  description: "",
  sizeGb: 2,
  volumeType: "",
  availabilityZone: "",
  bootable: false,
  imageMetadata: {},
  encryptionKeyId: "",
  metadata: {},
  clientRequestId: "",
  snapshotId: "",
  sourceVolumeId: "",
  multiattach: false,
  sameHost: [],
  differentHost: [],
};

async function availableVolume(c: RequestContext, patch: Partial<CreateVolumeInput> = {}): Promise<string> {
  const volume = await api.createVolume(c, { ...volumeInput, ...patch });
  await updateVolumeStatus(db, volume.id, ["creating"], "available", { host: "h1@file" });
  return volume.id;
}

async function availableSnapshot(c: RequestContext, volumeId: string): Promise<string> {
  const snapshot = await api.createSnapshot(c, {
    volumeId,
    name: "snap",
    description: "",
    force: false,
    metadata: {},
    groupSnapshotId: "",
    clientRequestId: "",
  });
  await updateSnapshotStatus(db, snapshot.id, ["creating"], "available");
  return snapshot.id;
}

/** What a call ended with: the value, or the CinderblockError it was refused with. */
async function settle<T>(promise: Promise<T>): Promise<{ ok: T } | { refused: CinderblockError }> {
  try {
    return { ok: await promise };
  } catch (error) {
    if (error instanceof CinderblockError) return { refused: error };
    throw error;
  }
}

/** Resolves once some session of this database waits for a row lock (the call under test got there). */
async function someoneWaitsForALock(): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const [row] = await db.execute<{ n: number }>(sql`
      select count(*)::int as n from pg_stat_activity
       where datname = current_database() and wait_event_type = 'Lock'`);
    if (Number(row?.n) > 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("no session ever waited for a lock");
}

/**
 * Runs `inFlight` in a transaction that stays open until `call` waits for a lock it holds (or
 * `call` ends without waiting), then commits it: `call` runs exactly in the window a concurrent
 * operation leaves open. Returns how `call` ended.
 */
async function whileInFlight<T>(
  inFlight: (tx: Executor) => Promise<void>,
  call: () => Promise<T>,
): Promise<{ ok: T } | { refused: CinderblockError }> {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const ready = new Promise<void>((r) => (started = r));
  const other = transaction(db, async (tx) => {
    await inFlight(tx);
    started();
    await held;
  });
  await ready;
  const outcome = settle(call());
  await Promise.race([someoneWaitsForALock(), outcome]);
  release();
  await other;
  return outcome;
}

/** A snapshot create in flight, as createSnapshotAtOnce leaves it: the volume share-locked, the row written. */
function snapshotCreateInFlight(c: RequestContext, volumeId: string, snapshotId: string) {
  return async (tx: Executor) => {
    await tx.execute(sql`select id from volumes where id = ${volumeId} for share`);
    await insertSnapshot(tx, {
      id: snapshotId,
      projectId: c.projectId,
      userId: c.userId,
      volumeId,
      status: "creating",
      volumeSizeGb: 2,
    });
  };
}

beforeAll(async () => {
  database = await createTestDatabase(runMigrations);
  handle = createDb({ url: database.url, max: 20 });
  db = handle.db;
  await reportService(db, {
    host: "h1@file",
    hostName: "h1",
    backend: "file",
    availabilityZone: "nova",
    capabilities: {},
    grpcAddress: "127.0.0.1:1",
  });
  api = createApiUseCases({
    db,
    scheduler: dispatcher,
    notifications: { announce: async () => {} },
    changes: { publish() {}, subscribe: () => ({ close() {}, async *[Symbol.asyncIterator]() {} }) },
    events: { subscribe: async () => ({ close() {}, async *[Symbol.asyncIterator]() {} }) },
    hosts,
    compute: { quiesce: async () => false, unquiesce: async () => {} },
    snapshotInstanceTimeoutSeconds: 60,
    quota: { volumes: 100, snapshots: 100, gigabytes: 1000 },
    defaultAvailabilityZone: "nova",
    defaultVolumeType: "__DEFAULT__",
    operationTimeoutSeconds: 120,
    pageTokens: createPageTokens("a test secret of at least 32 characters"),
    serviceDownTimeSeconds: 600,
  });
});

afterAll(async () => {
  await handle?.close();
  await database?.drop();
});

describe("conflicting operations", () => {
  it("a cascade delete racing a snapshot create: the snapshot is cascaded or the delete refused, never left behind", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    const snapshotId = randomUUID();
    const outcome = await whileInFlight(snapshotCreateInFlight(c, volumeId, snapshotId), () =>
      api.deleteVolume(c, volumeId, true),
    );
    expect(outcome).toMatchObject({ refused: { code: "FAILED_PRECONDITION" } });
    if (!("refused" in outcome)) return;
    expect(outcome.refused.message).toBe(
      `volume ${volumeId} cannot be deleted now: its snapshot ${snapshotId} is being created`,
    );
    const [row] = await db.execute<{ volume: string; snapshot: string }>(sql`
      select (select status from volumes where id = ${volumeId}) as volume,
             (select status from snapshots where id = ${snapshotId}) as snapshot`);
    expect(row).toEqual({ volume: "available", snapshot: "creating" });
  });

  it("every snapshot a cascade takes is deleting under an operation of its own", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    const snapshots = [await availableSnapshot(c, volumeId), await availableSnapshot(c, volumeId)];
    await api.deleteVolume(c, volumeId, true);
    const rows = await db.execute<{ id: string; status: string; ops: number }>(sql`
      select s.id, s.status,
             (select count(*)::int from operations o
               where o.resource_id = s.id and o.kind = 'delete_snapshot' and o.state = 'pending') as ops
        from snapshots s where s.volume_id = ${volumeId} order by s.id`);
    expect(rows).toEqual([...snapshots].sort().map((id) => ({ id, status: "deleting", ops: 1 })));
  });

  it("a snapshot delete waits for a clone being recorded, then refuses while the clone is creating", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    const snapshotId = await availableSnapshot(c, volumeId);
    const cloneId = randomUUID();
    // A create-from-snapshot in flight: it share-locked the snapshot and wrote its volume row.
    const outcome = await whileInFlight(
      async (tx) => {
        await tx.execute(sql`select id from snapshots where id = ${snapshotId} for share`);
        await insertVolume(tx, {
          id: cloneId,
          projectId: c.projectId,
          userId: c.userId,
          status: "creating",
          sizeGb: 2,
          availabilityZone: "nova",
          host: "h1@file",
          snapshotId,
        });
      },
      () => api.deleteSnapshot(c, snapshotId, false),
    );
    expect(outcome).toMatchObject({
      refused: {
        code: "FAILED_PRECONDITION",
        message: `snapshot ${snapshotId} cannot be deleted now: volume ${cloneId} is being created from snapshot ${snapshotId}`,
      },
    });
    // And so is a cascade that would take that snapshot.
    await expect(api.deleteVolume(c, volumeId, true)).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
      message: `volume ${volumeId} cannot be deleted now: volume ${cloneId} is being created from snapshot ${snapshotId}`,
    });
    // Once the clone is made, the snapshot may go.
    await updateVolumeStatus(db, cloneId, ["creating"], "available");
    expect(await api.deleteSnapshot(c, snapshotId, false)).toMatchObject({ status: "deleting" });
  });

  it("a volume delete waits for a clone of it being recorded, then delete and extend refuse while it is creating", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    const cloneId = randomUUID();
    // A clone of the volume in flight: it share-locked the source and wrote its volume row.
    const outcome = await whileInFlight(
      async (tx) => {
        await tx.execute(sql`select id from volumes where id = ${volumeId} for share`);
        await insertVolume(tx, {
          id: cloneId,
          projectId: c.projectId,
          userId: c.userId,
          status: "creating",
          sizeGb: 2,
          availabilityZone: "nova",
          host: "h1@file",
          sourceVolid: volumeId,
        });
      },
      () => api.deleteVolume(c, volumeId, false),
    );
    expect(outcome).toMatchObject({
      refused: {
        code: "FAILED_PRECONDITION",
        message: `volume ${volumeId} cannot be deleted now: volume ${cloneId} is being cloned from it`,
      },
    });
    await expect(api.extendVolume(c, volumeId, 4)).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
      message: `volume ${volumeId} cannot be extended now: volume ${cloneId} is being cloned from it`,
    });
    // Once the clone is made, the source may go.
    await updateVolumeStatus(db, cloneId, ["creating"], "available");
    expect(await api.deleteVolume(c, volumeId, false)).toMatchObject({ status: "deleting" });
  });

  it("an extend is refused while a snapshot of the volume is being created", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    const snapshot = await api.createSnapshot(c, {
      volumeId,
      name: "snap",
      description: "",
      force: false,
      metadata: {},
      groupSnapshotId: "",
      clientRequestId: "",
    });
    await expect(api.extendVolume(c, volumeId, 5)).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
      message: `volume ${volumeId} cannot be extended now: its snapshot ${snapshot.id} is being created`,
    });
    const [row] = await db.execute<{ status: string; size_gb: number }>(
      sql`select status, size_gb from volumes where id = ${volumeId}`,
    );
    expect(row).toEqual({ status: "available", size_gb: 2 });
    await updateSnapshotStatus(db, snapshot.id, ["creating"], "available");
    expect(await api.extendVolume(c, volumeId, 5)).toMatchObject({ status: "extending" });
  });

  it("an extend waits for a snapshot create in flight and then refuses", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    const snapshotId = randomUUID();
    const outcome = await whileInFlight(snapshotCreateInFlight(c, volumeId, snapshotId), () =>
      api.extendVolume(c, volumeId, 4),
    );
    expect(outcome).toMatchObject({ refused: { code: "FAILED_PRECONDITION" } });
  });

  it("eight concurrent attaches of a volume that is not multiattach: one attachment, seven refusals", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        settle(api.attachVolume(c, { volumeId, instanceId: `vm-${i}`, mountpoint: "/dev/vdb", connector: {} })),
      ),
    );
    expect(outcomes.filter((o) => "ok" in o)).toHaveLength(1);
    const refused = outcomes.flatMap((o) => ("refused" in o ? [o.refused] : []));
    expect(refused).toHaveLength(7);
    for (const r of refused) expect(r.code).toBe("FAILED_PRECONDITION");
    const [row] = await db.execute<{ attachments: number; status: string }>(sql`
      select (select count(*)::int from volume_attachments where volume_id = ${volumeId}) as attachments,
             (select status from volumes where id = ${volumeId}) as status`);
    expect(row).toEqual({ attachments: 1, status: "in-use" });
  });

  it("another project attaching an instance whose attach is in flight waits for it and then refuses", async () => {
    const a = ctx();
    const b = ctx();
    const instanceId = randomUUID();
    const volumeA = await availableVolume(a);
    const volumeB = await availableVolume(b);
    const outcome = await whileInFlight(
      async (tx) => {
        // A's attach as attachVolume leaves it before the host answers: instance locked, row written.
        await lockInstance(tx, instanceId);
        await insertAttachment(tx, {
          id: randomUUID(),
          volumeId: volumeA,
          projectId: a.projectId,
          instanceId,
          mountpoint: "/dev/vda",
          connector: {},
        });
      },
      () => api.attachVolume(b, { volumeId: volumeB, instanceId, mountpoint: "/dev/vdb", connector: {} }),
    );
    expect(outcome).toMatchObject({
      refused: {
        code: "FAILED_PRECONDITION",
        message: `instance ${instanceId} has volumes of another project attached; only an administrator can attach to it`,
      },
    });
    const [row] = await db.execute<{ status: string; attachments: number }>(sql`
      select status, (select count(*)::int from volume_attachments where volume_id = ${volumeB}) as attachments
        from volumes where id = ${volumeB}`);
    expect(row).toEqual({ status: "available", attachments: 0 });
  });

  it("eight projects attaching their own volumes to one instance at once: one attachment, seven refusals", async () => {
    const instanceId = randomUUID();
    const callers = Array.from({ length: 8 }, () => ctx());
    const volumeIds = await Promise.all(callers.map((c) => availableVolume(c)));
    const outcomes = await Promise.all(
      callers.map((c, i) =>
        settle(
          api.attachVolume(c, { volumeId: volumeIds[i] ?? "", instanceId, mountpoint: "/dev/vdb", connector: {} }),
        ),
      ),
    );
    expect(outcomes.filter((o) => "ok" in o)).toHaveLength(1);
    for (const o of outcomes) if ("refused" in o) expect(o.refused.code).toBe("FAILED_PRECONDITION");
    const [row] = await db.execute<{ projects: number }>(sql`
      select count(distinct project_id)::int as projects from volume_attachments where instance_id = ${instanceId}`);
    expect(row).toEqual({ projects: 1 });
  });

  it("an administrator may attach a volume to an instance another project's volumes are attached to", async () => {
    const a = ctx();
    const admin = { ...ctx(), roles: ["admin"], isAdmin: true };
    const instanceId = randomUUID();
    await api.attachVolume(a, {
      volumeId: await availableVolume(a),
      instanceId,
      mountpoint: "/dev/vda",
      connector: {},
    });
    const { attachment } = await api.attachVolume(admin, {
      volumeId: await availableVolume(admin),
      instanceId,
      mountpoint: "/dev/vdb",
      connector: {},
    });
    expect(attachment).toMatchObject({ instanceId, projectId: admin.projectId, attachStatus: "attached" });
  });

  it("an administrator's force delete: not while an operation is in flight or attached, from error_extending it goes", async () => {
    const c = ctx();
    const admin = { ...c, roles: ["admin"], isAdmin: true };
    const volume = await api.createVolume(c, volumeInput);
    await updateVolumeStatus(db, volume.id, ["creating"], "creating", { host: "h1@file" });
    await expect(api.deleteVolume(admin, volume.id, false, true)).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
      message: `volume ${volume.id} has an operation in flight (create_volume); wait for it to finish or for the reconciler to fail it`,
    });
    // The create ends; the volume is left in a status a plain delete refuses.
    await db.execute(sql`update operations set state = 'done' where resource_id = ${volume.id}`);
    await updateVolumeStatus(db, volume.id, ["creating"], "error_extending");
    await expect(api.deleteVolume(c, volume.id, false)).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
    const attachmentId = randomUUID();
    await insertAttachment(db, {
      id: attachmentId,
      volumeId: volume.id,
      projectId: c.projectId,
      instanceId: "vm-1",
      mountpoint: "/dev/vdb",
      connector: {},
    });
    await expect(api.deleteVolume(admin, volume.id, false, true)).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
      message: `volume ${volume.id} has 1 attachment(s); detach it before deleting it`,
    });
    await db.execute(sql`delete from volume_attachments where id = ${attachmentId}`);
    expect(await api.deleteVolume(admin, volume.id, false, true)).toMatchObject({ status: "deleting" });
    const [op] = await db.execute<{ n: number }>(sql`
      select count(*)::int as n from operations where resource_id = ${volume.id} and kind = 'delete_volume' and state = 'pending'`);
    expect(op).toEqual({ n: 1 });
    // Deleting already: a second force delete is refused, so the host gets one delete.
    await expect(api.deleteVolume(admin, volume.id, false, true)).rejects.toMatchObject({
      code: "FAILED_PRECONDITION",
    });
  });

  it("finds attachments of the project's volumes, or of every project's when asked (all_tenants)", async () => {
    const a = ctx();
    const b = ctx();
    const instanceId = randomUUID();
    const mine = await api.attachVolume(a, {
      volumeId: await availableVolume(a),
      instanceId,
      mountpoint: "/dev/vda",
      connector: { host: "compute-1" },
    });
    const bVolume = await availableVolume(b);
    const theirs = await api.attachVolume(b, {
      volumeId: bVolume,
      instanceId: randomUUID(),
      mountpoint: "/dev/vdb",
      connector: {},
    });
    expect(await api.findAttachments(a, { allProjects: false, instanceId })).toEqual([
      expect.objectContaining({ id: mine.attachment.id, attachStatus: "attached", connector: { host: "compute-1" } }),
    ]);
    expect(await api.findAttachments(a, { allProjects: false, id: theirs.attachment.id })).toEqual([]);
    expect(await api.findAttachments(a, { allProjects: true, id: theirs.attachment.id })).toEqual([
      expect.objectContaining({ id: theirs.attachment.id, volumeId: bVolume }),
    ]);
    await expect(api.findAttachments(a, { allProjects: false, attachStatus: "reserved" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: "status: must be one of attaching, attached",
    });
    await expect(api.listAttachments(a, bVolume)).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(await api.listAttachments(a, bVolume, { allProjects: true })).toEqual([
      expect.objectContaining({ id: theirs.attachment.id }),
    ]);
  });
});
