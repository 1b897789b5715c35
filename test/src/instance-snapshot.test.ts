import { randomUUID } from "node:crypto";
import { createDb, type DbHandle } from "@cinderblock/db";
import {
  type AttachVolumeResponse,
  type CreateVolumeRequest,
  type GetVolumeResponse,
  type SnapshotInstanceResponse,
  SnapshotStatus,
  type Volume,
  VolumeStatus,
} from "@cinderblock/proto";
import {
  call,
  callError,
  createSettledVolume,
  identity,
  type Stack,
  startStack,
  uniqueName,
} from "@cinderblock/testing";
import { type Metadata, status } from "@grpc/grpc-js";
import type { Subscription } from "@nats-io/transport-node";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Attachments and the seed's story: Nova snapshots a volume-backed instance. A compute-agent
// stand-in on NATS answers quiesce/unquiesce and records when it froze and thawed.

let stack: Stack;
let db: DbHandle;

beforeAll(async () => {
  stack = await startStack({ env: { CINDERBLOCK_QUIESCE_TIMEOUT_MS: "500" } });
  db = createDb({ url: stack.database.url, max: 2 });
});

afterAll(async () => {
  await db?.close();
  await stack?.stop();
});

function volume(md: Metadata, name: string, extra: Partial<CreateVolumeRequest> = {}): Promise<Volume> {
  return createSettledVolume(stack.volumes, md, { name, ...extra });
}

function attach(md: Metadata, volumeId: string, instanceId: string, mountpoint: string) {
  return call<AttachVolumeResponse>((done) =>
    stack.volumes.attachVolume({ volumeId, instanceId, mountpoint, connector: { host: "compute1" } }, md, done),
  );
}

/**
 * A compute agent for one instance: replies ok and logs each request, with how many of the
 * instance's snapshots were still creating at that moment (a thaw must find none).
 */
async function computeAgent(instanceId: string, log: string[], answer = true): Promise<Subscription> {
  const sub = stack.nc.subscribe(`${stack.prefix}.v1.compute.${instanceId}.*`);
  void (async () => {
    for await (const m of sub) {
      const [row] = await db.db.execute<{ n: number }>(
        sql`select count(*)::int as n from snapshots where status = 'creating' and description = ${`snapshot of instance ${instanceId}`}`,
      );
      log.push(`${m.subject.split(".").at(-1)} (${row?.n ?? 0} creating)`);
      if (answer) m.respond(JSON.stringify({ ok: true }));
    }
  })();
  await stack.nc.flush(); // the server knows the subscription before anyone asks
  return sub;
}

describe("attachments", () => {
  it("attaches with the driver's connection info, refuses a second attach, and detaches", async () => {
    const p = uniqueName("att-");
    const md = identity(p);
    const v = await volume(md, "data");
    const instance = randomUUID();
    const events = stack.nc.subscribe(`${stack.prefix}.notifications.*.volume.*.*`);
    const seen: string[] = [];
    void (async () => {
      for await (const m of events) {
        const n = m.json<{ eventType: string; payload: { volume_id: string; instance_uuid: string } }>();
        if (n.payload.volume_id === v.id) seen.push(`${n.eventType} ${n.payload.instance_uuid}`);
      }
    })();
    await stack.nc.flush();
    const res = await attach(md, v.id, instance, "/dev/vdb");
    expect(res.attachment).toMatchObject({ volumeId: v.id, instanceId: instance, attachStatus: "attached" });
    expect(res.driverVolumeType).toBe("local");
    expect(res.connectionData.device_path).toMatch(new RegExp(`volume-${v.id}\\.img$`));
    const got = await call<GetVolumeResponse>((done) => stack.volumes.getVolume({ id: v.id }, md, done));
    expect(got.volume?.status).toBe(VolumeStatus.VOLUME_STATUS_IN_USE);
    expect(got.volume?.attachments.map((a) => a.instanceId)).toEqual([instance]);
    // The connector is kept with the attachment; DetachVolume hands it back to the driver.
    expect(got.volume?.attachments[0]?.connector).toEqual({ host: "compute1" });
    const second = await callError(attach(md, v.id, randomUUID(), "/dev/vdc"));
    expect(second).toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: `volume ${v.id} is in-use and not multiattach`,
    });
    const badInstance = await callError(attach(md, v.id, "no.dots", "/dev/vdc"));
    expect(badInstance.code).toBe(status.INVALID_ARGUMENT);
    const detached = await call<{ volume?: Volume }>((done) =>
      stack.volumes.detachVolume({ volumeId: v.id, attachmentId: res.attachment?.id ?? "" }, md, done),
    );
    expect(detached.volume).toMatchObject({ status: VolumeStatus.VOLUME_STATUS_AVAILABLE, attachments: [] });
    // The refused attaches announced nothing; the attach and the detach each a start and an end.
    const expected = ["attach.start", "attach.end", "detach.start", "detach.end"].map((e) => `volume.${e} ${instance}`);
    for (let i = 0; i < 200 && seen.length < expected.length; i++) await new Promise((r) => setTimeout(r, 50));
    events.unsubscribe();
    expect(seen).toEqual(expected);
  });

  it("attaches a multiattach volume to two instances", async () => {
    const md = identity(uniqueName("att-"));
    const v = await volume(md, "shared", { multiattach: true });
    await attach(md, v.id, randomUUID(), "/dev/vdb");
    await attach(md, v.id, randomUUID(), "/dev/vdb");
    const got = await call<GetVolumeResponse>((done) => stack.volumes.getVolume({ id: v.id }, md, done));
    expect(got.volume?.attachments).toHaveLength(2);
  });
});

