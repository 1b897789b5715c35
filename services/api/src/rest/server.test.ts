import { type ApiUseCases, CinderblockError } from "@cinderblock/domain";
import { describe, expect, it } from "vitest";
import { ATTACHMENT, POOL, QOS, SERVICE, SNAPSHOT, TYPE, VOLUME } from "./rows.fixtures.js";
import { fakeRestServer } from "./server.fixtures.js";

// The REST boundary with fake use cases: a real node:http server on 127.0.0.1:0, the real noauth
// guard and default policy, and fetch as the client.

const calls: Array<{ name: string; args: unknown[] }> = [];
/** Each listAttachments: the caller's project, the volume, and whether any project's is read. */
const attachmentReads: Array<[string, string, boolean]> = [];
const fakes: Partial<ApiUseCases> = {
  getVolume: async (_ctx, id) => {
    if (id !== VOLUME.id) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
    return VOLUME;
  },
  listAttachments: async (ctx, id, options) => {
    attachmentReads.push([ctx.projectId, id, options?.allProjects ?? false]);
    return [];
  },
  findAttachments: async (ctx, filter) => {
    calls.push({ name: "findAttachments", args: [ctx.projectId, filter] });
    return filter.id === undefined || filter.id === ATTACHMENT.id ? [ATTACHMENT] : [];
  },
  listVolumes: async (ctx, input) => {
    calls.push({ name: "listVolumes", args: [ctx.projectId, input.allProjects, input.pageToken, input.pageSize] });
    return { items: [VOLUME], nextPageToken: input.pageSize === 1 && input.pageToken === "" ? "signed-token" : "" };
  },
  createSnapshot: async (ctx, input) => {
    calls.push({ name: "createSnapshot", args: [ctx.projectId, input] });
    return SNAPSHOT;
  },
  createVolume: async () => {
    throw new CinderblockError("RESOURCE_EXHAUSTED", "quota exceeded for gigabytes: 1000 of 1000 in use");
  },
  attachVolume: async (_ctx, input) => {
    calls.push({ name: "attachVolume", args: [input] });
    return { attachment: ATTACHMENT, connection: { driverVolumeType: "local", data: {} } };
  },
  detachVolume: async (_ctx, id, attachmentId) => {
    calls.push({ name: "detachVolume", args: [id, attachmentId] });
  },
  listServices: async (_ctx, filter) => {
    calls.push({ name: "listServices", args: [filter] });
    return [SERVICE];
  },
  enableService: async (_ctx, selector) => {
    calls.push({ name: "enableService", args: [selector] });
    return [SERVICE];
  },
  disableService: async (_ctx, selector) => {
    calls.push({ name: "disableService", args: [selector] });
    return [SERVICE];
  },
  freezeHost: async (_ctx, host) => {
    if (host === "invalid_host")
      throw new CinderblockError("NOT_FOUND", `service cinder-volume on host ${host} not found`);
    calls.push({ name: "freezeHost", args: [host] });
    return [SERVICE];
  },
  thawHost: async (_ctx, host) => {
    calls.push({ name: "thawHost", args: [host] });
    return [SERVICE];
  },
  listPools: async (_ctx, filter) => {
    calls.push({ name: "listPools", args: [filter] });
    return [POOL];
  },
  createQosSpecs: async (_ctx, input) => {
    calls.push({ name: "createQosSpecs", args: [input] });
    return QOS;
  },
  getQosSpecs: async (_ctx, id) => {
    if (id !== QOS.qos.id) throw new CinderblockError("NOT_FOUND", `qos specs ${id} not found`);
    return QOS;
  },
  listQosSpecs: async () => ({ items: [QOS], nextPageToken: "" }),
  getVolumeType: async () => TYPE,
  setQosSpecsKeys: async (_ctx, id, specs) => {
    calls.push({ name: "setQosSpecsKeys", args: [id, specs] });
    return QOS;
  },
  deleteQosSpecsKeys: async (_ctx, id, keys) => {
    calls.push({ name: "deleteQosSpecsKeys", args: [id, keys] });
    return QOS;
  },
  deleteQosSpecs: async (_ctx, id, force) => {
    calls.push({ name: "deleteQosSpecs", args: [id, force] });
  },
  associateQosSpecs: async (_ctx, id, typeId) => {
    calls.push({ name: "associateQosSpecs", args: [id, typeId] });
  },
  disassociateQosSpecs: async (_ctx, id, typeId) => {
    calls.push({ name: "disassociateQosSpecs", args: [id, typeId] });
  },
  updateVolume: async (_ctx, id, input) => {
    calls.push({ name: "updateVolume", args: [id, input] });
    return VOLUME;
  },
  deleteVolume: async (ctx, id, cascade, force) => {
    calls.push({ name: "deleteVolume", args: [id, cascade, force, ctx.isAdmin] });
    return VOLUME;
  },
  extendVolume: async (_ctx, id, size) => {
    calls.push({ name: "extendVolume", args: [id, size] });
    return VOLUME;
  },
};

