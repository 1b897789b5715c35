import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createDb,
  type DbHandle,
  getSnapshotElevated,
  insertSnapshot,
  insertVolume,
  runMigrations,
} from "@cinderblock/db";
import { CinderblockError, HostUnreachableError } from "@cinderblock/domain";
import { VolumeHostServiceClient } from "@cinderblock/proto";
import { createVolumeHostCalls, listen, type Server, serverTls, shutdown } from "@cinderblock/rpc";
import { createTestDatabase, makeTestPki, type TestDatabase, type TestPki } from "@cinderblock/testing";
import { type ChannelCredentials, credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DriverError, type VolumeDriver } from "./drivers/driver.js";
import { createHostServer } from "./host-server.js";

// Both ends of a call to a volume host: its real gRPC server (on the real PostgreSQL, with mutual
// TLS and certificates made by openssl) over a driver that fails on demand, called through the
// api's real host client. A backend's refusal must reach the api as the same code and words; only
// a host that does not answer is "unreachable". And only the api may call, about what it may.

let database: TestDatabase;
let handle: DbHandle;
let server: Server;
let address: string;
let pkiDir: string;
let pki: TestPki;
let hosts: ReturnType<typeof createVolumeHostCalls>;
const ctx = { requestId: "req-host-test", projectId: "p1", userId: "u1", roles: ["admin"] };
const volumeId = randomUUID();
/** A snapshot row as the api leaves it before calling the host to manage it. */
const managingId = randomUUID();

/** What every driver call does next: throw this, or hang (for the deadline). */
let failure: unknown;
/** How many times the driver was asked anything. */
let driverCalls = 0;
const fail = async (): Promise<never> => {
  driverCalls++;
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

const apiTls = () => ({ ...pki.apiClient, caFile: pki.caFile });

beforeAll(async () => {
  pkiDir = await mkdtemp(join(tmpdir(), "cinderblock-host-pki-"));
  pki = await makeTestPki(pkiDir);
  hosts = createVolumeHostCalls({ deadlineMs: 2000, tls: apiTls() });
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
  await insertSnapshot(handle.db, {
    id: managingId,
    projectId: "p1",
    userId: "u1",
    volumeId,
    status: "creating",
    volumeSizeGb: 1,
  });
  server = createHostServer({
    db: handle.db,
    hostName: "vol1",
    drivers: new Map([["fake", driver]]),
    report: () => {},
    allowedClients: ["cinderblock-api"],
    allowedPeers: ["cinderblock-volume"],
  });
  const tls = serverTls({ ...pki.volumeServer, caFile: pki.caFile });
  address = `127.0.0.1:${await listen(server, "127.0.0.1:0", tls)}`;
});

afterAll(async () => {
  hosts?.close();
  if (server) await shutdown(server, 0);
  await handle?.close();
  await database?.drop();
  if (pkiDir) await rm(pkiDir, { recursive: true, force: true });
});

const manage = () => hosts.manageSnapshot(address, ctx, managingId, volumeId, "legacy.img");
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
    const quick = createVolumeHostCalls({ deadlineMs: 300, tls: apiTls() });
    try {
      expect(await rejection(quick.initializeConnection(address, ctx, volumeId, {}))).toBeInstanceOf(
        HostUnreachableError,
      );
    } finally {
      quick.close();
    }
  });
});

/** A raw client of the host's internal service with these credentials (not the api's client). */
function rawClient(creds: ChannelCredentials): VolumeHostServiceClient {
  return new VolumeHostServiceClient(address, creds);
}

/** InitializeConnection from a raw client: the status code it ends with. */
async function attachWith(creds: ChannelCredentials): Promise<{ code: status; details: string }> {
  const client = rawClient(creds);
  const md = new Metadata();
  md.set("x-project-id", "p1");
  md.set("x-user-id", "u1");
  md.set("x-roles", "admin");
  try {
    return await new Promise((resolve) =>
      client.initializeConnection({ volumeId, connector: {} }, md, { deadline: Date.now() + 3000 }, (err) =>
        resolve({ code: (err as ServiceError | null)?.code ?? status.OK, details: err?.details ?? "" }),
      ),
    );
  } finally {
    client.close();
  }
}

