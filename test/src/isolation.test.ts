import { randomUUID } from "node:crypto";
import { createDb, type DbHandle } from "@cinderblock/db";
import * as proto from "@cinderblock/proto";
import { RULE_DEFAULTS } from "@cinderblock/rpc";
import {
  call,
  codeName,
  createSettledVolume,
  identity,
  type Stack,
  startStack,
  uniqueName,
  untilEnd,
  waitUntil,
} from "@cinderblock/testing";
import { Client, credentials, type Metadata, type ServiceError } from "@grpc/grpc-js";
import type { Subscription } from "@nats-io/transport-node";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Tenant isolation, for every public method: project B (a member, not an administrator) calls
// each method on project A's ids and on random ids of the same shape; the two answers must be
// the same once the id is replaced by a placeholder, and none of A's rows may change. Then a
// member of A without the admin role tries the administrators' calls on A's own resources.

/** A method of a generated grpc-js service definition (ts-proto's `outputServices=grpc-js`). */
interface MethodDefinition {
  path: string;
  responseStream: boolean;
  requestSerialize(value: unknown): Buffer;
  responseDeserialize(value: Buffer): unknown;
}

/** The ids a request may name; A's real ones, or random ones of the same shape. */
interface Ids {
  volume: string;
  snapshot: string;
  groupSnapshot: string;
  attachment: string;
  instance: string;
  project: string;
  /** A private volume type A has access to (and its volume is of), and QoS specs associated with it. */
  volumeType: string;
  qosSpecs: string;
}

/** Every public method, from the generated definitions: a new method or service is covered unasked. */
const METHODS = Object.entries(proto)
  .filter(([name, value]) => name.endsWith("ServiceService") && typeof value === "object")
  .flatMap(([, service]) => Object.values(service as Record<string, MethodDefinition>))
  .filter((m) => m.path.startsWith("/cinderblock.v1."));

const methodName = (m: MethodDefinition) => m.path.split("/").pop() as string;
const serviceName = (m: MethodDefinition) => (m.path.split("/")[1] ?? "").replace("cinderblock.v1.", "");

/** What a request's `id` field names, by service (VolumeTypesService: by method, types or QoS specs). */
const ID_OF_SERVICE: Record<string, keyof Ids | ((m: MethodDefinition) => keyof Ids)> = {
  VolumesService: "volume",
  SnapshotsService: "snapshot",
  GroupSnapshotsService: "groupSnapshot",
  VolumeTypesService: (m) => (methodName(m).includes("Qos") ? "qosSpecs" : "volumeType"),
};

/** Request fields that name a resource, and which id each takes. */
const ID_FIELDS: Record<string, (ids: Ids, m: MethodDefinition) => unknown> = {
  id: (ids, m) => {
    const of = ID_OF_SERVICE[serviceName(m)];
    if (!of) throw new Error(`${m.path}: the isolation suite does not know what its id names`);
    return ids[typeof of === "function" ? of(m) : of];
  },
  volumeId: (ids) => ids.volume,
  volumeTypeId: (ids) => ids.volumeType,
  volumeIds: (ids) => [ids.volume],
  snapshotId: (ids) => ids.snapshot,
  sourceVolumeId: (ids) => ids.volume,
  groupSnapshotId: (ids) => ids.groupSnapshot,
  attachmentId: (ids) => ids.attachment,
  instanceId: (ids) => ids.instance,
  resourceId: (ids) => ids.volume,
  projectId: (ids) => ids.project,
};

/** Fields ending in "Id" that name nothing of ours: the caller's idempotency key, a key manager's key. */
const NOT_RESOURCE_IDS = new Set(["clientRequestId", "encryptionKeyId"]);

/** Values that make the rest of a request valid, so that the id is what the answer turns on. */
const OTHER_FIELDS: Record<string, unknown> = {
  name: "iso",
  imageName: "img",
  sizeGb: 1,
  newSizeGb: 5,
  // RetypeVolume: a type every project may use, so that the volume's id is what the answer turns on.
  newType: "__DEFAULT__",
  key: "owner",
  metadata: { owner: "b" },
  mountpoint: "/dev/vdb",
  connector: { host: "compute-b" },
  reference: "volume-elsewhere",
  limits: { volumes: 1 },
};

