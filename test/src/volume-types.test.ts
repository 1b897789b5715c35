import * as proto from "@cinderblock/proto";
import {
  call,
  callError,
  createSettledVolume,
  createVolumeType,
  identity,
  notificationsStreamName,
  type Stack,
  startStack,
  uniqueName,
  untilEnd,
} from "@cinderblock/testing";
import { credentials, type Metadata, status } from "@grpc/grpc-js";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Volume types end to end (issue 15): the api, scheduler and volume host together. Types are made
// by an administrator and named by volumes; snapshots and clones inherit them; QoS specs reach
// AttachVolume's connection data; per-type quotas count.

let stack: Stack;
let types: proto.VolumeTypesServiceClient;
let quotas: proto.QuotasServiceClient;
const admin = identity("vt-admins", "root", "admin");

const createType = (request: Partial<proto.CreateVolumeTypeRequest>) => createVolumeType(types, admin, request);

const createVolume = (md: Metadata, request: Partial<proto.CreateVolumeRequest>) =>
  call<proto.CreateVolumeResponse>((done) =>
    stack.volumes.createVolume(proto.CreateVolumeRequest.fromPartial({ name: "v", sizeGb: 1, ...request }), md, done),
  ).then((r) => r.volume as proto.Volume);

async function availableSnapshot(md: Metadata, volumeId: string): Promise<proto.Snapshot> {
  const created = await call<proto.CreateSnapshotResponse>((done) =>
    stack.snapshots.createSnapshot(proto.CreateSnapshotRequest.fromPartial({ volumeId, name: "s" }), md, done),
  );
  const seen = await untilEnd<proto.WatchSnapshotResponse>(
    stack.snapshots.watchSnapshot({ id: created.snapshot?.id ?? "" }, md),
  );
  const last = seen.at(-1)?.snapshot as proto.Snapshot;
  expect(last.status).toBe(proto.SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);
  return last;
}

beforeAll(async () => {
  stack = await startStack();
  types = new proto.VolumeTypesServiceClient(stack.address, credentials.createInsecure());
  quotas = new proto.QuotasServiceClient(stack.address, credentials.createInsecure());
}, 120_000);

afterAll(async () => {
  types?.close();
  quotas?.close();
  await stack?.stop();
});

