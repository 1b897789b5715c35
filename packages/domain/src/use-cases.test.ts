import { randomUUID } from "node:crypto";
import {
  createDb,
  createSnapshotAtOnce,
  type Db,
  type DbHandle,
  enqueueOutbox,
  getQuotaUsage,
  getVolume,
  reportService,
  runMigrations,
  setQuotaLimit,
  setServiceFlags,
  updateSnapshotStatus,
  updateVolumeStatus,
} from "@cinderblock/db";
import {
  SchedulerCreateSnapshot,
  SchedulerCreateVolume,
  SchedulerRetypeVolume,
  VolumeDeleteSnapshot,
  VolumeDeleteVolume,
  VolumeExtendVolume,
  VolumeRevertToSnapshot,
} from "@cinderblock/proto";
import { createTestDatabase, rejectionOf, type TestDatabase, uniqueName } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RequestContext } from "./context.js";
import { CinderblockError } from "./errors.js";
import type { ListInput } from "./pages.js";
import { createPageTokens } from "./pages.js";
import type { Announcer, ChangeFeed, ComputeAgents, Dispatcher, EventFeed, VolumeHostCalls } from "./ports.js";
import { type ApiUseCases, createApiUseCases } from "./use-cases.js";
import type { CreateVolumeInput } from "./validation.js";

// Integration: the use cases against the real PostgreSQL, with the outbox written for real.

let database: TestDatabase;
let handle: DbHandle;
let db: Db;
let api: ApiUseCases;
const wake = new Map<string, () => void>();

const dispatcher: Dispatcher = {
  async createSnapshot(tx, cast, attempt) {
    await enqueueOutbox(tx, this.createSnapshotMessage(cast, attempt));
  },
  createSnapshotMessage(cast, attempt) {
    return {
      subject: "test.scheduler.create_snapshot",
      msgId: `${cast.operationId}:${attempt}`,
      payload: SchedulerCreateSnapshot.encode(cast).finish(),
    };
  },
  async createVolume(tx, cast, attempt) {
    await enqueueOutbox(tx, {
      subject: "test.scheduler.create_volume",
      msgId: `${cast.operationId}:${attempt}`,
      payload: SchedulerCreateVolume.encode({ failedPlacements: [], ...cast }).finish(),
    });
  },
  async deleteSnapshot(tx, host, cast, attempt) {
    await enqueueOutbox(tx, {
      subject: `test.volume.${host}.delete_snapshot`,
      msgId: `${cast.operationId}:${attempt}`,
      payload: VolumeDeleteSnapshot.encode(cast).finish(),
    });
  },
  async extendVolume(tx, host, cast, attempt) {
    await enqueueOutbox(tx, {
      subject: `test.volume.${host}.extend_volume`,
      msgId: `${cast.operationId}:${attempt}`,
      payload: VolumeExtendVolume.encode(cast).finish(),
    });
  },
  async revertToSnapshot(tx, host, cast, attempt) {
    await enqueueOutbox(tx, {
      subject: `test.volume.${host}.revert_to_snapshot`,
      msgId: `${cast.operationId}:${attempt}`,
      payload: VolumeRevertToSnapshot.encode(cast).finish(),
    });
  },
  async deleteVolume(tx, host, cast, attempt) {
    await enqueueOutbox(tx, {
      subject: `test.volume.${host}.delete_volume`,
      msgId: `${cast.operationId}:${attempt}`,
      payload: VolumeDeleteVolume.encode(cast).finish(),
    });
  },
  async retypeVolume(tx, cast, attempt) {
    await enqueueOutbox(tx, {
      subject: "test.scheduler.retype_volume",
      msgId: `${cast.operationId}:${attempt}`,
      payload: SchedulerRetypeVolume.encode(cast).finish(),
    });
  },
};

/** No volume host or compute agent runs in these tests: calls to them fail. */
const hosts: VolumeHostCalls = {
  initializeConnection: () => Promise.reject(new Error("no volume host in this test")),
  terminateConnection: () => Promise.reject(new Error("no volume host in this test")),
  listManageableSnapshots: () => Promise.reject(new Error("no volume host in this test")),
  manageSnapshot: () => Promise.reject(new Error("no volume host in this test")),
  unmanageSnapshot: () => Promise.reject(new Error("no volume host in this test")),
};
const compute: ComputeAgents = { quiesce: async () => false, unquiesce: async () => {} };