describe("SnapshotInstance (volume-backed instance snapshot)", () => {
  it("freezes, snapshots every attached volume with force, waits for available, thaws, and returns the mapping", async () => {
    const md = identity(uniqueName("nova-"));
    const instance = randomUUID();
    const root = await volume(md, "root", { bootable: true, imageMetadata: { image_name: "debian-12" } });
    const data = await volume(md, "data", { sizeGb: 2 });
    await attach(md, root.id, instance, "/dev/vda");
    await attach(md, data.id, instance, "/dev/vdb");
    const log: string[] = [];
    const agent = await computeAgent(instance, log);
    try {
      const image = await call<SnapshotInstanceResponse>((done) =>
        stack.snapshots.snapshotInstance(
          { instanceId: instance, imageName: "snapshot1", quiesce: true, quiesceRequired: true },
          md,
          done,
        ),
      );
      // Frozen before any snapshot existed; thawed only once none was still being taken.
      expect(log).toEqual(["quiesce (0 creating)", "unquiesce (0 creating)"]);
      expect(image.quiesced).toBe(true);
      expect(image.snapshots.map((s) => [s.volumeId, s.name, s.status])).toEqual([
        [root.id, "snapshot for snapshot1", SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE],
        [data.id, "snapshot for snapshot1", SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE],
      ]);
      expect(image.snapshots[0]?.imageMetadata).toEqual({ image_name: "debian-12" });
      expect(image.blockDeviceMapping).toEqual([
        {
          sourceType: "snapshot",
          destinationType: "volume",
          snapshotId: image.snapshots[0]?.id,
          bootIndex: 0,
          deviceName: "/dev/vda",
          volumeSize: 1,
          deleteOnTermination: false,
        },
        {
          sourceType: "snapshot",
          destinationType: "volume",
          snapshotId: image.snapshots[1]?.id,
          bootIndex: -1,
          deviceName: "/dev/vdb",
          volumeSize: 2,
          deleteOnTermination: false,
        },
      ]);
    } finally {
      agent.unsubscribe();
    }
  });

  it("fails when a required quiesce gets no answer, and still sends the thaw", async () => {
    const md = identity(uniqueName("nova-"));
    const instance = randomUUID();
    const root = await volume(md, "root");
    await attach(md, root.id, instance, "/dev/vda");
    const log: string[] = [];
    const agent = await computeAgent(instance, log, false);
    try {
      const refused = await callError(
        call((done) =>
          stack.snapshots.snapshotInstance(
            { instanceId: instance, imageName: "img", quiesce: true, quiesceRequired: true },
            md,
            done,
          ),
        ),
      );
      expect(refused).toMatchObject({
        code: status.FAILED_PRECONDITION,
        details: `instance ${instance} did not confirm the quiesce in time`,
      });
      expect(log).toEqual(["quiesce (0 creating)", "unquiesce (0 creating)"]);
      // Optional quiesce: no agent answer, the snapshot is still taken (crash-consistent only).
      const image = await call<SnapshotInstanceResponse>((done) =>
        stack.snapshots.snapshotInstance(
          { instanceId: instance, imageName: "img", quiesce: true, quiesceRequired: false },
          md,
          done,
        ),
      );
      expect(image.quiesced).toBe(false);
      expect(image.snapshots).toHaveLength(1);
    } finally {
      agent.unsubscribe();
    }
  });

  it("refuses an instance with no attached volumes", async () => {
    const md = identity(uniqueName("nova-"));
    const refused = await callError(
      call((done) =>
        stack.snapshots.snapshotInstance(
          { instanceId: randomUUID(), imageName: "img", quiesce: false, quiesceRequired: false },
          md,
          done,
        ),
      ),
    );
    expect(refused.code).toBe(status.FAILED_PRECONDITION);
  });
});

