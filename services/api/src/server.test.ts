import type { GroupSnapshotRow, SnapshotRow } from "@cinderblock/db";
import { type ApiUseCases, CinderblockError, GROUP_SNAPSHOT_STATUSES } from "@cinderblock/domain";
import {
  descriptorSetPath,
  type GetSnapshotResponse,
  GroupSnapshotStatus,
  GroupSnapshotsServiceClient,
  ListGroupSnapshotsRequest,
  ListSnapshotsRequest,
  SnapshotStatus,
  SnapshotsServiceClient,
} from "@cinderblock/proto";
import { addHealthAndReflection, listen, shutdown } from "@cinderblock/rpc";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { createApiServer, PUBLIC_SERVICES } from "./server.js";

// The gRPC boundary with fake use cases: a real grpc-js server on 127.0.0.1:0 and a real client.

const SNAPSHOT: SnapshotRow = {
  id: "8c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f70",
  projectId: "p1",
  userId: "u1",
  volumeId: "1c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f70",
  name: "s",
  description: "",
  status: "creating",
  statusReason: "",
  statusDetail: "",
  progress: "0%",
  volumeSizeGb: 1,
  volumeType: "",
  volumeTypeId: null,
  encryptionKeyId: "",
  providerLocation: "",
  groupSnapshotId: "",
  imageMetadata: {},
  metadata: {},
  deleted: false,
  deletedAt: null,
  clientRequestId: null,
  requestHash: null,
  createdAt: new Date(),
  updatedAt: new Date(),
};

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function serve(useCases: Partial<ApiUseCases>) {
  const reported: unknown[] = [];
  const server = createApiServer({
    useCases: useCases as ApiUseCases,
    report: (e) => reported.push(e),
    limits: { maxStringLength: 4096, maxEntries: 128, maxCollectionBytes: 65_536 },
  });
  const health = addHealthAndReflection(server, { descriptorSetPath, services: PUBLIC_SERVICES });
  const port = await listen(server, "127.0.0.1:0");
  const client = new SnapshotsServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  cleanups.push(async () => {
    client.close();
    await shutdown(server, 1000);
  });
  return { client, reported, health, port };
}

const md = (roles = "") => {
  const m = new Metadata();
  m.set("x-project-id", "p1");
  m.set("x-user-id", "u1");
  if (roles) m.set("x-roles", roles);
  return m;
};

function unaryCall<Req>(
  invoke: (req: Req, m: Metadata, done: (err: ServiceError | null) => void) => unknown,
  req: Req,
  metadata: Metadata,
): Promise<ServiceError | undefined> {
  return new Promise((resolve) => invoke(req, metadata, (err) => resolve(err ?? undefined)));
}