/** The api's own notifications: the end-to-end tests check them on the real outbox and NATS. */
const notifications: Announcer = { announce: async () => {} };

/** No notifications flow in these tests (no volume host runs). */
const events: EventFeed = {
  subscribe: async () => ({ close() {}, async *[Symbol.asyncIterator]() {} }),
};

/** A change feed the test drives by hand: `wake.get(id)()` signals one change. */
const changes: ChangeFeed = {
  publish: (_kind, id) => wake.get(id)?.(),
  subscribe(_kind, id) {
    let closed = false;
    let resolve: (() => void) | undefined;
    wake.set(id, () => resolve?.());
    return {
      close: () => {
        closed = true;
        resolve?.();
      },
      async *[Symbol.asyncIterator]() {
        while (!closed) {
          await new Promise<void>((r) => (resolve = r));
          if (!closed) yield;
        }
      },
    };
  },
};

function ctx(projectId = uniqueName("p-")): RequestContext {
  return { requestId: "req-test", projectId, userId: "alice", roles: [] };
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

/** A volume made through the use case, then placed on a backend and made available. */
async function availableVolume(c: RequestContext, sizeGb = 2): Promise<string> {
  const volume = await api.createVolume(c, { ...volumeInput, sizeGb });
  await updateVolumeStatus(db, volume.id, ["creating"], "available", { host: "h1@file" });
  return volume.id;
}

function snapshotOf(volumeId: string, patch: Partial<{ force: boolean; name: string; groupSnapshotId: string }> = {}) {
  return {
    volumeId,
    name: "snap",
    description: "",
    force: false,
    metadata: {},
    groupSnapshotId: "",
    clientRequestId: "",
    ...patch,
  };
}

/** A list request with defaults (newest first, 100 a page, no filters). */
function list(patch: Partial<ListInput & { volumeId: string }> = {}): ListInput & { volumeId: string } {
  return {
    pageSize: 0,
    pageToken: "",
    name: "",
    metadata: {},
    sortKey: "",
    sortDir: "",
    allProjects: false,
    volumeId: "",
    ...patch,
  };
}

async function counts(projectId: string) {
  const [row] = await db.execute<{ snapshots: number; outbox: number }>(sql`
    select (select count(*)::int from snapshots where project_id = ${projectId}) as snapshots,
           (select count(*)::int from outbox) as outbox`);
  return { snapshots: Number(row?.snapshots), outbox: Number(row?.outbox), usage: await getQuotaUsage(db, projectId) };
}

const refusal = (promise: Promise<unknown>) => rejectionOf(promise, CinderblockError);

beforeAll(async () => {
  database = await createTestDatabase(runMigrations);
  handle = createDb({ url: database.url, max: 30 });
  db = handle.db;
  await reportService(db, {
    host: "h1@file",
    hostName: "h1",
    backend: "file",
    availabilityZone: "nova",
    capabilities: {},
  });
  api = createApiUseCases({
    db,
    scheduler: dispatcher,
    notifications,
    changes,
    events,
    hosts,
    compute,
    snapshotInstanceTimeoutSeconds: 60,
    quota: { volumes: 100, snapshots: 10, gigabytes: 1000 },
    defaultAvailabilityZone: "nova",
    defaultVolumeType: "__DEFAULT__",
    operationTimeoutSeconds: 120,
    pageTokens: createPageTokens("a test secret of at least 32 characters"),
    serviceDownTimeSeconds: 60,
  });
});

afterAll(async () => {
  await handle?.close();
  await database?.drop();
});

describe("createVolume", () => {
  it("records the volume, its operation and its cast in one transaction, and counts quota", async () => {
    const c = ctx();
    const volume = await api.createVolume(c, { ...volumeInput, sizeGb: 3, availabilityZone: "" });
    expect(volume).toMatchObject({ status: "creating", sizeGb: 3, availabilityZone: "nova", host: null });
    const [op] = await db.execute<{ kind: string; state: string }>(
      sql`select kind, state from operations where resource_id = ${volume.id}`,
    );
    expect(op).toEqual({ kind: "create_volume", state: "pending" });
    const casts = await db.execute<{ payload: Uint8Array }>(
      sql`select payload from outbox where subject = 'test.scheduler.create_volume'`,
    );
    const decoded = casts.map((r) => SchedulerCreateVolume.decode(new Uint8Array(r.payload)));
    expect(decoded.find((d) => d.volumeId === volume.id)).toMatchObject({ sizeGb: 3, availabilityZone: "nova" });
    expect(await getQuotaUsage(db, c.projectId)).toEqual({
      volumes: 1,
      snapshots: 0,
      gigabytes: 3,
      // Every volume has a type (__DEFAULT__ when none is asked for), counted per type too.
      volumes___DEFAULT__: 1,
      snapshots___DEFAULT__: 0,
      gigabytes___DEFAULT__: 3,
    });
  });
});

describe("createVolume: a clone of a volume (source_volume_id)", () => {
  it("inherits the source's backend, type, zone, bootable flag, image metadata and key, and counts quota", async () => {
    const c = ctx();
    const source = await api.createVolume(c, {
      ...volumeInput,
      sizeGb: 3,
      bootable: true,
      imageMetadata: { image_id: "img-1" },
      encryptionKeyId: "0b5c1c8e-3c4f-4d5e-8f60-718293a4b5c6",
    });
    await updateVolumeStatus(db, source.id, ["creating"], "available", { host: "h1@file" });

    const clone = await api.createVolume(c, { ...volumeInput, sizeGb: 0, sourceVolumeId: source.id.toUpperCase() });

    expect(clone).toMatchObject({
      status: "creating",
      sizeGb: 3,
      host: "h1@file",
      sourceVolid: source.id,
      snapshotId: null,
      availabilityZone: source.availabilityZone,
      volumeType: source.volumeType,
      volumeTypeId: source.volumeTypeId,
      bootable: true,
      imageMetadata: { image_id: "img-1" },
      encryptionKeyId: "0b5c1c8e-3c4f-4d5e-8f60-718293a4b5c6",
    });
    expect(await getQuotaUsage(db, c.projectId)).toMatchObject({ volumes: 2, gigabytes: 6 });
    // Larger than its source is fine (the rest reads as zeros).
    const larger = await api.createVolume(c, { ...volumeInput, sizeGb: 5, sourceVolumeId: source.id });
    expect(larger).toMatchObject({ sizeGb: 5, sourceVolid: source.id, host: "h1@file" });
  });

  it("clones an in-use volume (as Cinder does)", async () => {
    const c = ctx();
    const sourceId = await availableVolume(c);
    await updateVolumeStatus(db, sourceId, ["available"], "in-use");
    expect(await api.createVolume(c, { ...volumeInput, sourceVolumeId: sourceId })).toMatchObject({
      sourceVolid: sourceId,
      status: "creating",
    });
  });

  it("refuses, naming the field, and writes nothing", async () => {
    const c = ctx();
    const sourceId = await availableVolume(c, 2);
    const snapshot = await api.createSnapshot(c, snapshotOf(sourceId));
    const before = await counts(c.projectId);
    const cases: Array<[Partial<CreateVolumeInput>, string, string]> = [
      [{ sizeGb: 1 }, "INVALID_ARGUMENT", "size_gb: must be at least the source volume's size, 2"],
      [{ availabilityZone: "elsewhere" }, "INVALID_ARGUMENT", "availability_zone: must be the source volume's, nova"],
      [
        { snapshotId: snapshot.id },
        "INVALID_ARGUMENT",
        "source_volume_id: must be empty when snapshot_id is set: a volume has one source",
      ],
      [{ sourceVolumeId: "not-a-uuid" }, "INVALID_ARGUMENT", "source_volume_id: must be a UUID"],
    ];
    for (const [patch, code, message] of cases) {
      const error = await refusal(api.createVolume(c, { ...volumeInput, sourceVolumeId: sourceId, ...patch }));
      expect({ code: error.code, message: error.message }).toEqual({ code, message });
    }
    // Another project's volume does not exist for this one.
    const other = ctx();
    const error = await refusal(api.createVolume(other, { ...volumeInput, sourceVolumeId: sourceId }));
    expect(error).toMatchObject({ code: "NOT_FOUND", message: `source_volume_id: volume ${sourceId} not found` });
    // A source that is not available or in-use.
    await updateVolumeStatus(db, sourceId, ["available"], "error");
    const failed = await refusal(api.createVolume(c, { ...volumeInput, sourceVolumeId: sourceId }));
    expect(failed).toMatchObject({
      code: "FAILED_PRECONDITION",
      message: `source_volume_id: volume ${sourceId} status must be available or in-use to clone it, but is error`,
    });
    expect(await counts(c.projectId)).toEqual(before);
  });

  it("is a volume for the quota: refused past the volumes or gigabytes limit, writing nothing", async () => {
    const c = ctx();
    const sourceId = await availableVolume(c, 4);
    await setQuotaLimit(db, c.projectId, "gigabytes", 10);
    const before = await counts(c.projectId);
    const error = await refusal(api.createVolume(c, { ...volumeInput, sizeGb: 7, sourceVolumeId: sourceId }));
    expect(error).toMatchObject({
      code: "RESOURCE_EXHAUSTED",
      message: "quota exceeded for gigabytes: requested 7, 4 of 10 in use",
    });
    expect(await counts(c.projectId)).toEqual(before);
  });
});

describe("updateVolume: bootable (os-set_bootable)", () => {
  it("sets and clears the flag, leaving the name, and another project's volume is not found", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    expect(await api.updateVolume(c, volumeId, { bootable: true })).toMatchObject({ bootable: true, name: "vol" });
    expect(await api.updateVolume(c, volumeId, { name: "renamed" })).toMatchObject({ bootable: true, name: "renamed" });
    expect(await api.updateVolume(c, volumeId, { bootable: false })).toMatchObject({ bootable: false });
    await expect(api.updateVolume(ctx(), volumeId, { bootable: true })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

describe("extendVolume of an attached volume (Cinder 3.42)", () => {
  it("extends an in-use volume: extending, with the added size reserved", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c, 2);
    await updateVolumeStatus(db, volumeId, ["available"], "in-use");
    expect(await api.extendVolume(c, volumeId, 5)).toMatchObject({ status: "extending", sizeGb: 2 });
    expect(await getQuotaUsage(db, c.projectId)).toMatchObject({ gigabytes: 5 });
  });
});

describe("createSnapshot", () => {
  it("records a creating snapshot at 0% with the volume's size, and casts it to the scheduler", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c, 4);
    const snapshot = await api.createSnapshot(c, snapshotOf(volumeId));
    expect(snapshot).toMatchObject({ status: "creating", progress: "0%", volumeSizeGb: 4, volumeId });
    const casts = await db.execute<{ payload: Uint8Array }>(
      sql`select payload from outbox where subject = 'test.scheduler.create_snapshot'`,
    );
    const cast = casts
      .map((r) => SchedulerCreateSnapshot.decode(new Uint8Array(r.payload)))
      .find((d) => d.snapshotId === snapshot.id);
    expect(cast).toMatchObject({ volumeId, volumeSizeGb: 4, volumeHost: "h1@file" });
    expect(cast?.context?.projectId).toBe(c.projectId);
    expect(await getQuotaUsage(db, c.projectId)).toEqual({
      volumes: 1,
      snapshots: 1,
      gigabytes: 8,
      // Every volume has a type (__DEFAULT__ when none is asked for), counted per type too.
      volumes___DEFAULT__: 1,
      snapshots___DEFAULT__: 1,
      gigabytes___DEFAULT__: 8,
    });
  });

  it("returns the snapshot exactly as a later read sees it", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c, 2);
    const created = await api.createSnapshot(c, { ...snapshotOf(volumeId), metadata: { tier: "gold" } });
    expect(created).toEqual(await api.getSnapshot(c, created.id));
    expect(created.createdAt).toBeInstanceOf(Date);
  });

  it("writes nothing when the volume is no longer as it was checked", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c, 2);
    await api.createSnapshot(c, snapshotOf(volumeId)); // the project's quota rows exist from here on
    const seen = await getVolume(db, c.projectId, volumeId);
    if (!seen?.host) throw new Error("volume not scheduled");
    await updateVolumeStatus(db, volumeId, ["available"], "maintenance");
    const before = await counts(c.projectId);
    const operationId = randomUUID();
    const id = randomUUID();
    const outcome = await createSnapshotAtOnce(db, {
      volume: seen,
      snapshot: {
        id,
        projectId: c.projectId,
        userId: c.userId,
        volumeId,
        status: "creating",
        volumeSizeGb: seen.sizeGb,
      },
      operation: {
        id: operationId,
        kind: "create_snapshot",
        resourceId: id,
        projectId: c.projectId,
        timeoutSeconds: 60,
      },
      cast: dispatcher.createSnapshotMessage(
        SchedulerCreateSnapshot.fromPartial({ operationId, snapshotId: id, volumeId, volumeHost: seen.host }),
        1,
      ),
      quota: [{ resource: "snapshots", delta: 1, defaultLimit: 10 }],
    });
    expect(outcome).toEqual({ volumeChanged: true });
    expect(await counts(c.projectId)).toEqual(before);
    // Through the api the volume is checked again and the caller hears why.
    const error = await refusal(api.createSnapshot(c, snapshotOf(volumeId)));
    expect(error.message).toBe(`volume ${volumeId} is in maintenance`);
  });

  it("refuses another project's volume as NOT_FOUND and writes nothing", async () => {
    const owner = ctx();
    const volumeId = await availableVolume(owner);
    const stranger = ctx();
    const before = await counts(stranger.projectId);
    const error = await refusal(api.createSnapshot(stranger, snapshotOf(volumeId)));
    expect(error.code).toBe("NOT_FOUND");
    expect(error.message).toBe(`volume ${volumeId} not found`);
    expect(await counts(stranger.projectId)).toEqual(before);
  });

  it("refuses a group_snapshot_id (members join a group only through CreateGroupSnapshot), writing nothing", async () => {
    // Another project's group included: a snapshot of B's own volume must never land in A's group.
    const owner = ctx();
    const volumeId = await availableVolume(owner);
    const before = await counts(owner.projectId);
    const error = await refusal(
      api.createSnapshot(owner, snapshotOf(volumeId, { groupSnapshotId: "4f1c6bb2-8f0e-4a43-9a43-2d3c4b5a6f70" })),
    );
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toMatch(/^group_snapshot_id: /);
    expect(await counts(owner.projectId)).toEqual(before);
  });

  it("refuses a volume that is not available, naming its status, and writes nothing", async () => {
    const c = ctx();
    const volume = await api.createVolume(c, volumeInput);
    const before = await counts(c.projectId);
    const error = await refusal(api.createSnapshot(c, snapshotOf(volume.id)));
    expect(error.code).toBe("FAILED_PRECONDITION");
    expect(error.message).toContain("but is creating");
    expect(await counts(c.projectId)).toEqual(before);
  });

  it("snapshots an in-use volume without force (Cinder 3.66), and still accepts force", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    await updateVolumeStatus(db, volumeId, ["available"], "in-use");
    await expect(api.createSnapshot(c, snapshotOf(volumeId))).resolves.toMatchObject({ status: "creating" });
    await expect(api.createSnapshot(c, snapshotOf(volumeId, { force: true }))).resolves.toMatchObject({
      status: "creating",
    });
  });

  it("refuses a volume whose backend is frozen", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    await setServiceFlags(db, "h1@file", { frozen: true });
    try {
      const error = await refusal(api.createSnapshot(c, snapshotOf(volumeId)));
      expect(error.code).toBe("FAILED_PRECONDITION");
      expect(error.message).toContain("is frozen");
    } finally {
      await setServiceFlags(db, "h1@file", { frozen: false });
    }
  });

  it("refuses a volume it snapshotted before once its backend is frozen (the remembered check is not trusted)", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    await api.createSnapshot(c, snapshotOf(volumeId)); // the api remembers the volume as snapshottable
    await setServiceFlags(db, "h1@file", { frozen: true });
    try {
      const before = await counts(c.projectId);
      const error = await refusal(api.createSnapshot(c, snapshotOf(volumeId)));
      expect(error.code).toBe("FAILED_PRECONDITION");
      expect(error.message).toBe(`backend h1@file of volume ${volumeId} is frozen`);
      expect(await counts(c.projectId)).toEqual(before);
    } finally {
      await setServiceFlags(db, "h1@file", { frozen: false });
    }
    await expect(api.createSnapshot(c, snapshotOf(volumeId))).resolves.toMatchObject({ status: "creating" });
  });

  it("sees a volume deleted or extended since its last snapshot", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c, 2);
    await api.createSnapshot(c, snapshotOf(volumeId));
    await db.execute(sql`update volumes set size_gb = 3 where id = ${volumeId}`);
    await expect(api.createSnapshot(c, snapshotOf(volumeId))).resolves.toMatchObject({ volumeSizeGb: 3 });
    await db.execute(sql`update volumes set deleted = true where id = ${volumeId}`);
    const error = await refusal(api.createSnapshot(c, snapshotOf(volumeId)));
    expect(error.code).toBe("NOT_FOUND");
  });

  it("deletes neither a volume nor a snapshot on a frozen backend (Cinder's assert_not_frozen); thawed, the snapshot goes", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    const snapshot = await api.createSnapshot(c, snapshotOf(volumeId));
    await updateSnapshotStatus(db, snapshot.id, ["creating"], "available");
    await setServiceFlags(db, "h1@file", { frozen: true });
    try {
      const snapshotRefused = await refusal(api.deleteSnapshot(c, snapshot.id, false));
      expect(snapshotRefused.code).toBe("FAILED_PRECONDITION");
      expect(snapshotRefused.message).toBe(
        `backend h1@file of snapshot ${snapshot.id} is frozen; an administrator must thaw it`,
      );
      const volumeRefused = await refusal(api.deleteVolume(c, volumeId, true));
      expect(volumeRefused.code).toBe("FAILED_PRECONDITION");
      expect(volumeRefused.message).toContain(`backend h1@file of volume ${volumeId} is frozen`);
      expect((await api.getSnapshot(c, snapshot.id)).status).toBe("available");
      expect((await api.getVolume(c, volumeId)).status).toBe("available");
    } finally {
      await setServiceFlags(db, "h1@file", { frozen: false });
    }
    await expect(api.deleteSnapshot(c, snapshot.id, false)).resolves.toMatchObject({ status: "deleting" });
  });

  it("refuses past the snapshots quota with RESOURCE_EXHAUSTED naming it, writing nothing", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c, 1);
    await setQuotaLimit(db, c.projectId, "snapshots", 2);
    await api.createSnapshot(c, snapshotOf(volumeId));
    await api.createSnapshot(c, snapshotOf(volumeId));
    const before = await counts(c.projectId);
    const error = await refusal(api.createSnapshot(c, snapshotOf(volumeId)));
    expect(error.code).toBe("RESOURCE_EXHAUSTED");
    expect(error.message).toBe("quota exceeded for snapshots: requested 1, 2 of 2 in use");
    expect(await counts(c.projectId)).toEqual(before);
  });

  it("counts the volume's size against the gigabytes quota", async () => {
    const c = ctx();
    await setQuotaLimit(db, c.projectId, "gigabytes", 1000);
    const volumeId = await availableVolume(c, 600);
    const error = await refusal(api.createSnapshot(c, snapshotOf(volumeId)));
    expect(error.message).toBe("quota exceeded for gigabytes: requested 600, 600 of 1000 in use");
    expect(await getQuotaUsage(db, c.projectId)).toEqual({
      volumes: 1,
      snapshots: 0,
      gigabytes: 600,
      // Every volume has a type (__DEFAULT__ when none is asked for), counted per type too.
      volumes___DEFAULT__: 1,
      snapshots___DEFAULT__: 0,
      gigabytes___DEFAULT__: 600,
    });
  });

  it("never lets concurrent creates pass the quota", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c, 1);
    await setQuotaLimit(db, c.projectId, "snapshots", 5);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => api.createSnapshot(c, snapshotOf(volumeId))),
    );
    const created = results.filter((r) => r.status === "fulfilled").length;
    const refused = results.filter(
      (r) => r.status === "rejected" && (r.reason as CinderblockError).code === "RESOURCE_EXHAUSTED",
    ).length;
    expect({ created, refused }).toEqual({ created: 5, refused: 15 });
    const after = await counts(c.projectId);
    expect(after.snapshots).toBe(5);
    expect(after.usage.snapshots).toBe(5);
  });
});

