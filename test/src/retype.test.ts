import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import * as proto from "@cinderblock/proto";
import {
  call,
  callError,
  createSettledVolume,
  createVolumeType,
  identity,
  type Stack,
  settle,
  startStack,
  uniqueName,
  writeAt,
} from "@cinderblock/testing";
import { credentials, type Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Retype end to end (issue 15): api, scheduler and two volume hosts, each a file backend of its
// own (vol1@file and vol2@file2, same zone). In place when the volume's backend satisfies the new
// type; else refused with `never`, migrated with `on-demand` (the second host pulls the bytes from
// the first over mTLS, checks them, and the volume moves).

let stack: Stack;
let secondDir: string;
let types: proto.VolumeTypesServiceClient;
let quotas: proto.QuotasServiceClient;
const admin = identity("rt-admins", "root", "admin");

const createType = (name: string, extraSpecs: Record<string, string>) =>
  createVolumeType(types, admin, { name, extraSpecs });

const retype = (md: Metadata, id: string, newType: string, migrationPolicy = "") =>
  call<proto.RetypeVolumeResponse>((done) =>
    stack.volumes.retypeVolume({ id, newType, migrationPolicy }, md, done),
  ).then((r) => r.volume as proto.Volume);

const getVolume = (md: Metadata, id: string) =>
  call<proto.GetVolumeResponse>((done) => stack.volumes.getVolume({ id }, md, done)).then(
    (r) => r.volume as proto.Volume,
  );

/** The volume once it has left `retyping`. */
const settledRetype = (md: Metadata, id: string) =>
  settle(
    () => getVolume(md, id),
    (v) => v.status !== proto.VolumeStatus.VOLUME_STATUS_RETYPING,
    { timeoutMs: 60_000 },
  );

/** The project's per-type usage: resource → in use. */
async function usage(md: Metadata): Promise<Record<string, number>> {
  const r = await call<proto.GetQuotasResponse>((done) => quotas.getQuotas({ projectId: "" }, md, done));
  return Object.fromEntries(r.quotas.map((q) => [q.resource, q.inUse]));
}

const volumeFile = (dir: string, id: string) => join(dir, `volume-${id}.img`);

beforeAll(async () => {
  // A second volume host with a file backend of its own (vol2@file2), same zone.
  stack = await startStack({
    env: { CINDERBLOCK_REPORT_INTERVAL: "1" },
    volumeHosts: [{ host: "vol2", backend: "file2" }],
  });
  secondDir = stack.volumeHosts.get("vol2")?.dataDir ?? "";
  types = new proto.VolumeTypesServiceClient(stack.address, credentials.createInsecure());
  quotas = new proto.QuotasServiceClient(stack.address, credentials.createInsecure());
}, 120_000);

afterAll(async () => {
  types?.close();
  quotas?.close();
  await stack?.stop();
});

describe("retype", () => {
  it("in place when the volume's backend satisfies the new type: the type changes, quotas move", async () => {
    const plain = await createType(uniqueName("plain-"), { volume_backend_name: "file" });
    const thin = await createType(uniqueName("thin-"), {
      volume_backend_name: "file",
      thin_provisioning_support: "<is> True",
    });
    const md = identity(uniqueName("rt-"));
    const volume = await createSettledVolume(stack.volumes, md, { volumeType: plain.name, sizeGb: 2 });
    expect(volume.host).toBe("vol1@file");
    const accepted = await retype(md, volume.id, thin.name);
    expect(accepted.status).toBe(proto.VolumeStatus.VOLUME_STATUS_RETYPING);
    const done = await settledRetype(md, volume.id);
    expect(done).toMatchObject({
      status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE,
      volumeType: thin.name,
      volumeTypeId: thin.id,
      host: "vol1@file",
      statusReason: "",
    });
    const used = await usage(md);
    expect(used).toMatchObject({
      [`volumes_${thin.name}`]: 1,
      [`gigabytes_${thin.name}`]: 2,
      volumes: 1,
      gigabytes: 2,
    });
    expect(used[`volumes_${plain.name}`] ?? 0).toBe(0);
    expect(used[`gigabytes_${plain.name}`] ?? 0).toBe(0);
    // The same type again, an unknown one, a bad policy: refused, naming the field.
    expect(await callError(retype(md, volume.id, thin.id))).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^new_type: .* already of type/),
    });
    expect(await callError(retype(md, volume.id, "no-such-type"))).toMatchObject({
      code: status.NOT_FOUND,
      details: 'new_type: volume type "no-such-type" not found',
    });
    expect((await callError(retype(md, volume.id, plain.name, "sometimes"))).details).toMatch(/^migration_policy: /);
  });

  it("to a type only another backend satisfies: failed with `never`, migrated with `on-demand` (same bytes)", async () => {
    const here = await createType(uniqueName("here-"), { volume_backend_name: "file" });
    const there = await createType(uniqueName("there-"), { volume_backend_name: "file2" });
    const md = identity(uniqueName("rt-"));
    const volume = await createSettledVolume(stack.volumes, md, { volumeType: here.name, sizeGb: 1 });
    expect(volume.host).toBe("vol1@file");
    const source = volumeFile(stack.dataDir, volume.id);
    const head = randomBytes(3 * 1024 * 1024 + 17);
    const tail = randomBytes(4096);
    await writeAt(source, 4096, head);
    await writeAt(source, 1024 ** 3 - tail.length, tail);
    const original = await readFile(source);

    await retype(md, volume.id, there.name, "never");
    const refused = await settledRetype(md, volume.id);
    expect(refused).toMatchObject({
      status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE,
      volumeType: here.name,
      host: "vol1@file",
    });
    expect(refused.statusReason).toContain("no valid backend was found for the new type");
    expect(await usage(md)).toMatchObject({
      [`volumes_${here.name}`]: 1,
      [`gigabytes_${here.name}`]: 1,
      [`volumes_${there.name}`]: 0,
      [`gigabytes_${there.name}`]: 0,
    });

    await retype(md, volume.id, there.id, "on-demand");
    const moved = await settledRetype(md, volume.id);
    expect(moved).toMatchObject({
      status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE,
      volumeType: there.name,
      volumeTypeId: there.id,
      host: "vol2@file2",
      // The target's pool (a file backend's is its directory): Cinder's vol2@file2#<dir>.
      pool: basename(secondDir),
      migrationStatus: "success",
      statusReason: "",
    });
    const copy = await readFile(volumeFile(secondDir, volume.id));
    expect(copy.length).toBe(original.length);
    expect(copy.equals(original)).toBe(true);
    // The source's copy goes once the volume has moved.
    const gone = await settle(
      async () => existsSync(source),
      (exists) => !exists,
      { timeoutMs: 10_000 },
    );
    expect(gone).toBe(false);
    const used = await usage(md);
    expect(used).toMatchObject({
      [`volumes_${there.name}`]: 1,
      [`gigabytes_${there.name}`]: 1,
      [`volumes_${here.name}`]: 0,
      [`gigabytes_${here.name}`]: 0,
      volumes: 1,
      gigabytes: 1,
    });
    // It lives on vol2 now: deleting it removes the file there.
    await call((done) => stack.volumes.deleteVolume({ id: volume.id, cascade: false, force: false }, md, done));
    const deleted = await settle(
      async () => existsSync(volumeFile(secondDir, volume.id)),
      (exists) => !exists,
      { timeoutMs: 20_000 },
    );
    expect(deleted).toBe(false);
  });

  it("an in-use volume is retyped in place only, and goes back in-use", async () => {
    const here = await createType(uniqueName("here-"), { volume_backend_name: "file" });
    const there = await createType(uniqueName("there-"), { volume_backend_name: "file2" });
    const md = identity(uniqueName("rt-"));
    const volume = await createSettledVolume(stack.volumes, md, { volumeType: here.name });
    await call((done) =>
      stack.volumes.attachVolume(
        proto.AttachVolumeRequest.fromPartial({
          volumeId: volume.id,
          instanceId: "11111111-2222-3333-4444-555555555555",
          mountpoint: "/dev/vdb",
          connector: { host: "compute-1" },
        }),
        md,
        done,
      ),
    );
    const refused = await callError(retype(md, volume.id, there.name, "on-demand"));
    expect(refused).toMatchObject({ code: status.FAILED_PRECONDITION });
    expect(refused.details).toMatch(/^migration_policy: .* is in-use/);
    // In place is allowed in-use, and the volume goes back in-use.
    const sameBackend = await createType(uniqueName("same-"), { volume_backend_name: "file" });
    await retype(md, volume.id, sameBackend.name);
    expect(await settledRetype(md, volume.id)).toMatchObject({
      status: proto.VolumeStatus.VOLUME_STATUS_IN_USE,
      volumeType: sameBackend.name,
    });
  });
});
