import { basename } from "node:path";
import * as proto from "@cinderblock/proto";
import {
  call,
  callError,
  createSettledVolume,
  createVolumeType,
  identity,
  type Stack,
  startStack,
  uniqueName,
  untilEnd,
} from "@cinderblock/testing";
import { credentials, type Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The operator's APIs end to end (issue 15): Cinder's os-services, get_pools and
// os-availability-zone on the api, with the scheduler and the volume host honouring what the
// operator sets (a disabled or frozen backend gets nothing new).

let stack: Stack;
let ops: proto.ServicesServiceClient;
let types: proto.VolumeTypesServiceClient;
const admin = identity(uniqueName("ops-admins-"), "admin-user", "admin");
const BACKEND = "vol1@file";
/** The file backend's one pool: its directory's name (Cinder's `vol1@file#<pool>`). */
const poolName = () => basename(stack.dataDir);

const listServices = (request: Partial<proto.ListServicesRequest> = {}, md: Metadata = admin) =>
  call<proto.ListServicesResponse>((done) =>
    ops.listServices(proto.ListServicesRequest.fromPartial(request), md, done),
  ).then((r) => r.services);

const disable = (host: string, disabledReason: string, md: Metadata = admin) =>
  call<proto.DisableServiceResponse>((done) => ops.disableService({ host, binary: "", disabledReason }, md, done));
const enable = (host: string, md: Metadata = admin) =>
  call<proto.EnableServiceResponse>((done) => ops.enableService({ host, binary: "" }, md, done));
const freeze = (host: string, md: Metadata = admin) =>
  call<proto.FreezeHostResponse>((done) => ops.freezeHost({ host }, md, done));
const thaw = (host: string, md: Metadata = admin) =>
  call<proto.ThawHostResponse>((done) => ops.thawHost({ host }, md, done));
const listPools = (request: Partial<proto.ListPoolsRequest>, md: Metadata = admin) =>
  call<proto.ListPoolsResponse>((done) => ops.listPools(proto.ListPoolsRequest.fromPartial(request), md, done)).then(
    (r) => r.pools,
  );

const getVolume = (id: string, md: Metadata) =>
  call<proto.GetVolumeResponse>((done) => stack.volumes.getVolume({ id }, md, done)).then(
    (r) => r.volume as proto.Volume,
  );

beforeAll(async () => {
  stack = await startStack();
  ops = new proto.ServicesServiceClient(stack.address, credentials.createInsecure());
  types = new proto.VolumeTypesServiceClient(stack.address, credentials.createInsecure());
}, 120_000);

afterAll(async () => {
  ops?.close();
  types?.close();
  await stack?.stop();
});

describe("operating the backends", () => {
  it("lists the volume backend as an enabled, up cinder-volume service, by host and binary", async () => {
    const [service, ...others] = await listServices();
    expect(others).toEqual([]);
    expect(service).toMatchObject({
      binary: "cinder-volume",
      host: BACKEND,
      zone: "nova",
      status: proto.ServiceStatus.SERVICE_STATUS_ENABLED,
      state: proto.ServiceState.SERVICE_STATE_UP,
      disabledReason: "",
      frozen: false,
      backendState: "up",
    });
    expect(Date.now() - (service?.heartbeatAt?.getTime() ?? 0)).toBeLessThan(60_000);
    expect((await listServices({ host: "vol1" })).map((s) => s.host)).toEqual([BACKEND]);
    expect((await listServices({ host: BACKEND, binary: "cinder-volume" })).map((s) => s.host)).toEqual([BACKEND]);
    expect(await listServices({ host: "vol2" })).toEqual([]);
    expect(await listServices({ binary: "cinder-scheduler" })).toEqual([]);
  });

  it("a disabled backend gets no new volume (the reason in status_detail); enabled again, volumes land", async () => {
    const reason = "disk swap in bay 3";
    const [disabled] = (await disable(BACKEND, reason)).services;
    expect(disabled).toMatchObject({
      host: BACKEND,
      status: proto.ServiceStatus.SERVICE_STATUS_DISABLED,
      disabledReason: reason,
    });
    expect((await listServices())[0]).toMatchObject({
      status: proto.ServiceStatus.SERVICE_STATUS_DISABLED,
      disabledReason: reason,
    });
    const project = uniqueName("ops-");
    const md = identity(project, "alice", "member");
    try {
      const refused = await createSettledVolume(stack.volumes, md, { name: "nowhere" });
      expect(refused).toMatchObject({
        status: proto.VolumeStatus.VOLUME_STATUS_ERROR,
        statusReason: "no valid backend was found",
        statusDetail: "",
      });
      // An administrator sees which backend refused it and why.
      const seenByAdmin = await getVolume(refused.id, identity(project, "root", "admin"));
      expect(seenByAdmin.statusDetail).toContain("no valid backend was found");
      expect(seenByAdmin.statusDetail).toContain(`${BACKEND}#${poolName()}: disabled: ${reason}`);
    } finally {
      const [enabled] = (await enable(BACKEND)).services;
      expect(enabled).toMatchObject({ status: proto.ServiceStatus.SERVICE_STATUS_ENABLED, disabledReason: "" });
    }
    const landed = await createSettledVolume(stack.volumes, md, { name: "here" });
    expect(landed).toMatchObject({ status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE, host: BACKEND });
  });

  it("a frozen backend takes no new volume or snapshot and deletes nothing until it is thawed", async () => {
    const project = uniqueName("ops-");
    const md = identity(project, "alice", "member");
    const volume = await createSettledVolume(stack.volumes, md, { name: "held" });
    expect(volume.status).toBe(proto.VolumeStatus.VOLUME_STATUS_AVAILABLE);
    const [frozen] = (await freeze("vol1")).services;
    expect(frozen).toMatchObject({ host: BACKEND, frozen: true });
    try {
      expect((await listServices())[0]?.frozen).toBe(true);
      const again = await callError(freeze(BACKEND));
      expect(again.code).toBe(status.FAILED_PRECONDITION);
      expect(again.details).toContain("already frozen");
      const snapshot = await callError(
        call((done) =>
          stack.snapshots.createSnapshot(
            proto.CreateSnapshotRequest.fromPartial({ volumeId: volume.id, name: "s" }),
            md,
            done,
          ),
        ),
      );
      expect(snapshot.code).toBe(status.FAILED_PRECONDITION);
      expect(snapshot.details).toContain(`backend ${BACKEND} of volume ${volume.id} is frozen`);
      const deleted = await callError(
        call((done) => stack.volumes.deleteVolume({ id: volume.id, cascade: false, force: false }, md, done)),
      );
      expect(deleted.code).toBe(status.FAILED_PRECONDITION);
      expect(deleted.details).toContain("is frozen");
      const refused = await createSettledVolume(stack.volumes, md, { name: "nowhere" });
      expect(refused).toMatchObject({
        status: proto.VolumeStatus.VOLUME_STATUS_ERROR,
        statusReason: "no valid backend was found",
      });
      const detail = (await getVolume(refused.id, identity(project, "root", "admin"))).statusDetail;
      expect(detail).toContain(`${BACKEND}#${poolName()}: frozen`);
    } finally {
      const [thawed] = (await thaw(BACKEND)).services;
      expect(thawed?.frozen).toBe(false);
    }
    const thawAgain = await callError(thaw(BACKEND));
    expect(thawAgain.code).toBe(status.FAILED_PRECONDITION);
    expect(thawAgain.details).toContain("not frozen");
    // Thawed: the snapshot is taken, and the volume deleted with it.
    const snapshot = await call<proto.CreateSnapshotResponse>((done) =>
      stack.snapshots.createSnapshot(
        proto.CreateSnapshotRequest.fromPartial({ volumeId: volume.id, name: "s" }),
        md,
        done,
      ),
    );
    const seen = await untilEnd<proto.WatchSnapshotResponse>(
      stack.snapshots.watchSnapshot({ id: snapshot.snapshot?.id ?? "" }, md),
    );
    expect(seen.at(-1)?.snapshot?.status).toBe(proto.SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);
    const deleting = await call<proto.DeleteVolumeResponse>((done) =>
      stack.volumes.deleteVolume({ id: volume.id, cascade: true, force: false }, md, done),
    );
    expect(deleting.volume?.status).toBe(proto.VolumeStatus.VOLUME_STATUS_DELETING);
  });

  it("refuses an unknown backend, a malformed host and an overlong reason", async () => {
    const unknown = await callError(disable("vol9@nothing", "x"));
    expect(unknown).toMatchObject({ code: status.NOT_FOUND });
    expect(unknown.details).toContain("vol9@nothing");
    expect((await callError(freeze("a#b"))).code).toBe(status.INVALID_ARGUMENT);
    expect((await callError(enable(""))).code).toBe(status.INVALID_ARGUMENT);
    const long = await callError(disable(BACKEND, "r".repeat(256)));
    expect(long.code).toBe(status.INVALID_ARGUMENT);
    expect(long.details).toContain("disabled_reason");
    expect((await listServices())[0]?.status).toBe(proto.ServiceStatus.SERVICE_STATUS_ENABLED);
  });

  it("lists the pool with its capacity and Cinder-named capabilities, and filters by a type's extra specs", async () => {
    const [pool, ...others] = await listPools({ detail: true });
    expect(others).toEqual([]);
    expect(pool?.name).toBe(`${BACKEND}#${poolName()}`);
    const caps = pool?.capabilities ?? {};
    expect(caps).toMatchObject({
      volume_backend_name: "file",
      pool_name: poolName(),
      driver: "file",
      storage_protocol: "file",
      thin_provisioning_support: true,
      backend_state: "up",
    });
    for (const key of ["total_capacity_gb", "free_capacity_gb", "allocated_capacity_gb", "reserved_percentage"]) {
      expect(typeof caps[key], key).toBe("number");
    }
    expect(caps.total_capacity_gb).toBeGreaterThan(0);
    // Without detail: names only (Cinder's summary).
    expect(await listPools({})).toEqual([{ name: `${BACKEND}#${poolName()}`, capabilities: undefined }]);
    expect(await listPools({ name: `${BACKEND}#${poolName()}` })).toHaveLength(1);
    expect(await listPools({ name: `${BACKEND}#other` })).toEqual([]);
    const createType = (extraSpecs: Record<string, string>) =>
      createVolumeType(types, admin, { name: uniqueName("ops-type-"), extraSpecs });
    const fits = await createType({ volume_backend_name: "file", thin_provisioning_support: "<is> True" });
    const elsewhere = await createType({ volume_backend_name: "rbd" });
    expect((await listPools({ volumeType: fits.name })).map((p) => p.name)).toEqual([`${BACKEND}#${poolName()}`]);
    expect(await listPools({ volumeType: elsewhere.id })).toEqual([]);
    const missing = await callError(listPools({ volumeType: "no-such-type" }));
    expect(missing.code).toBe(status.NOT_FOUND);
    // A disabled backend's pools are not the scheduler's to place in.
    await disable(BACKEND, "pools");
    try {
      expect(await listPools({})).toEqual([]);
    } finally {
      await enable(BACKEND);
    }
  });

  it("lists the availability zone as available to anyone, unavailable while its only backend is disabled", async () => {
    const member = identity(uniqueName("ops-"), "alice", "member");
    const zones = () =>
      call<proto.ListAvailabilityZonesResponse>((done) => ops.listAvailabilityZones({}, member, done)).then(
        (r) => r.availabilityZones,
      );
    expect(await zones()).toEqual([{ name: "nova", available: true }]);
    await disable(BACKEND, "zone");
    try {
      expect(await zones()).toEqual([{ name: "nova", available: false }]);
    } finally {
      await enable(BACKEND);
    }
    expect(await zones()).toEqual([{ name: "nova", available: true }]);
  });

  it("refuses a member every administrator's method, naming the rule, and changes nothing", async () => {
    const member = identity(uniqueName("ops-"), "alice", "member");
    const refusals: Array<[string, Promise<unknown>]> = [
      ["volume_extension:services:index", listServices({}, member)],
      ["volume_extension:services:update", enable(BACKEND, member)],
      ["volume_extension:services:update", disable(BACKEND, "mine", member)],
      ["volume:freeze_host", freeze(BACKEND, member)],
      ["volume:thaw_host", thaw(BACKEND, member)],
      ["scheduler_extension:scheduler_stats:get_pools", listPools({ detail: true }, member)],
    ];
    for (const [rule, attempt] of refusals) {
      const error = await callError(attempt);
      expect(error.code, rule).toBe(status.PERMISSION_DENIED);
      expect(error.details).toBe(`policy does not allow ${rule} to be performed`);
    }
    expect((await listServices())[0]).toMatchObject({
      status: proto.ServiceStatus.SERVICE_STATUS_ENABLED,
      frozen: false,
    });
  });
});