describe("reads", () => {
  it("filters by status, name and metadata, sorts by any key both ways, and pages under that sort", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c, 1);
    await setQuotaLimit(db, c.projectId, "snapshots", -1);
    const names = ["delta", "alpha", "echo", "bravo", "charlie"];
    const made: Record<string, string> = {};
    for (const [i, name] of names.entries()) {
      const s = await api.createSnapshot(c, snapshotOf(volumeId, { name }));
      made[name] = s.id;
      if (i % 2 === 0) await updateSnapshotStatus(db, s.id, ["creating"], "available");
    }
    await db.execute(sql`update snapshots set metadata = '{"tier":"gold"}' where id = ${made.echo ?? ""}`);
    const all = async (input: Partial<ListInput>) => {
      const seen: string[] = [];
      let token = "";
      do {
        const page = await api.listSnapshots(c, list({ ...input, pageSize: 2, pageToken: token }));
        seen.push(...page.items.map((s) => s.name));
        token = page.nextPageToken;
      } while (token);
      return seen;
    };
    expect(await all({ sortKey: "name", sortDir: "asc" })).toEqual(["alpha", "bravo", "charlie", "delta", "echo"]);
    expect(await all({ sortKey: "name", sortDir: "desc" })).toEqual(["echo", "delta", "charlie", "bravo", "alpha"]);
    expect(await all({ status: "available", sortKey: "name", sortDir: "asc" })).toEqual(["charlie", "delta", "echo"]);
    expect(await all({ name: "bravo" })).toEqual(["bravo"]);
    expect(await all({ metadata: { tier: "gold" } })).toEqual(["echo"]);
    const first = await api.listSnapshots(c, list({ pageSize: 2, sortKey: "name" }));
    const mismatch = await refusal(api.listSnapshots(c, list({ pageToken: first.nextPageToken })));
    expect(mismatch.message).toBe("page_token: was issued for another sort");
    expect((await refusal(api.listSnapshots(c, list({ sortKey: "color" })))).code).toBe("INVALID_ARGUMENT");
    // NOTE: who may ask for all_projects is the api boundary's policy (cinderblock:all_projects).
    const admin = { ...c, roles: ["admin"] };
    const everyone = await api.listSnapshots(admin, list({ allProjects: true, pageSize: 1000 }));
    expect(new Set(everyone.items.map((s) => s.projectId)).size).toBeGreaterThan(1);
  });

  it("pages through snapshots with a stable token while rows are inserted", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c, 1);
    await setQuotaLimit(db, c.projectId, "snapshots", -1);
    for (let i = 0; i < 7; i++) await api.createSnapshot(c, snapshotOf(volumeId, { name: `s${i}` }));
    // The order before any paging: newest first, ties (same millisecond) broken by id.
    const before = (await api.listSnapshots(c, list({ pageSize: 1000, volumeId }))).items.map((s) => s.id);
    expect(before).toHaveLength(7);
    const seen: string[] = [];
    let token = "";
    do {
      const page = await api.listSnapshots(c, list({ pageSize: 3, pageToken: token, volumeId }));
      seen.push(...page.items.map((s) => s.id));
      token = page.nextPageToken;
      await api.createSnapshot(c, snapshotOf(volumeId, { name: "late" })); // newer rows don't shift pages
    } while (token);
    expect(seen).toEqual(before);
    expect((await refusal(api.listSnapshots(c, list({ pageToken: "garbage" })))).message).toContain("page_token");
  });

  it("hides other projects' snapshots", async () => {
    const owner = ctx();
    const volumeId = await availableVolume(owner);
    const snapshot = await api.createSnapshot(owner, snapshotOf(volumeId));
    const stranger = ctx();
    expect((await refusal(api.getSnapshot(stranger, snapshot.id))).code).toBe("NOT_FOUND");
    expect((await api.listSnapshots(stranger, list())).items).toEqual([]);
  });

  it("watches a snapshot until it reaches a terminal status", async () => {
    const c = ctx();
    const volumeId = await availableVolume(c);
    const snapshot = await api.createSnapshot(c, snapshotOf(volumeId));
    const seen: string[] = [];
    const watching = (async () => {
      for await (const s of api.watchSnapshot(c, snapshot.id, new AbortController().signal)) {
        seen.push(`${s.status} ${s.progress}`);
        if (seen.length === 1) {
          await updateSnapshotStatus(db, snapshot.id, ["creating"], "available", { progress: "100%" });
          setImmediate(() => wake.get(snapshot.id)?.());
        }
      }
    })();
    await watching;
    expect(seen).toEqual(["creating 0%", "available 100%"]);
  });
});