describe("volume types", () => {
  it("creates volumes of a type with extra specs, by name and by id; members see only user-visible specs", async () => {
    const gold = await createType({
      name: uniqueName("gold-"),
      description: "fast",
      extraSpecs: { volume_backend_name: "file", multiattach: "<is> True" },
    });
    expect(gold.extraSpecs).toEqual({ volume_backend_name: "file", multiattach: "<is> True" });
    const md = identity(uniqueName("vt-"));
    const byName = await createSettledVolume(stack.volumes, md, { volumeType: gold.name });
    const byId = await createSettledVolume(stack.volumes, md, { volumeType: gold.id });
    for (const v of [byName, byId]) {
      expect(v).toMatchObject({
        status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE,
        volumeType: gold.name,
        volumeTypeId: gold.id,
      });
    }
    const seen = await call<proto.GetVolumeTypeResponse>((done) => types.getVolumeType({ id: gold.id }, md, done));
    expect(seen.volumeType?.extraSpecs).toEqual({ multiattach: "<is> True" });
    const unknown = await callError(createVolume(md, { volumeType: "no-such-type" }));
    expect(unknown).toMatchObject({
      code: status.NOT_FOUND,
      details: 'volume_type: volume type "no-such-type" not found',
    });
    // A member may not manage types.
    const denied = await callError(
      call((done) => types.createVolumeType(proto.CreateVolumeTypeRequest.fromPartial({ name: "x" }), md, done)),
    );
    expect(denied).toMatchObject({
      code: status.PERMISSION_DENIED,
      details: "policy does not allow volume_extension:type_create to be performed",
    });
  });

  it("a private type is usable only by the projects given access", async () => {
    const secret = await createType({ name: uniqueName("secret-"), isPublic: false });
    const a = uniqueName("vt-a-");
    const mdA = identity(a);
    const mdB = identity(uniqueName("vt-b-"));
    expect((await callError(createVolume(mdA, { volumeType: secret.name }))).code).toBe(status.NOT_FOUND);
    await call((done) => types.addVolumeTypeAccess({ id: secret.id, projectId: a }, admin, done));
    const access = await call<proto.ListVolumeTypeAccessResponse>((done) =>
      types.listVolumeTypeAccess({ id: secret.id }, admin, done),
    );
    expect(access.projectIds).toEqual([a]);
    expect((await createSettledVolume(stack.volumes, mdA, { volumeType: secret.id })).volumeTypeId).toBe(secret.id);
    expect((await callError(createVolume(mdB, { volumeType: secret.id }))).code).toBe(status.NOT_FOUND);
    const listed = (md: Metadata) =>
      call<proto.ListVolumeTypesResponse>((done) =>
        types.listVolumeTypes({ pageSize: 1000, pageToken: "" }, md, done),
      ).then((r) => r.volumeTypes.map((t) => t.id));
    expect(await listed(mdA)).toContain(secret.id);
    expect(await listed(mdB)).not.toContain(secret.id);
    expect((await callError(call((done) => types.getVolumeType({ id: secret.id }, mdB, done)))).code).toBe(
      status.NOT_FOUND,
    );
  });

  it("a project's default type is what a volume without one gets", async () => {
    const silver = await createType({ name: uniqueName("silver-") });
    const project = uniqueName("vt-");
    const md = identity(project);
    expect((await createVolume(md, {})).volumeType).toBe("__DEFAULT__");
    await call((done) => types.setDefaultVolumeType({ projectId: project, volumeType: silver.name }, admin, done));
    const shown = await call<proto.GetDefaultVolumeTypeResponse>((done) =>
      types.getDefaultVolumeType({ projectId: project }, admin, done),
    );
    expect(shown).toMatchObject({ volumeType: { id: silver.id }, projectOverride: true });
    expect((await createVolume(md, {})).volumeTypeId).toBe(silver.id);
    await call((done) => types.unsetDefaultVolumeType({ projectId: project }, admin, done));
    expect((await createVolume(md, {})).volumeType).toBe("__DEFAULT__");
  });

  it("a snapshot inherits its volume's type, and a volume from it the snapshot's; a type in use is not deleted", async () => {
    const bronze = await createType({ name: uniqueName("bronze-") });
    const other = await createType({ name: uniqueName("other-") });
    const md = identity(uniqueName("vt-"));
    const volume = await createSettledVolume(stack.volumes, md, { volumeType: bronze.name });
    const snapshot = await availableSnapshot(md, volume.id);
    expect(snapshot).toMatchObject({ volumeType: bronze.name, volumeTypeId: bronze.id });
    const clone = await createSettledVolume(stack.volumes, md, { snapshotId: snapshot.id, sizeGb: 0 });
    expect(clone).toMatchObject({ status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE, volumeTypeId: bronze.id });
    const refused = await callError(createVolume(md, { snapshotId: snapshot.id, sizeGb: 0, volumeType: other.id }));
    expect(refused.code).toBe(status.INVALID_ARGUMENT);
    expect(refused.details).toMatch(/^volume_type: /);
    const inUse = await callError(call((done) => types.deleteVolumeType({ id: bronze.id }, admin, done)));
    expect(inUse).toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: `volume type ${bronze.name} is in use by 2 volume(s) and 1 snapshot(s)`,
    });
    await call((done) => types.deleteVolumeType({ id: other.id }, admin, done));
    expect((await callError(call((done) => types.getVolumeType({ id: other.id }, admin, done)))).code).toBe(
      status.NOT_FOUND,
    );
  });

  it("front-end QoS specs of the volume's type come back in AttachVolume's connection data", async () => {
    const limited = await createType({ name: uniqueName("limited-") });
    const qos = await call<proto.CreateQosSpecsResponse>((done) =>
      types.createQosSpecs(
        {
          name: uniqueName("qos-"),
          consumer: proto.QosConsumer.QOS_CONSUMER_FRONT_END,
          specs: { total_iops_sec_per_gb: "100", read_bytes_sec: "1048576" },
        },
        admin,
        done,
      ),
    );
    const qosId = qos.qosSpecs?.id ?? "";
    await call((done) => types.associateQosSpecs({ id: qosId, volumeTypeId: limited.id }, admin, done));
    const md = identity(uniqueName("vt-"));
    const volume = await createSettledVolume(stack.volumes, md, { volumeType: limited.name, sizeGb: 3 });
    const attached = await call<proto.AttachVolumeResponse>((done) =>
      stack.volumes.attachVolume(
        { volumeId: volume.id, instanceId: uniqueName("inst-"), mountpoint: "/dev/vdb", connector: { host: "c1" } },
        md,
        done,
      ),
    );
    expect(JSON.parse(attached.connectionData.qos_specs ?? "null")).toEqual({
      total_iops_sec: "300",
      read_bytes_sec: "1048576",
    });
    // Associated: deleted only with force.
    const refused = await callError(call((done) => types.deleteQosSpecs({ id: qosId, force: false }, admin, done)));
    expect(refused.code).toBe(status.FAILED_PRECONDITION);
    await call((done) => types.deleteQosSpecs({ id: qosId, force: true }, admin, done));
    // A volume of a type without QoS: no qos_specs key.
    const plain = await createSettledVolume(stack.volumes, md, {});
    const attachedPlain = await call<proto.AttachVolumeResponse>((done) =>
      stack.volumes.attachVolume(
        { volumeId: plain.id, instanceId: uniqueName("inst-"), mountpoint: "/dev/vdc", connector: { host: "c1" } },
        md,
        done,
      ),
    );
    expect(attachedPlain.connectionData.qos_specs).toBeUndefined();
  });

  it("per-type quotas still count, and refuse past a type's own limit", async () => {
    const gold = await createType({ name: uniqueName("quota-") });
    const project = uniqueName("vt-");
    const md = identity(project);
    await call((done) =>
      quotas.updateQuotas({ projectId: project, limits: { [`volumes_${gold.name}`]: 1 } }, admin, done),
    );
    await createSettledVolume(stack.volumes, md, { volumeType: gold.name, sizeGb: 2 });
    const refused = await callError(createVolume(md, { volumeType: gold.name }));
    expect(refused).toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      details: `quota exceeded for volumes_${gold.name}: requested 1, 1 of 1 in use`,
    });
    const usage = await call<proto.GetQuotasResponse>((done) => quotas.getQuotas({ projectId: "" }, md, done));
    expect(usage.quotas).toContainEqual({ resource: `gigabytes_${gold.name}`, limit: -1, inUse: 2 });
    expect(usage.quotas).toContainEqual({ resource: `volumes_${gold.name}`, limit: 1, inUse: 1 });
  });
});