/**
 * The request of `m` naming `ids`, every other field valid; with `forced`, every boolean set
 * (force, cascade, all_projects, replace, quiesce...), the most a caller can ask for.
 */
function requestOf(m: MethodDefinition, ids: Ids, forced: boolean): unknown {
  const type = (proto as unknown as Record<string, { fromPartial(o: object): Record<string, unknown> }>)[
    `${methodName(m)}Request`
  ];
  if (!type) throw new Error(`${m.path}: no ${methodName(m)}Request message`);
  const defaults = type.fromPartial({});
  const request: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(defaults)) {
    const id = ID_FIELDS[key];
    if (id) request[key] = id(ids, m);
    else if (/Ids?$/.test(key) && !NOT_RESOURCE_IDS.has(key)) {
      throw new Error(`${m.path}: the isolation suite does not know which id field ${key} takes`);
    } else if (typeof value === "boolean") request[key] = forced;
    else if (key in OTHER_FIELDS) request[key] = OTHER_FIELDS[key];
  }
  // NOTE: CreateVolume takes one source: snapshot_id in the plain variant, source_volume_id in the
  // forced one (both at once is refused before either is looked up, which would test neither).
  if ("snapshotId" in request && "sourceVolumeId" in request) delete request[forced ? "snapshotId" : "sourceVolumeId"];
  return type.fromPartial(request);
}

/** How a call ended: its code and message, or (OK) its response, or an open stream's messages. */
interface Outcome {
  code: string;
  text: string;
}

/** How long a stream that neither ends nor fails is watched before it is taken as open. */
const STREAM_WINDOW_MS = 500;

let stack: Stack;
let db: DbHandle;
let client: Client;

function invoke(m: MethodDefinition, request: unknown, md: Metadata): Promise<Outcome> {
  const failed = (e: ServiceError): Outcome => ({ code: codeName(e.code), text: e.details });
  if (!m.responseStream) {
    return new Promise((resolve) => {
      client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        request,
        md,
        { deadline: Date.now() + 15_000 },
        (error, response) => resolve(error ? failed(error) : { code: "OK", text: JSON.stringify(response) }),
      );
    });
  }
  return new Promise((resolve) => {
    const stream = client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, request, md, {
      deadline: Date.now() + 15_000,
    });
    const seen: unknown[] = [];
    let settled = false;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      settle({ code: "OPEN", text: JSON.stringify(seen) });
      stream.cancel();
    }, STREAM_WINDOW_MS);
    stream.on("data", (message) => seen.push(message));
    stream.on("error", (e: ServiceError) => settle(failed(e)));
    stream.on("end", () => settle({ code: "OK", text: JSON.stringify(seen) }));
  });
}

/** `text` with each of the ids replaced by its placeholder (`<volume>`...). */
function placeheld(text: string, ids: Ids): string {
  let out = text;
  for (const [kind, value] of Object.entries(ids)) out = out.replaceAll(value, `<${kind}>`);
  return out;
}

/** Every row that holds A's resources (each table with a project_id), and every attachment to A's instance. */
async function rowsOf(ids: Ids): Promise<Record<string, string[]>> {
  const tables = await db.db.execute<{ table_name: string }>(sql`
    select table_name from information_schema.columns
     where table_schema = 'public' and column_name = 'project_id' order by table_name`);
  const rows: Record<string, string[]> = {};
  for (const { table_name } of tables) {
    const found = await db.db.execute<{ row: string }>(
      sql`select to_jsonb(t)::text as row from ${sql.identifier(table_name)} t where project_id = ${ids.project} order by 1`,
    );
    rows[table_name] = found.map((r) => r.row);
  }
  const attached = await db.db.execute<{ row: string }>(
    sql`select to_jsonb(t)::text as row from volume_attachments t where instance_id = ${ids.instance} order by 1`,
  );
  rows["volume_attachments of the instance"] = attached.map((r) => r.row);
  return rows;
}

let a: Ids;
let aMember: Metadata;
let agent: Subscription;
const agentAsked: string[] = [];