const ssl = async (caFile: string, pair?: { certFile: string; keyFile: string }) =>
  credentials.createSsl(
    await readFile(caFile),
    pair ? await readFile(pair.keyFile) : null,
    pair ? await readFile(pair.certFile) : null,
  );

describe("volume host: only the api's certificate gets in", () => {
  it("refuses a client without a certificate, and one whose certificate another CA signed", async () => {
    failure = new DriverError("reached the driver", { retryable: false });
    const before = driverCalls;
    expect((await attachWith(credentials.createInsecure())).code).toBe(status.UNAVAILABLE);
    expect((await attachWith(await ssl(pki.caFile))).code).toBe(status.UNAVAILABLE);
    // Named cinderblock-api like the api's, but not from the CA the host trusts.
    expect((await attachWith(await ssl(pki.caFile, pki.otherClient))).code).toBe(status.UNAVAILABLE);
    expect(driverCalls).toBe(before);
  });

  it("refuses a certificate from the right CA that does not name an allowed client: PERMISSION_DENIED", async () => {
    const intruder = await pki.ca.issue("compute-client", { dns: ["cinderblock-compute"], usage: "client" });
    const before = driverCalls;
    expect(await attachWith(await ssl(pki.caFile, intruder))).toEqual({
      code: status.PERMISSION_DENIED,
      details: "client certificate cinderblock-compute is not allowed to call this service",
    });
    expect(driverCalls).toBe(before);
  });

  it("accepts the api's certificate (the call reaches the driver)", async () => {
    failure = new DriverError("reached the driver", { retryable: false });
    const before = driverCalls;
    expect(await attachWith(await ssl(pki.caFile, pki.apiClient))).toEqual({
      code: status.FAILED_PRECONDITION,
      details: "reached the driver",
    });
    expect(driverCalls).toBe(before + 1);
  });
});

describe("volume host: the api's certificate, about what the caller may not touch", () => {
  const member = { requestId: "req-member", projectId: "p2", userId: "u2", roles: ["member"] };

  it("another project's volume is NOT_FOUND, and the driver is never asked", async () => {
    const before = driverCalls;
    const notFound = { code: "NOT_FOUND", message: `volume ${volumeId} not found` };
    expect(await refusal(() => hosts.initializeConnection(address, member, volumeId, {}))).toEqual(notFound);
    expect(await refusal(() => hosts.terminateConnection(address, member, volumeId, {}))).toEqual(notFound);
    expect(driverCalls).toBe(before);
  });

  it("the admin-only calls need the admin role, even in the volume's own project", async () => {
    const owner = { ...member, projectId: "p1" };
    const before = driverCalls;
    expect(await refusal(() => hosts.listManageableSnapshots(address, owner, "vol1@fake", []))).toMatchObject({
      code: "PERMISSION_DENIED",
    });
    expect(await refusal(() => hosts.manageSnapshot(address, owner, managingId, volumeId, "x.img"))).toMatchObject({
      code: "PERMISSION_DENIED",
    });
    expect(await refusal(() => hosts.unmanageSnapshot(address, owner, managingId, volumeId))).toMatchObject({
      code: "PERMISSION_DENIED",
    });
    expect(driverCalls).toBe(before);
  });

  it("unmanage is refused for a snapshot nobody is unmanaging, or of another volume; the row is unchanged", async () => {
    const available = randomUUID();
    await insertSnapshot(handle.db, {
      id: available,
      projectId: "p3",
      userId: "u3",
      volumeId,
      status: "available",
      volumeSizeGb: 1,
    });
    const before = driverCalls;
    expect(await refusal(() => hosts.unmanageSnapshot(address, ctx, available, volumeId))).toEqual({
      code: "FAILED_PRECONDITION",
      message: `snapshot ${available} status must be unmanaging, but is available`,
    });
    const otherVolume = randomUUID();
    expect(await refusal(() => hosts.unmanageSnapshot(address, ctx, available, otherVolume))).toMatchObject({
      code: "NOT_FOUND",
    });
    expect(await refusal(() => hosts.manageSnapshot(address, ctx, randomUUID(), volumeId, "x.img"))).toEqual({
      code: "NOT_FOUND",
      message: expect.stringContaining("not found"),
    });
    expect(driverCalls).toBe(before);
    expect((await getSnapshotElevated(handle.db, available))?.status).toBe("available");
  });
});