function getSnapshot(client: SnapshotsServiceClient, metadata: Metadata) {
  return new Promise<unknown>((resolve, reject) =>
    client.getSnapshot({ id: SNAPSHOT.id }, metadata, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

describe("api gRPC boundary", () => {
  it("maps a domain error to its status code and message", async () => {
    const { client } = await serve({
      getSnapshot: async () => {
        throw new CinderblockError("NOT_FOUND", `snapshot ${SNAPSHOT.id} not found`);
      },
    });
    const error = (await getSnapshot(client, md()).catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(status.NOT_FOUND);
    expect(error.details).toBe(`snapshot ${SNAPSHOT.id} not found`);
    expect(error.metadata.get("x-request-id")[0]).toMatch(/^req-/);
  });

  it("shows the backend's failure detail to admins only; every member reads the reason", async () => {
    const failed: SnapshotRow = {
      ...SNAPSHOT,
      status: "error",
      statusReason: "the storage backend failed to create the snapshot",
      statusDetail: "lvcreate: /dev/cinder-volumes/volume-1: Input/output error",
    };
    const { client } = await serve({ getSnapshot: async () => failed });
    const asMember = (await getSnapshot(client, md("member"))) as GetSnapshotResponse;
    const asAdmin = (await getSnapshot(client, md("admin"))) as GetSnapshotResponse;
    expect(asMember.snapshot).toMatchObject({ statusReason: failed.statusReason, statusDetail: "" });
    expect(asAdmin.snapshot).toMatchObject({ statusReason: failed.statusReason, statusDetail: failed.statusDetail });
  });

  it("refuses a message that does not decode, and a control character, with INVALID_ARGUMENT before the use case", async () => {
    let called = false;
    const { client, reported } = await serve({
      getSnapshot: async () => {
        called = true;
        return SNAPSHOT;
      },
    });
    const raw = (b: Buffer) => b;
    // field 1 with wire type 7, which does not exist
    const malformed = await new Promise<ServiceError | null>((resolve) =>
      client.makeUnaryRequest(
        "/cinderblock.v1.SnapshotsService/GetSnapshot",
        raw,
        raw,
        Buffer.from([0x0f, 0x01]),
        md(),
        (err) => resolve(err),
      ),
    );
    expect(malformed?.code).toBe(status.INVALID_ARGUMENT);
    expect(malformed?.details).toMatch(/^request: is not a valid message/);
    const nul = (await new Promise<unknown>((resolve, reject) =>
      client.getSnapshot({ id: "a\u0000b" }, md(), (err, res) => (err ? reject(err) : resolve(res))),
    ).catch((e: unknown) => e)) as ServiceError;
    expect(nul.code).toBe(status.INVALID_ARGUMENT);
    expect(nul.details).toBe("id: must not contain control characters");
    expect(called).toBe(false);
    expect(reported).toEqual([]);
  });

  it("turns an unexpected failure into INTERNAL without leaking it, and reports it", async () => {
    const { client, reported } = await serve({
      getSnapshot: async () => {
        throw new Error("connection to 10.0.0.5:5432 refused");
      },
    });
    const error = (await getSnapshot(client, md()).catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(status.INTERNAL);
    expect(error.details).not.toContain("10.0.0.5");
    expect(reported).toHaveLength(1);
  });

  it("refuses a call without noauth identity before reaching the use case", async () => {
    let called = false;
    const { client } = await serve({
      getSnapshot: async () => {
        called = true;
        return SNAPSHOT;
      },
    });
    const error = (await getSnapshot(client, new Metadata()).catch((e: unknown) => e)) as ServiceError;
    expect(error.code).toBe(status.UNAUTHENTICATED);
    expect(called).toBe(false);
  });

  it("checks the method's policy rule before the request is validated, naming the rule", async () => {
    const calls: string[] = [];
    const { client } = await serve({
      resetSnapshotStatus: async () => {
        calls.push("reset");
        throw new CinderblockError("INVALID_ARGUMENT", "id: must be a UUID");
      },
    });
    const reset = client.resetSnapshotStatus.bind(client);
    for (const roles of ["", "member", "Admin", "ADMIN", "member,Admin", "administrator"]) {
      const error = await unaryCall(
        reset,
        { id: "not-a-uuid", status: SnapshotStatus.SNAPSHOT_STATUS_ERROR },
        md(roles),
      );
      expect(error?.code, `roles ${JSON.stringify(roles)}`).toBe(status.PERMISSION_DENIED);
      expect(error?.details).toBe(
        "policy does not allow volume_extension:snapshot_admin_actions:reset_status to be performed",
      );
    }
    expect(calls).toEqual([]);
    const asAdmin = await unaryCall(
      reset,
      { id: "not-a-uuid", status: SnapshotStatus.SNAPSHOT_STATUS_ERROR },
      md("admin"),
    );
    expect(asAdmin?.code).toBe(status.INVALID_ARGUMENT);
    expect(calls).toEqual(["reset"]);
  });

  it("keeps force delete and all_projects for admins while owners may delete and list their own", async () => {
    const seen: string[] = [];
    const { client } = await serve({
      deleteSnapshot: async (ctx, _id, force) => {
        seen.push(`delete force=${force} admin=${ctx.isAdmin}`);
        return SNAPSHOT;
      },
      listSnapshots: async (ctx, input) => {
        seen.push(`list all=${input.allProjects} admin=${ctx.isAdmin}`);
        return { items: [], nextPageToken: "" };
      },
    });
    const del = client.deleteSnapshot.bind(client);
    const list = client.listSnapshots.bind(client);
    expect(await unaryCall(del, { id: SNAPSHOT.id, force: false }, md("member"))).toBeUndefined();
    expect((await unaryCall(del, { id: SNAPSHOT.id, force: true }, md("member")))?.details).toBe(
      "policy does not allow volume_extension:snapshot_admin_actions:force_delete to be performed",
    );
    expect(await unaryCall(list, ListSnapshotsRequest.fromPartial({ allProjects: false }), md())).toBeUndefined();
    expect(
      (await unaryCall(list, ListSnapshotsRequest.fromPartial({ allProjects: true }), md("member")))?.details,
    ).toBe("policy does not allow cinderblock:all_projects to be performed");
    expect(await unaryCall(del, { id: SNAPSHOT.id, force: true }, md("admin"))).toBeUndefined();
    expect(seen).toEqual([
      "delete force=false admin=false",
      "list all=false admin=false",
      "delete force=true admin=true",
    ]);
  });

  it("streams WatchSnapshot messages and ends the stream when the use case ends", async () => {
    const { client } = await serve({
      async *watchSnapshot() {
        yield SNAPSHOT;
        yield { ...SNAPSHOT, status: "available", progress: "100%" } as SnapshotRow;
      },
    });
    const seen = await new Promise<Array<[SnapshotStatus, string]>>((resolve, reject) => {
      const got: Array<[SnapshotStatus, string]> = [];
      const stream = client.watchSnapshot({ id: SNAPSHOT.id }, md());
      stream.on("data", (m) => got.push([m.snapshot.status, m.snapshot.progress]));
      stream.on("error", reject);
      stream.on("end", () => resolve(got));
    });
    expect(seen).toEqual([
      [SnapshotStatus.SNAPSHOT_STATUS_CREATING, "0%"],
      [SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE, "100%"],
    ]);
  });

  it("ends a stream that fails before its first message with the mapped status", async () => {
    const { client } = await serve({
      // biome-ignore lint/correctness/useYield: fails before yielding, which is the point
      async *watchSnapshot() {
        throw new CinderblockError("NOT_FOUND", `snapshot ${SNAPSHOT.id} not found`);
      },
    });
    const error = await new Promise<ServiceError>((resolve) => {
      const stream = client.watchSnapshot({ id: SNAPSHOT.id }, md());
      stream.on("data", () => {});
      stream.on("error", resolve);
    });
    expect(error.code).toBe(status.NOT_FOUND);
    expect(error.details).toBe(`snapshot ${SNAPSHOT.id} not found`);
  });

  it("sends a group snapshot's stored status as its GroupSnapshotStatus", async () => {
    // Every status the domain stores, then text it does not name (UNRECOGNIZED, not a guess).
    const stored = [...GROUP_SNAPSHOT_STATUSES, "frozen"];
    const { port } = await serve({
      listGroupSnapshots: async () => ({
        nextPageToken: "",
        items: stored.map((s, i) => ({
          group: {
            id: `0c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f7${i}`,
            projectId: "p1",
            userId: "u1",
            name: s,
            description: "",
            status: s,
            statusReason: "",
            deleted: false,
            clientRequestId: null,
            requestHash: null,
            createdAt: new Date(),
            updatedAt: new Date(),
          } satisfies GroupSnapshotRow,
          members: [],
        })),
      }),
    });
    const groups = new GroupSnapshotsServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    cleanups.push(async () => groups.close());
    const listed = await new Promise<Array<[string, GroupSnapshotStatus]>>((resolve, reject) =>
      groups.listGroupSnapshots(ListGroupSnapshotsRequest.fromPartial({ pageSize: 10 }), md(), (err, res) =>
        err ? reject(err) : resolve(res.groupSnapshots.map((g) => [g.name, g.status])),
      ),
    );
    expect(listed).toEqual([
      ["creating", GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_CREATING],
      ["available", GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_AVAILABLE],
      ["error", GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_ERROR],
      ["deleting", GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_DELETING],
      ["error_deleting", GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_ERROR_DELETING],
      ["deleted", GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_DELETED],
      ["frozen", GroupSnapshotStatus.UNRECOGNIZED],
    ]);
  });
});