beforeAll(async () => {
  stack = await startStack({ env: { CINDERBLOCK_QUIESCE_TIMEOUT_MS: "200" } });
  db = createDb({ url: stack.database.url, max: 2 });
  client = new Client(stack.address, credentials.createInsecure());
  // Project A: one of everything.
  const project = uniqueName("iso-");
  aMember = identity(project, "alice");
  const md = aMember;
  // A's private volume type (an administrator's, with access for A) and its QoS specs; its extra spec is
  // vendor-scoped, one the scheduler's CapabilitiesFilter ignores, so that its volumes land.
  const admin = identity(uniqueName("iso-admins-"), "root", "admin");
  const types = new proto.VolumeTypesServiceClient(stack.address, credentials.createInsecure());
  const privateType = (
    await call<proto.CreateVolumeTypeResponse>((done) =>
      types.createVolumeType(
        { name: uniqueName("a-type-"), description: "", isPublic: false, extraSpecs: { "vendor:k": "v" } },
        admin,
        done,
      ),
    )
  ).volumeType as proto.VolumeType;
  await call((done) => types.addVolumeTypeAccess({ id: privateType.id, projectId: project }, admin, done));
  const qos = (
    await call<proto.CreateQosSpecsResponse>((done) =>
      types.createQosSpecs(
        {
          name: uniqueName("a-qos-"),
          consumer: proto.QosConsumer.QOS_CONSUMER_FRONT_END,
          specs: { total_iops_sec: "9" },
        },
        admin,
        done,
      ),
    )
  ).qosSpecs as proto.QosSpecs;
  await call((done) => types.associateQosSpecs({ id: qos.id, volumeTypeId: privateType.id }, admin, done));
  types.close();
  const volume = await createSettledVolume(stack.volumes, md, {
    name: "a-root",
    metadata: { owner: "a" },
    volumeType: privateType.id,
  });
  const snapshot = (
    await call<proto.CreateSnapshotResponse>((done) =>
      stack.snapshots.createSnapshot(
        proto.CreateSnapshotRequest.fromPartial({ volumeId: volume.id, name: "a-snap", metadata: { owner: "a" } }),
        md,
        done,
      ),
    )
  ).snapshot as proto.Snapshot;
  const settled = await untilEnd<proto.WatchSnapshotResponse>(stack.snapshots.watchSnapshot({ id: snapshot.id }, md));
  expect(settled.at(-1)?.snapshot?.status).toBe(proto.SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);
  const groups = new proto.GroupSnapshotsServiceClient(stack.address, credentials.createInsecure());
  const group = (
    await call<proto.CreateGroupSnapshotResponse>((done) =>
      groups.createGroupSnapshot(
        { name: "a-group", description: "", volumeIds: [volume.id], clientRequestId: "" },
        md,
        done,
      ),
    )
  ).groupSnapshot as proto.GroupSnapshot;
  const groupDone = await waitUntil(
    () => call<proto.GetGroupSnapshotResponse>((done) => groups.getGroupSnapshot({ id: group.id }, md, done)),
    (r) => r.groupSnapshot?.status !== proto.GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_CREATING,
    30_000,
  );
  groups.close();
  expect(groupDone.groupSnapshot?.status).toBe(proto.GroupSnapshotStatus.GROUP_SNAPSHOT_STATUS_AVAILABLE);
  const instance = randomUUID();
  const attached = await call<proto.AttachVolumeResponse>((done) =>
    stack.volumes.attachVolume(
      { volumeId: volume.id, instanceId: instance, mountpoint: "/dev/vda", connector: { host: "compute-a" } },
      md,
      done,
    ),
  );
  a = {
    volume: volume.id,
    snapshot: snapshot.id,
    groupSnapshot: group.id,
    attachment: attached.attachment?.id ?? "",
    instance,
    project,
    volumeType: privateType.id,
    qosSpecs: qos.id,
  };
  // A's compute agent: any request reaching it is a freeze or thaw someone caused.
  agent = stack.nc.subscribe(`${stack.prefix}.v1.compute.${instance}.*`);
  void (async () => {
    for await (const m of agent) {
      agentAsked.push(m.subject);
      m.respond(JSON.stringify({ ok: true }));
    }
  })();
  await stack.nc.flush();
});

afterAll(async () => {
  agent?.unsubscribe();
  client?.close();
  await db?.close();
  await stack?.stop();
});

