import type { AddressInfo } from "node:net";
import { type ApiUseCases, CinderblockError, createPageTokens } from "@cinderblock/domain";
import { createGuard, createNoauthAuthenticator, loadPolicy } from "@cinderblock/rpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_METHOD_RULES } from "../rules.js";
import { SNAPSHOT, VOLUME } from "./rows.fixtures.js";
import { createRestServer } from "./server.js";

// The REST boundary with fake use cases: a real node:http server on 127.0.0.1:0, the real noauth
// guard and default policy, and fetch as the client.

const calls: Array<{ name: string; args: unknown[] }> = [];
const fakes: Partial<ApiUseCases> = {
  getVolume: async (_ctx, id) => {
    if (id !== VOLUME.id) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
    return VOLUME;
  },
  listAttachments: async () => [],
  listVolumes: async (ctx, input) => {
    calls.push({ name: "listVolumes", args: [ctx.projectId, input.allProjects, input.pageToken, input.pageSize] });
    return { items: [VOLUME], nextPageToken: input.pageSize === 1 ? "signed-token" : "" };
  },
  createSnapshot: async (ctx, input) => {
    calls.push({ name: "createSnapshot", args: [ctx.projectId, input] });
    return SNAPSHOT;
  },
  createVolume: async () => {
    throw new CinderblockError("RESOURCE_EXHAUSTED", "quota exceeded for gigabytes: 1000 of 1000 in use");
  },
  extendVolume: async (_ctx, id, size) => {
    calls.push({ name: "extendVolume", args: [id, size] });
    return VOLUME;
  },
};
const useCases = new Proxy(fakes as ApiUseCases, {
  get: (target, name) =>
    target[name as keyof ApiUseCases] ??
    (() => {
      throw new Error(`unexpected use case ${String(name)}`);
    }),
});

let base = "";
const server = createRestServer({
  useCases,
  guard: createGuard({
    authenticator: createNoauthAuthenticator(),
    policy: loadPolicy(undefined),
    methods: API_METHOD_RULES,
  }),
  strategy: "noauth",
  limits: { maxStringLength: 65536, maxEntries: 1000, maxCollectionBytes: 1 << 20 },
  pageTokens: createPageTokens("secret"),
  quotaDefaults: { volumes: 10, snapshots: 10, gigabytes: 1000 },
  report: () => {},
});

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const PROJECT = VOLUME.projectId;
const call = (path: string, init: RequestInit & { token?: string; version?: string } = {}) =>
  fetch(`${base}${path}`, {
    ...init,
    headers: {
      "content-type": "application/json",
      ...(init.token === "" ? {} : { "x-auth-token": init.token ?? `alice:${PROJECT}` }),
      ...(init.version ? { "openstack-api-version": `volume ${init.version}` } : {}),
    },
  });

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

  it("answers 404 for a lookup by anything but an id (clients then search by name)", async () => {
    const res = await call("/v3/volumes/data");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ itemNotFound: { code: 404, message: "Volume data could not be found." } });
  });

  it("answers 404 for an unknown path and 405 for a known one with another method", async () => {
    expect((await call("/v3/nothing-here/at-all")).status).toBe(404);
    expect((await call("/v3/limits", { method: "DELETE" })).status).toBe(405);
  });
});
