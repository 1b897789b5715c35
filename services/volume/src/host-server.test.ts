import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { createDb, type DbHandle, insertVolume, runMigrations } from "@cinderblock/db";
import { CinderblockError, HostUnreachableError } from "@cinderblock/domain";
import { createVolumeHostCalls, listen, type Server, shutdown } from "@cinderblock/rpc";
import { createTestDatabase, type TestDatabase } from "@cinderblock/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DriverError, type VolumeDriver } from "./drivers/driver.js";
import { createHostServer } from "./host-server.js";

// Both ends of a call to a volume host: its real gRPC server (on the real PostgreSQL) over a
// driver that fails on demand, called through the api's real host client. A backend's refusal
// must reach the api as the same code and words; only a host that does not answer is "unreachable".

let database: TestDatabase;
let handle: DbHandle;
let server: Server;
let address: string;
const hosts = createVolumeHostCalls({ deadlineMs: 2000 });
const ctx = { requestId: "req-host-test", projectId: "p1", userId: "u1", roles: ["admin"] };
const volumeId = randomUUID();

/** What every driver call does next: throw this, or hang (for the deadline). */
let failure: unknown;
const fail = async (): Promise<never> => {
  if (failure === "hang") return new Promise<never>(() => {});
  throw failure;
};
const driver = {
  initializeConnection: fail,
  terminateConnection: fail,
  listManageableSnapshots: fail,
  manageExistingSnapshot: fail,
  unmanageSnapshot: fail,
} as unknown as VolumeDriver;

beforeAll(async () => {
  database = await createTestDatabase(runMigrations);
  handle = createDb({ url: database.url, max: 2 });
  await insertVolume(handle.db, {
    id: volumeId,
    projectId: "p1",
    userId: "u1",
    status: "available",
    sizeGb: 1,
    availabilityZone: "nova",
    host: "vol1@fake",
  });
  server = createHostServer({
    db: handle.db,
    hostName: "vol1",
    drivers: new Map([["fake", driver]]),
    report: () => {},
  });
  address = `127.0.0.1:${await listen(server, "127.0.0.1:0")}`;
});

afterAll(async () => {
  hosts.close();
  if (server) await shutdown(server, 0);
  await handle?.close();
  await database?.drop();
});

const manage = () => hosts.manageSnapshot(address, ctx, randomUUID(), volumeId, "legacy.img");
const attach = () => hosts.initializeConnection(address, ctx, volumeId, { host: "compute1" });
const list = (backend = "vol1@fake") => hosts.listManageableSnapshots(address, ctx, backend, []);

async function rejection(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    () => expect.unreachable("the call succeeded"),
    (e: unknown) => e,
  );
}

/** The error as the api sees it: a CinderblockError's code and message. */
async function refusal(call: () => Promise<unknown>): Promise<{ code: string; message: string }> {
  const error = await rejection(call());
  if (!(error instanceof CinderblockError)) throw new Error(`expected a CinderblockError, got ${String(error)}`);
  return { code: error.code, message: error.message };
}

describe("volume host calls: the backend's verdict keeps its code and words", () => {
  it("a backend refusal is FAILED_PRECONDITION with the driver's reason (manage, attach, list)", async () => {
    failure = new DriverError("cannot manage legacy.img: snapshot-1.img already exists", { retryable: false });
    const expected = {
      code: "FAILED_PRECONDITION",
      message: "cannot manage legacy.img: snapshot-1.img already exists",
    };
    expect(await refusal(manage)).toEqual(expected);
    expect(await refusal(attach)).toEqual(expected);
    expect(await refusal(list)).toEqual(expected);
  });

  it("a missing object is NOT_FOUND, bad input INVALID_ARGUMENT", async () => {
    failure = new DriverError("legacy.img not found on backend", { retryable: false, kind: "not_found" });
    expect(await refusal(manage)).toEqual({ code: "NOT_FOUND", message: "legacy.img not found on backend" });
    failure = new DriverError('cannot manage "../x": not a plain file name', { retryable: false, kind: "invalid" });
    expect(await refusal(manage)).toEqual({
      code: "INVALID_ARGUMENT",
      message: 'cannot manage "../x": not a plain file name',
    });
  });

  it("a retryable backend failure is UNAVAILABLE with the driver's words", async () => {
    failure = new DriverError("ceph df did not complete: timed out", { retryable: true });
    expect(await refusal(attach)).toEqual({ code: "UNAVAILABLE", message: "ceph df did not complete: timed out" });
    expect(await refusal(list)).toEqual({ code: "UNAVAILABLE", message: "ceph df did not complete: timed out" });
  });

  it("the host's own refusals keep theirs too (a backend it does not serve)", async () => {
    expect(await refusal(() => list("vol1@other"))).toEqual({
      code: "NOT_FOUND",
      message: "backend vol1@other is not on host vol1",
    });
  });

  it("a driver bug stays internal: neither a verdict nor 'unreachable'", async () => {
    failure = new TypeError("x is undefined");
    const error = await rejection(manage());
    expect(error).not.toBeInstanceOf(CinderblockError);
    expect(error).not.toBeInstanceOf(HostUnreachableError);
  });
});

describe("volume host calls: a host that does not answer", () => {
  it("refused connection: HostUnreachableError", async () => {
    const probe = createServer();
    const port = await new Promise<number>((resolve) =>
      probe.listen(0, "127.0.0.1", () => {
        const bound = probe.address();
        probe.close(() => resolve(typeof bound === "object" && bound ? bound.port : 0));
      }),
    );
    const error = await rejection(hosts.manageSnapshot(`127.0.0.1:${port}`, ctx, randomUUID(), volumeId, "x"));
    expect(error).toBeInstanceOf(HostUnreachableError);
  });

  it("no answer before the deadline: HostUnreachableError", async () => {
    failure = "hang";
    const quick = createVolumeHostCalls({ deadlineMs: 300 });
    try {
      expect(await rejection(quick.initializeConnection(address, ctx, volumeId, {}))).toBeInstanceOf(
        HostUnreachableError,
      );
    } finally {
      quick.close();
    }
  });
});