describe("volume type notifications", () => {
  it("an admin's WatchEvents receives Cinder's volume_type.create, from volumeType.api, with the type", async () => {
    const events = new proto.EventsServiceClient(stack.address, credentials.createInsecure());
    const jsm = await jetstreamManager(stack.nc);
    const start = (await jsm.streams.info(notificationsStreamName(stack.prefix))).state.last_seq + 1;
    const created = await createType({
      name: uniqueName("announced-"),
      description: "announced",
      extraSpecs: { volume_backend_name: "file" },
    });
    // From the sequence before the create: the event is replayed however late the watch starts.
    const stream = events.watchEvents(
      { resourceId: "", eventTypes: ["volume_type.create"], allProjects: true, startSequence: start },
      admin,
    );
    const event = await new Promise<proto.Notification | undefined>((resolve, reject) => {
      stream.on("data", (m: proto.WatchEventsResponse) => {
        if (m.event?.payload?.volume_types?.id === created.id) resolve(m.event);
      });
      stream.on("error", reject);
      stream.on("end", () => resolve(undefined));
    });
    stream.cancel();
    events.close();
    expect(event).toMatchObject({
      eventType: "volume_type.create",
      priority: "INFO",
      publisherId: "volumeType.api",
      payload: {
        volume_types: {
          id: created.id,
          name: created.name,
          description: "announced",
          is_public: true,
          extra_specs: { volume_backend_name: "file" },
          qos_specs_id: null,
          deleted: false,
          deleted_at: null,
        },
      },
    });
  });
});
