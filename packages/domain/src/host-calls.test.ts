import { randomUUID } from "node:crypto";
import {
  createDb,
  type Db,
  type DbHandle,
  getVolume,
  insertVolume,
  listAttachmentsOfVolume,
  reportService,
  runMigrations,
} from "@cinderblock/db";
import { createTestDatabase, type TestDatabase, uniqueName } from "@cinderblock/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAttachmentUseCases } from "./attachments.js";
import type { RequestContext } from "./context.js";
import { CinderblockError, HostUnreachableError } from "./errors.js";
import { createManageUseCases } from "./manage.js";
import type { VolumeHostCalls } from "./ports.js";

// What manage and attach make of a volume host's answer (the host faked; the real PostgreSQL): a
// refusal reaches the caller with the host's code and words, a host that does not answer is
// UNAVAILABLE naming the backend or volume, and anything else stays internal.

let database: TestDatabase;
let handle: DbHandle;
let db: Db;
const host = "vol1@file";
const legacy = { reference: "legacy.img", sourceVolumeId: "", sizeGb: 1, safeToManage: true, reasonNotSafe: "" };

/** What the fake host does next, per call. */
const next: Partial<Record<keyof VolumeHostCalls, () => Promise<never>>> = {};
const reject = (error: unknown) => () => Promise.reject(error);
const hosts: VolumeHostCalls = {
  listManageableSnapshots: async () => (next.listManageableSnapshots ?? (async () => [legacy]))(),
  manageSnapshot: async () => (next.manageSnapshot ?? (async () => ({ sizeGb: 1 })))(),
  unmanageSnapshot: async () => (next.unmanageSnapshot ?? (async () => {}))(),
  initializeConnection: async () =>
    (next.initializeConnection ?? (async () => ({ driverVolumeType: "local", data: {} })))(),
  terminateConnection: async () => (next.terminateConnection ?? (async () => {}))(),
};
const common = {
  hosts,
  notifications: { announce: async () => {} },
  serviceDownTimeSeconds: 60,
  operationTimeoutSeconds: 120,
  changes: { publish() {}, subscribe: () => ({ close() {}, async *[Symbol.asyncIterator]() {} }) },
};

function admin(): RequestContext {
  return { requestId: "req-test", projectId: uniqueName("p-"), userId: "alice", roles: ["admin"] };
}

async function volume(ctx: RequestContext): Promise<string> {
  const id = randomUUID();
  await insertVolume(db, {
    id,
    projectId: ctx.projectId,
    userId: ctx.userId,
    status: "available",
    sizeGb: 1,
    availabilityZone: "nova",
    host,
  });
  return id;
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable("the call succeeded"),
    (e: unknown) => e,
  );
}

async function refusal(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const error = await failure(promise);
  if (!(error instanceof CinderblockError)) throw new Error(`expected a CinderblockError, got ${String(error)}`);
  return { code: error.code, message: error.message };
}

beforeAll(async () => {
  database = await createTestDatabase(runMigrations);
  handle = createDb({ url: database.url, max: 4 });
  db = handle.db;
  await reportService(db, {
    host,
    hostName: "vol1",
    backend: "file",
    availabilityZone: "nova",
    capabilities: {},
    grpcAddress: "127.0.0.1:1",
  });
});

afterAll(async () => {
  await handle?.close();
  await database?.drop();
});

describe("manage existing: the volume host's answer", () => {
  // Built per test: `db` exists only once beforeAll has run.
  const use = () => createManageUseCases({ db, ...common, quota: { volumes: 10, snapshots: 10, gigabytes: 100 } });

  it("keeps a backend's refusal of a listing (code and words)", async () => {
    next.listManageableSnapshots = reject(new CinderblockError("FAILED_PRECONDITION", "pool rbd is not readable"));
    try {
      expect(await refusal(use().listManageableSnapshots(admin(), host))).toEqual({
        code: "FAILED_PRECONDITION",
        message: "pool rbd is not readable",
      });
    } finally {
      delete next.listManageableSnapshots;
    }
  });

  it("answers a listing UNAVAILABLE, naming the backend, when the host does not answer", async () => {
    next.listManageableSnapshots = reject(new HostUnreachableError("connect ECONNREFUSED 127.0.0.1:1"));
    try {
      expect(await refusal(use().listManageableSnapshots(admin(), host))).toEqual({
        code: "UNAVAILABLE",
        message: `backend ${host} did not answer; try again`,
      });
    } finally {
      delete next.listManageableSnapshots;
    }
  });

  it("keeps a backend's refusal to manage, and leaves no snapshot behind", async () => {
    const ctx = admin();
    const volumeId = await volume(ctx);
    next.manageSnapshot = reject(
      new CinderblockError("FAILED_PRECONDITION", "cannot manage legacy.img: snapshot-1.img already exists"),
    );
    try {
      const input = { volumeId, reference: "legacy.img", name: "", description: "", metadata: {} };
      expect(await refusal(use().manageSnapshot(ctx, input))).toEqual({
        code: "FAILED_PRECONDITION",
        message: "cannot manage legacy.img: snapshot-1.img already exists",
      });
      next.manageSnapshot = reject(new CinderblockError("NOT_FOUND", "legacy.img not found on backend"));
      expect((await refusal(use().manageSnapshot(ctx, input))).code).toBe("NOT_FOUND");
      next.manageSnapshot = reject(new HostUnreachableError("deadline exceeded"));
      expect(await refusal(use().manageSnapshot(ctx, input))).toEqual({
        code: "UNAVAILABLE",
        message: `backend ${host} did not answer; try again`,
      });
      // A host that answered with something we did not expect: internal, not "try again".
      next.manageSnapshot = reject(new Error("13 INTERNAL: internal error (request req-test)"));
      expect(await failure(use().manageSnapshot(ctx, input))).not.toBeInstanceOf(CinderblockError);
    } finally {
      delete next.manageSnapshot;
    }
  });
});

describe("attach: the volume host's answer", () => {
  const use = () => createAttachmentUseCases({ db, ...common });

  it("keeps a backend's refusal, and puts the volume back as it was", async () => {
    const ctx = admin();
    const volumeId = await volume(ctx);
    const input = { volumeId, instanceId: "i-1", mountpoint: "/dev/vdb", connector: { host: "compute1" } };
    next.initializeConnection = reject(
      new CinderblockError("NOT_FOUND", `volume file volume-${volumeId}.img not found on backend`),
    );
    try {
      expect(await refusal(use().attachVolume(ctx, input))).toEqual({
        code: "NOT_FOUND",
        message: `volume file volume-${volumeId}.img not found on backend`,
      });
      expect((await getVolume(db, ctx.projectId, volumeId))?.status).toBe("available");
      expect(await listAttachmentsOfVolume(db, volumeId)).toEqual([]);
      next.initializeConnection = reject(new HostUnreachableError("connect ECONNREFUSED 127.0.0.1:1"));
      expect(await refusal(use().attachVolume(ctx, input))).toEqual({
        code: "UNAVAILABLE",
        message: `the host of volume ${volumeId} did not answer; try again`,
      });
    } finally {
      delete next.initializeConnection;
    }
  });
});