describe("instance ownership", () => {
  function snapshotInstance(md: Metadata, instanceId: string) {
    return call<SnapshotInstanceResponse>((done) =>
      stack.snapshots.snapshotInstance(
        { instanceId, imageName: "img", quiesce: true, quiesceRequired: true },
        md,
        done,
      ),
    );
  }

  it("another project can neither attach to a project's instance nor freeze it: refused as an unknown instance, the agent never asked", async () => {
    const a = identity(uniqueName("own-a-"));
    const b = identity(uniqueName("own-b-"));
    const instance = randomUUID();
    await attach(a, (await volume(a, "root")).id, instance, "/dev/vda");
    const own = await volume(b, "mine");
    const log: string[] = [];
    const agent = await computeAgent(instance, log);
    try {
      const attachRefused = await callError(attach(b, own.id, instance, "/dev/vdb"));
      expect(attachRefused).toMatchObject({
        code: status.FAILED_PRECONDITION,
        details: `instance ${instance} has volumes of another project attached; only an administrator can attach to it`,
      });
      const got = await call<GetVolumeResponse>((done) => stack.volumes.getVolume({ id: own.id }, b, done));
      expect(got.volume).toMatchObject({ status: VolumeStatus.VOLUME_STATUS_AVAILABLE, attachments: [] });
      // B's SnapshotInstance of A's instance answers exactly as for an instance nobody has.
      const refused = await callError(snapshotInstance(b, instance));
      const stranger = randomUUID();
      const unknown = await callError(snapshotInstance(b, stranger));
      expect([refused.code, refused.details.replace(instance, "<id>")]).toEqual([
        unknown.code,
        unknown.details.replace(stranger, "<id>"),
      ]);
      expect(refused.code).toBe(status.FAILED_PRECONDITION);
      // The agent answers: A's own SnapshotInstance is the first thing that reached it.
      await snapshotInstance(a, instance);
      expect(log).toEqual(["quiesce (0 creating)", "unquiesce (0 creating)"]);
    } finally {
      agent.unsubscribe();
    }
  });

  it("an administrator may attach across projects; then only an administrator may freeze the instance", async () => {
    const a = identity(uniqueName("own-a-"));
    const project = uniqueName("own-b-");
    const member = identity(project);
    const admin = identity(project, "root", "admin");
    const instance = randomUUID();
    await attach(a, (await volume(a, "root")).id, instance, "/dev/vda");
    const shared = await volume(member, "data");
    const log: string[] = [];
    const agent = await computeAgent(instance, log);
    try {
      await attach(admin, shared.id, instance, "/dev/vdb");
      // Neither project owns every volume on the instance now: their members are refused, unfrozen.
      for (const md of [member, a]) {
        const refused = await callError(snapshotInstance(md, instance));
        expect(refused).toMatchObject({
          code: status.FAILED_PRECONDITION,
          details: `instance ${instance} has volumes of another project attached; only an administrator can snapshot it`,
        });
      }
      expect(log).toEqual([]);
      const image = await snapshotInstance(admin, instance);
      expect(log).toEqual(["quiesce (0 creating)", "unquiesce (0 creating)"]);
      // The administrator's call snapshots its own project's volume (A's stays A's to snapshot).
      expect(image.snapshots.map((s) => s.volumeId)).toEqual([shared.id]);
    } finally {
      agent.unsubscribe();
    }
  });
});