const PROJECT = VOLUME.projectId;
const call = fakeRestServer(fakes, `alice:${PROJECT}`);

describe("Cinder v3 REST listener", () => {
  it("serves the versions document at / (300) and /v3/ (200) without a token", async () => {
    const root = await call("/", { token: "" });
    expect(root.status).toBe(300);
    const v3 = await call("/v3/", { token: "" });
    expect(v3.status).toBe(200);
    const body = (await v3.json()) as { versions: Array<{ id: string; min_version: string; version: string }> };
    expect(body.versions[0]).toMatchObject({ id: "v3.0", min_version: "3.0", version: "3.64" });
  });

  it("echoes the negotiated microversion with Vary, and refuses one out of range with 406", async () => {
    const ok = await call(`/v3/${PROJECT}/volumes/${VOLUME.id}`, { version: "3.41" });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("openstack-api-version")).toBe("volume 3.41");
    expect(ok.headers.get("vary")).toBe("OpenStack-API-Version");
    const none = await call(`/v3/${PROJECT}/volumes/${VOLUME.id}`);
    expect(none.headers.get("openstack-api-version")).toBe("volume 3.0");
    const refused = await call(`/v3/${PROJECT}/volumes/${VOLUME.id}`, { version: "3.99" });
    expect(refused.status).toBe(406);
    expect(await refused.json()).toEqual({
      notAcceptable: { code: 406, message: expect.stringContaining("3.99") },
    });
  });

  it("serves paths with and without the project id", async () => {
    const bare = await call(`/v3/volumes/${VOLUME.id}`);
    expect(bare.status).toBe(200);
    const body = (await bare.json()) as { volume: Record<string, unknown> };
    expect(body.volume).toMatchObject({ id: VOLUME.id, bootable: "false", created_at: "2026-12-06T10:00:00.123000" });
  });

  it("answers Cinder's fault bodies: 401, 404 itemNotFound, 400 for another project's path, 413 overLimit", async () => {
    const anonymous = await call(`/v3/volumes/${VOLUME.id}`, { token: "" });
    expect(anonymous.status).toBe(401);
    const missing = await call(`/v3/${PROJECT}/volumes/9c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f70`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({
      itemNotFound: { code: 404, message: expect.stringContaining("not found") },
    });
    const elsewhere = await call(`/v3/other-project/volumes/${VOLUME.id}`);
    expect(elsewhere.status).toBe(400);
    expect(((await elsewhere.json()) as { badRequest: { message: string } }).badRequest.message).toMatch(
      /doesn't match Context's project_id/,
    );
    const over = await call(`/v3/${PROJECT}/volumes`, {
      method: "POST",
      body: JSON.stringify({ volume: { size: 1 } }),
    });
    expect(over.status).toBe(413);
    expect(await over.json()).toEqual({ overLimit: { code: 413, message: expect.stringContaining("quota") } });
  });

  it("holds REST calls to the gRPC api's policy: a member may not create a volume type (403)", async () => {
    const res = await call("/v3/types", { method: "POST", body: JSON.stringify({ volume_type: { name: "gold" } }) });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({
      forbidden: { code: 403, message: "policy does not allow volume_extension:type_create to be performed" },
    });
  });

  it('takes force as the string "True" and answers a create with 202', async () => {
    const res = await call("/v3/snapshots", {
      method: "POST",
      body: JSON.stringify({ snapshot: { volume_id: VOLUME.id, name: "s", force: "True" } }),
    });
    expect(res.status).toBe(202);
    expect(calls.at(-1)).toMatchObject({ name: "createSnapshot", args: [PROJECT, { force: true, name: "s" }] });
    const bad = await call("/v3/snapshots", {
      method: "POST",
      body: JSON.stringify({ snapshot: { volume_id: VOLUME.id, name: "s", force: "maybe" } }),
    });
    expect(bad.status).toBe(400);
  });

  it("runs os-extend (202) and refuses an unknown action by name (400)", async () => {
    const res = await call(`/v3/volumes/${VOLUME.id}/action`, {
      method: "POST",
      body: JSON.stringify({ "os-extend": { new_size: "3" } }),
    });
    expect(res.status).toBe(202);
    expect(calls.at(-1)).toEqual({ name: "extendVolume", args: [VOLUME.id, 3] });
    const unknown = await call(`/v3/volumes/${VOLUME.id}/action`, {
      method: "POST",
      body: JSON.stringify({ "os-frobnicate": {} }),
    });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { badRequest: { message: string } }).badRequest.message).toBe(
      "There is no such action: os-frobnicate",
    );
  });

  it("serves all_tenants to those the policy allows it, and the caller's own project to the rest, as Cinder", async () => {
    const member = await call("/v3/volumes/detail?all_tenants=1&name=data");
    expect(member.status).toBe(200);
    expect(calls.at(-1)).toEqual({ name: "listVolumes", args: [PROJECT, false, "", 1000] });
    const admin = await call("/v3/volumes?all_tenants=True", { token: `root:${PROJECT}:admin` });
    expect(admin.status).toBe(200);
    expect(calls.at(-1)).toEqual({ name: "listVolumes", args: [PROJECT, true, "", 1000] });
    expect(((await admin.json()) as { volumes: unknown[] }).volumes).toEqual([
      { id: VOLUME.id, name: VOLUME.name, links: expect.any(Array) },
    ]);
  });

  it("pages with limit and a next link whose marker and page_token the next request follows", async () => {
    const first = await call("/v3/volumes?limit=1&sort=name:asc");
    const body = (await first.json()) as { volumes_links: Array<{ rel: string; href: string }> };
    const next = new URL(body.volumes_links[0]?.href ?? "");
    expect(body.volumes_links[0]?.rel).toBe("next");
    expect(Object.fromEntries(next.searchParams)).toEqual({
      limit: "1",
      sort: "name:asc",
      marker: VOLUME.id,
      page_token: "signed-token",
    });
    expect((await call(`/v3/volumes${next.search}`)).status).toBe(200);
    expect(calls.at(-1)).toEqual({ name: "listVolumes", args: [PROJECT, false, "signed-token", 1] });
  });

  it("takes one sort key (and a trailing id in its direction), refusing a second key by name", async () => {
    const two = await call("/v3/volumes?sort=name:asc,created_at:desc");
    expect(two.status).toBe(400);
    expect(((await two.json()) as { badRequest: { message: string } }).badRequest.message).toBe(
      "sort: more than one sort key is not supported by Cinderblock (name is followed by the id in the same direction; created_at:desc cannot be added)",
    );
    expect((await call("/v3/snapshots?sort_key=name,status&sort_dir=asc,asc")).status).toBe(400);
    expect((await call("/v3/volumes?sort_key=name,id&sort_dir=asc,asc")).status).toBe(200);
    expect((await call("/v3/volumes?sort=created_at,id")).status).toBe(200);
    expect((await call("/v3/volumes?sort=name:asc,id:desc")).status).toBe(400);
  });

  it("links a next page after a full page, as Cinder, even when it will be empty (tempest's pagination)", async () => {
    // The fake has no page after the one page_token names: a full page (1 of limit 1) still links on,
    // with the marker only, and the page after the marker is then looked up by it.
    const res = await call(`/v3/${PROJECT}/volumes?limit=1&marker=${VOLUME.id}&page_token=signed-token`);
    const body = (await res.json()) as { volumes_links: Array<{ rel: string; href: string }> };
    const next = new URL(body.volumes_links[0]?.href ?? "");
    expect(Object.fromEntries(next.searchParams)).toEqual({ limit: "1", marker: VOLUME.id });
    const unlimited = (await (await call(`/v3/${PROJECT}/volumes`)).json()) as Record<string, unknown>;
    expect(unlimited).not.toHaveProperty("volumes_links");
  });

  it("sums the caller's volumes at volumes/summary from 3.12 (metadata from 3.36), and has none before", async () => {
    expect((await call(`/v3/${PROJECT}/volumes/summary`)).status).toBe(404);
    const v312 = await call(`/v3/${PROJECT}/volumes/summary`, { version: "3.12" });
    expect(v312.status).toBe(200);
    expect(await v312.json()).toEqual({ "volume-summary": { total_size: VOLUME.sizeGb, total_count: 1 } });
    const v336 = await call(`/v3/${PROJECT}/volumes/summary`, { version: "3.36" });
    expect(await v336.json()).toEqual({
      "volume-summary": { total_size: VOLUME.sizeGb, total_count: 1, metadata: { tier: ["gold"] } },
    });
  });

  it("skips offset rows: asks for offset + limit and drops the first offset (tempest's offset list)", async () => {
    const res = await call(`/v3/${PROJECT}/volumes?offset=1&limit=3`);
    expect(calls.at(-1)).toEqual({ name: "listVolumes", args: [PROJECT, false, "", 4] });
    expect(await res.json()).toEqual({ volumes: [] });
    const bad = await call(`/v3/${PROJECT}/volumes?offset=-1`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ badRequest: { code: 400, message: "offset: must be 0 or more" } });
  });

  it("answers a marker that names nothing with 404, as Cinder's MarkerNotFound", async () => {
    const res = await call(`/v3/${PROJECT}/volumes?marker=00000000-0000-4000-8000-000000000000`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      itemNotFound: { code: 404, message: "Marker 00000000-0000-4000-8000-000000000000 could not be found." },
    });
  });

  it("answers 404 for a resource path with a trailing slash (a show or delete of the id ''), as Cinder", async () => {
    expect((await call(`/v3/${PROJECT}/volumes/`)).status).toBe(404);
    expect((await call(`/v3/${PROJECT}/volumes/`, { method: "DELETE" })).status).toBe(404);
    expect((await call(`/v3/${PROJECT}/volumes/`, { method: "PUT", body: "{}" })).status).toBe(404);
    expect((await call(`/v3/${PROJECT}/volumes`)).status).toBe(200);
  });

  it("answers a snapshot create without volume_id with 404 (the volume None), as Cinder", async () => {
    const res = await call(`/v3/${PROJECT}/snapshots`, {
      method: "POST",
      body: JSON.stringify({ snapshot: { volume_id: null, name: "s" } }),
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ itemNotFound: { code: 404, message: "Volume None could not be found." } });
  });

  it("answers 404 for a lookup by anything but an id (clients then search by name)", async () => {
    const res = await call("/v3/volumes/data");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ itemNotFound: { code: 404, message: "Volume data could not be found." } });
  });

  it("answers 404 for an unknown path and 405 for a known one with another method", async () => {
    expect((await call("/v3/nothing-here/at-all")).status).toBe(404);
    expect((await call("/v3/limits", { method: "DELETE" })).status).toBe(405);
  });

  const action = (body: unknown, token?: string) =>
    call(`/v3/${PROJECT}/volumes/${VOLUME.id}/action`, { method: "POST", body: JSON.stringify(body), token });
  const message = async (res: Response) =>
    ((await res.json()) as { badRequest: { message: string } }).badRequest.message;

  it("runs os-attach onto AttachVolume (host_name as the connector's host) and os-detach onto DetachVolume", async () => {
    const attached = await action({
      "os-attach": { instance_uuid: ATTACHMENT.instanceId, mountpoint: "/dev/vdb", host_name: "compute-1" },
    });
    expect(attached.status).toBe(202);
    expect(calls.at(-1)).toEqual({
      name: "attachVolume",
      args: [
        {
          volumeId: VOLUME.id,
          instanceId: ATTACHMENT.instanceId,
          mountpoint: "/dev/vdb",
          connector: { host: "compute-1" },
        },
      ],
    });
    const detached = await action({ "os-detach": { attachment_id: ATTACHMENT.id } });
    expect(detached.status).toBe(202);
    expect(calls.at(-1)).toEqual({ name: "detachVolume", args: [VOLUME.id, ATTACHMENT.id] });
  });

  it("refuses os-attach without instance_uuid or mountpoint, read-only, and os-detach of an unattached volume", async () => {
    const noInstance = await action({ "os-attach": { host_name: "compute-1", mountpoint: "/dev/vdb" } });
    expect(noInstance.status).toBe(400);
    expect(await message(noInstance)).toMatch(/^instance_uuid: is required/);
    const noMountpoint = await action({ "os-attach": { instance_uuid: ATTACHMENT.instanceId } });
    expect(await message(noMountpoint)).toBe("mountpoint: is required");
    const readOnly = await action({ "os-attach": { instance_uuid: "i-1", mountpoint: "/dev/vdb", mode: "ro" } });
    expect(await message(readOnly)).toBe("mode: read-only attach is not supported by Cinderblock");
    const unattached = await action({ "os-detach": {} });
    expect(unattached.status).toBe(400);
    expect(await message(unattached)).toMatch(/has no attachment to detach/);
  });

  it("runs os-force_delete as DeleteVolume with force for an administrator (202); a member gets 403", async () => {
    const refused = await action({ "os-force_delete": {} });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({
      forbidden: {
        code: 403,
        message: "policy does not allow volume_extension:volume_admin_actions:force_delete to be performed",
      },
    });
    expect(calls.at(-1)?.name).not.toBe("deleteVolume");
    const forced = await action({ "os-force_delete": null }, `root:${PROJECT}:admin`);
    expect(forced.status).toBe(202);
    expect(calls.at(-1)).toEqual({ name: "deleteVolume", args: [VOLUME.id, false, true, true] });
  });

  describe("attachments (3.27)", () => {
    const v = "3.44";
    const attachmentBody = (attachment: unknown) => JSON.stringify({ attachment });
    const connector = { host: "compute-1", initiator: "iqn.x", multipath: false, mountpoint: "/dev/vdb" };

    it("creates an attachment onto AttachVolume with its connector (200, detail with connection_info)", async () => {
      const res = await call("/v3/attachments", {
        method: "POST",
        version: v,
        body: attachmentBody({ volume_uuid: VOLUME.id, instance_uuid: ATTACHMENT.instanceId, connector }),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        attachment: {
          id: ATTACHMENT.id,
          status: "attached",
          instance: ATTACHMENT.instanceId,
          volume_id: VOLUME.id,
          attached_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/),
          detached_at: "",
          attach_mode: "rw",
          connection_info: {},
        },
      });
      expect(calls.at(-1)).toEqual({
        name: "attachVolume",
        args: [
          {
            volumeId: VOLUME.id,
            instanceId: ATTACHMENT.instanceId,
            mountpoint: "/dev/vdb",
            connector: { host: "compute-1", initiator: "iqn.x", multipath: "false", mountpoint: "/dev/vdb" },
          },
        ],
      });
    });

    it("refuses a create without a connector or volume_uuid, read-only mode (3.54), and before 3.27 (404)", async () => {
      const post = (attachment: unknown, version = v) =>
        call("/v3/attachments", { method: "POST", version, body: attachmentBody(attachment) });
      const reserve = await post({ volume_uuid: VOLUME.id, instance_uuid: ATTACHMENT.instanceId });
      expect(reserve.status).toBe(400);
      expect(await message(reserve)).toMatch(/^connector: is required \(.*reserved attachment without a connector/);
      const empty = await post({ volume_uuid: VOLUME.id, instance_uuid: "i-1", connector: {} });
      expect(await message(empty)).toMatch(/^connector: is required/);
      expect(await message(await post({ instance_uuid: "i-1", connector }))).toBe("volume_uuid: is required");
      const readOnly = await post({ volume_uuid: VOLUME.id, instance_uuid: "i-1", connector, mode: "ro" }, "3.54");
      expect(await message(readOnly)).toBe("mode: read-only attach is not supported by Cinderblock");
      expect((await post({ volume_uuid: VOLUME.id, instance_uuid: "i-1", connector }, "3.26")).status).toBe(404);
    });

    it("lists (summary and detail, filters, all_tenants for admins), shows, and 404s an unknown attachment", async () => {
      const listed = await call(`/v3/${PROJECT}/attachments?volume_id=${VOLUME.id}&all_tenants=1`, { version: v });
      expect(await listed.json()).toEqual({
        attachments: [{ id: ATTACHMENT.id, status: "attached", instance: ATTACHMENT.instanceId, volume_id: VOLUME.id }],
      });
      expect(calls.at(-1)).toEqual({
        name: "findAttachments",
        args: [PROJECT, { allProjects: false, volumeId: VOLUME.id }],
      });
      await call("/v3/attachments/detail?all_tenants=1&instance_id=vm-1&status=attached", {
        version: v,
        token: `root:${PROJECT}:admin`,
      });
      expect(calls.at(-1)).toEqual({
        name: "findAttachments",
        args: [PROJECT, { allProjects: true, instanceId: "vm-1", attachStatus: "attached" }],
      });
      const shown = await call(`/v3/attachments/${ATTACHMENT.id}`, { version: v });
      expect(((await shown.json()) as { attachment: { connection_info: unknown } }).attachment.connection_info).toEqual(
        {},
      );
      const unknown = await call("/v3/attachments/00000000-0000-4000-8000-000000000000", { version: v });
      expect(unknown.status).toBe(404);
      expect((await call("/v3/attachments/not-an-id", { version: v })).status).toBe(404);
    });

    it("updates with the same connector (200), refuses another host, deletes onto DetachVolume, completes (204)", async () => {
      const same = await call(`/v3/attachments/${ATTACHMENT.id}`, {
        method: "PUT",
        version: v,
        body: attachmentBody({ connector }),
      });
      expect(same.status).toBe(200);
      const moved = await call(`/v3/attachments/${ATTACHMENT.id}`, {
        method: "PUT",
        version: v,
        body: attachmentBody({ connector: { host: "compute-2" } }),
      });
      expect(moved.status).toBe(400);
      expect(await message(moved)).toMatch(/^connector: attachment .* is connected to host 'compute-1'/);
      const deleted = await call(`/v3/attachments/${ATTACHMENT.id}`, { method: "DELETE", version: v });
      expect(deleted.status).toBe(200);
      expect(calls.find((c) => c.name === "detachVolume" && c.args[1] === ATTACHMENT.id)).toBeDefined();
      const action = (version: string, body: unknown = { "os-complete": null }) =>
        call(`/v3/attachments/${ATTACHMENT.id}/action`, { method: "POST", version, body: JSON.stringify(body) });
      expect((await action(v)).status).toBe(204);
      expect((await action("3.43")).status).toBe(404);
      expect(await message(await action(v, { "os-frobnicate": null }))).toBe("There is no such action: os-frobnicate");
    });
  });

  it("reads other projects' attachments for an administrator's all_tenants detail list only", async () => {
    await call("/v3/volumes/detail");
    expect(attachmentReads.at(-1)).toEqual([PROJECT, VOLUME.id, false]);
    await call("/v3/volumes/detail?all_tenants=1", { token: "root:other:admin" });
    expect(attachmentReads.at(-1)).toEqual(["other", VOLUME.id, true]);
    // A member's all_tenants is their own project's list: no other project's attachments.
    await call("/v3/volumes/detail?all_tenants=1", { token: "bob:other" });
    expect(attachmentReads.at(-1)).toEqual(["other", VOLUME.id, false]);
  });

  it("runs os-set_bootable as UpdateVolume with bootable (200), refusing a missing or non-boolean value", async () => {
    const set = await action({ "os-set_bootable": { bootable: "True" } });
    expect(set.status).toBe(200);
    expect(calls.at(-1)).toEqual({ name: "updateVolume", args: [VOLUME.id, { bootable: true }] });
    expect(await message(await action({ "os-set_bootable": {} }))).toBe("bootable: is required");
    expect(await message(await action({ "os-set_bootable": { bootable: "maybe" } }))).toBe(
      "Invalid value 'maybe' for bootable: must be a boolean",
    );
  });

  const admin = `root:${PROJECT}:admin`;
  const put = (path: string, body: unknown, token = admin) =>
    call(`/v3/${PROJECT}/os-services/${path}`, { method: "PUT", body: JSON.stringify(body), token });

  it("lists os-services for an administrator (filters host and binary); a member gets 403", async () => {
    const listed = await call("/v3/os-services?host=vol1%40file&binary=cinder-volume", { token: admin });
    expect(listed.status).toBe(200);
    expect(calls.at(-1)).toEqual({ name: "listServices", args: [{ host: "vol1@file", binary: "cinder-volume" }] });
    expect(((await listed.json()) as { services: unknown[] }).services).toEqual([
      expect.objectContaining({ binary: "cinder-volume", host: "vol1@file", status: "disabled", state: "up" }),
    ]);
    const member = await call("/v3/os-services");
    expect(member.status).toBe(403);
    expect(await member.json()).toEqual({
      forbidden: { code: 403, message: "policy does not allow volume_extension:services:index to be performed" },
    });
  });

  it("enables, disables (with a reason), freezes and thaws with Cinder's answers", async () => {
    const enabled = await put("enable", { host: "vol1@file", binary: "cinder-volume" });
    expect(enabled.status).toBe(200);
    expect(await enabled.json()).toEqual({
      disabled: false,
      disabled_reason: null,
      status: "enabled",
      host: "vol1@file",
      service: "",
      binary: "cinder-volume",
    });
    expect(calls.at(-1)).toEqual({ name: "enableService", args: [{ host: "vol1@file", binary: "cinder-volume" }] });
    const disabled = await put("disable-log-reason", {
      host: "vol1@file",
      binary: "cinder-volume",
      disabled_reason: " maintenance ",
    });
    expect(await disabled.json()).toMatchObject({ disabled: true, status: "disabled", disabled_reason: "maintenance" });
    expect(calls.at(-1)).toEqual({
      name: "disableService",
      args: [{ host: "vol1@file", binary: "cinder-volume", disabledReason: "maintenance" }],
    });
    const plain = await put("disable", { host: "vol1@file", service: "cinder-volume" });
    expect(await plain.json()).toEqual({
      disabled: true,
      status: "disabled",
      host: "vol1@file",
      service: "cinder-volume",
      binary: "",
    });
    const frozen = await put("freeze", { host: "vol1" });
    expect(frozen.status).toBe(200);
    expect(await frozen.text()).toBe("");
    expect(calls.at(-1)).toEqual({ name: "freezeHost", args: ["vol1"] });
    expect((await put("thaw", { host: "vol1" })).status).toBe(200);
    expect(calls.at(-1)).toEqual({ name: "thawHost", args: ["vol1"] });
  });

  it("refuses a service update without host, binary or reason, an unknown action, and a member", async () => {
    expect(await message(await put("enable", { binary: "cinder-volume" }))).toBe("host: is required");
    expect(await message(await put("enable", { host: "vol1@file" }))).toBe("binary: is required");
    expect(await message(await put("disable-log-reason", { host: "h", binary: "cinder-volume" }))).toMatch(
      /^disabled_reason: is required/,
    );
    expect(await message(await put("failover_host", { host: "h" }))).toBe("Unknown action: failover_host");
    const member = await put("disable", { host: "h", binary: "cinder-volume" }, `alice:${PROJECT}`);
    expect(member.status).toBe(403);
    expect((await put("freeze", { host: "h" }, `alice:${PROJECT}`)).status).toBe(403);
    // A host that has no service: 400, as Cinder (tempest's test_freeze_host_with_invalid_host).
    const unknown = await put("freeze", { host: "invalid_host" });
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toEqual({ badRequest: { code: 400, message: "Host not found: invalid_host" } });
  });

  it("lists pools (detail; name from 3.28, volume_type from 3.35) for an administrator only", async () => {
    const summary = await call("/v3/scheduler-stats/get_pools?name=x&volume_type=gold", { token: admin });
    expect(await summary.json()).toEqual({ pools: [{ name: POOL.name }] });
    expect(calls.at(-1)).toEqual({ name: "listPools", args: [{ name: "", volumeType: "" }] });
    const detail = await call("/v3/scheduler-stats/get_pools?detail=True&name=x&volume_type=gold", {
      token: admin,
      version: "3.35",
    });
    expect(((await detail.json()) as { pools: Array<{ capabilities: object }> }).pools[0]?.capabilities).toMatchObject({
      volume_backend_name: "file",
      storage_protocol: "file",
    });
    expect(calls.at(-1)).toEqual({ name: "listPools", args: [{ name: "x", volumeType: "gold" }] });
    expect((await call("/v3/scheduler-stats/get_pools")).status).toBe(403);
  });

  it("creates, shows, lists, sets and unsets keys of, and deletes QoS specs as an administrator", async () => {
    const qos = `/v3/${PROJECT}/qos-specs`;
    const created = await call(qos, {
      method: "POST",
      token: admin,
      body: JSON.stringify({ qos_specs: { name: "fast", consumer: "front-end", total_iops_sec: "1000" } }),
    });
    expect(created.status).toBe(200);
    expect(calls.at(-1)).toEqual({
      name: "createQosSpecs",
      args: [{ name: "fast", consumer: "front-end", specs: { total_iops_sec: "1000" } }],
    });
    expect(await created.json()).toMatchObject({
      qos_specs: { id: QOS.qos.id, name: "fast", consumer: "front-end" },
      links: [expect.objectContaining({ rel: "self" }), expect.objectContaining({ rel: "bookmark" })],
    });
    const shown = await call(`${qos}/${QOS.qos.id}`, { token: admin });
    expect(((await shown.json()) as { qos_specs: { name: string } }).qos_specs.name).toBe("fast");
    const listed = await call(qos, { token: admin });
    expect(((await listed.json()) as { qos_specs: unknown[] }).qos_specs).toHaveLength(1);
    const byName = await call(`${qos}/fast`, { token: admin });
    expect(byName.status).toBe(404);
    const set = await call(`${qos}/${QOS.qos.id}`, {
      method: "PUT",
      token: admin,
      body: JSON.stringify({ qos_specs: { read_iops_sec: "500" } }),
    });
    expect(await set.json()).toEqual({ qos_specs: { read_iops_sec: "500" } });
    const unset = await call(`${qos}/${QOS.qos.id}/delete_keys`, {
      method: "PUT",
      token: admin,
      body: JSON.stringify({ keys: ["read_iops_sec"] }),
    });
    expect(unset.status).toBe(202);
    expect(calls.at(-1)).toEqual({ name: "deleteQosSpecsKeys", args: [QOS.qos.id, ["read_iops_sec"]] });
    const deleted = await call(`${qos}/${QOS.qos.id}?force=True`, { method: "DELETE", token: admin });
    expect(deleted.status).toBe(202);
    expect(calls.at(-1)).toEqual({ name: "deleteQosSpecs", args: [QOS.qos.id, true] });
    const member = await call(qos, { method: "POST", body: JSON.stringify({ qos_specs: { name: "x" } }) });
    expect(member.status).toBe(403);
    const nameless = await call(qos, { method: "POST", token: admin, body: JSON.stringify({ qos_specs: {} }) });
    expect(await message(nameless)).toBe("name: is required");
    const odd = await call(qos, {
      method: "POST",
      token: admin,
      body: JSON.stringify({ qos_specs: { name: "x", consumer: "sideways" } }),
    });
    expect(await message(odd)).toBe("consumer: must be front-end, back-end or both");
  });

  it("associates, lists associations of, and disassociates QoS specs (vol_type_id required)", async () => {
    const qos = `/v3/${PROJECT}/qos-specs/${QOS.qos.id}`;
    expect((await call(`${qos}/associate?vol_type_id=${TYPE.id}`, { token: admin })).status).toBe(202);
    expect(calls.at(-1)).toEqual({ name: "associateQosSpecs", args: [QOS.qos.id, TYPE.id] });
    const associations = await call(`${qos}/associations`, { token: admin });
    expect(await associations.json()).toEqual({
      qos_associations: [{ association_type: "volume_type", name: "gold", id: TYPE.id }],
    });
    expect((await call(`${qos}/disassociate?vol_type_id=${TYPE.id}`, { token: admin })).status).toBe(202);
    expect(calls.at(-1)).toEqual({ name: "disassociateQosSpecs", args: [QOS.qos.id, TYPE.id] });
    calls.length = 0;
    expect((await call(`${qos}/disassociate_all`, { token: admin })).status).toBe(202);
    expect(calls).toEqual([{ name: "disassociateQosSpecs", args: [QOS.qos.id, TYPE.id] }]);
    expect(await message(await call(`${qos}/associate`, { token: admin }))).toBe("vol_type_id: is required");
  });
});