/** B's answers by method and variant, kept for the administrators' part. */
const bAnswers: Array<{ method: MethodDefinition; forced: boolean; outcome: Outcome }> = [];

describe("tenant isolation", () => {
  it("covers every public method", () => {
    expect(METHODS.length).toBeGreaterThanOrEqual(30);
    // Every request can be built: each id field is known to the suite.
    for (const m of METHODS) requestOf(m, a, true);
  });

  it("another project's calls on A's ids answer as on random ids, and change none of A's rows", async () => {
    const b = identity(uniqueName("iso-"), "bob");
    const before = await rowsOf(a);
    // The rows compared are there: A's one of everything.
    for (const table of [
      "volumes",
      "snapshots",
      "group_snapshots",
      "volume_attachments",
      "quota_usages",
      "volume_type_projects",
    ]) {
      expect(before[table]?.length, table).toBeGreaterThan(0);
    }
    const table: string[] = [];
    const mismatches: string[] = [];
    for (const m of METHODS) {
      for (const forced of [false, true]) {
        const random: Ids = {
          volume: randomUUID(),
          snapshot: randomUUID(),
          groupSnapshot: randomUUID(),
          attachment: randomUUID(),
          instance: randomUUID(),
          project: uniqueName("iso-"),
          volumeType: randomUUID(),
          qosSpecs: randomUUID(),
        };
        const [onA, onRandom] = await Promise.all([
          invoke(m, requestOf(m, a, forced), b),
          invoke(m, requestOf(m, random, forced), b),
        ]);
        bAnswers.push({ method: m, forced, outcome: onA });
        const seenA = { code: onA.code, text: placeheld(onA.text, a) };
        const seenRandom = { code: onRandom.code, text: placeheld(onRandom.text, random) };
        if (JSON.stringify(seenA) !== JSON.stringify(seenRandom)) {
          mismatches.push(`${methodName(m)}${forced ? " (forced)" : ""}: ${JSON.stringify([seenA, seenRandom])}`);
        }
        table.push(`${`${methodName(m)}${forced ? " (forced)" : ""}`.padEnd(34)} ${onA.code.padEnd(20)} ${seenA.text}`);
      }
    }
    console.log(`B's calls on A's ids (method → code, message):\n${table.join("\n")}`);
    expect(mismatches).toEqual([]);
    // Nothing B asked for reached the services as A's: no internal error, no success on A's data.
    for (const { outcome } of bAnswers) expect(["INTERNAL", "UNKNOWN"]).not.toContain(outcome.code);
    expect(await rowsOf(a)).toEqual(before);
    expect(agentAsked).toEqual([]);
  });

  it("a member of A without the admin role is refused every administrator's call, naming the rule, and nothing changes", async () => {
    const adminRules = new Set(
      Object.entries(RULE_DEFAULTS)
        .filter(([, r]) => r.check === "rule:admin_api" || r.check === "rule:context_is_admin")
        .map(([name]) => name),
    );
    // The administrators' calls are those B was refused by an admin rule (found, not listed here).
    const adminCalls = bAnswers.filter(({ outcome }) =>
      [...adminRules].some((rule) => outcome.text === `policy does not allow ${rule} to be performed`),
    );
    const member = identity(a.project, "carol", "member");
    const before = await rowsOf(a);
    const named = new Set<string>();
    const table: string[] = [];
    for (const { method, forced } of adminCalls) {
      const outcome = await invoke(method, requestOf(method, a, forced), member);
      table.push(`${`${methodName(method)}${forced ? " (forced)" : ""}`.padEnd(34)} ${outcome.code} ${outcome.text}`);
      expect(outcome.code, methodName(method)).toBe("PERMISSION_DENIED");
      const rule = /^policy does not allow (\S+) to be performed$/.exec(outcome.text)?.[1] ?? "";
      expect(adminRules, `${methodName(method)}: ${outcome.text}`).toContain(rule);
      named.add(rule);
    }
    console.log(`A's member (no admin role) on the administrators' calls:\n${table.join("\n")}`);
    // Every administrator's rule was met by some call: none escaped the suite.
    expect([...named].sort()).toEqual([...adminRules].sort());
    expect(await rowsOf(a)).toEqual(before);
    expect(agentAsked).toEqual([]);
  });
});
