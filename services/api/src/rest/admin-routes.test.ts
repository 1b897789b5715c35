import { type ApiUseCases, CinderblockError, type GroupSnapshotView } from "@cinderblock/domain";
import { beforeEach, describe, expect, it } from "vitest";
import { created, QOS, SNAPSHOT, TYPE, VOLUME } from "./rows.fixtures.js";
import { fakeRestServer } from "./server.fixtures.js";

// Manage existing snapshots, quota delete, default types and group snapshots over REST, with fake
// use cases behind a real node:http server, the real noauth guard and the default policy.

const PROJECT = VOLUME.projectId;
const ADMIN = `root:${PROJECT}:admin`;

const GROUP: GroupSnapshotView = {
  group: {
    id: "8c3f5a7b-9d1e-4f2a-b4c6-d8e0f2a4b6c8",
    projectId: PROJECT,
    userId: "alice",
    name: "nightly",
    description: "both disks",
    status: "available",
    statusReason: "",
    deleted: false,
    clientRequestId: null,
    requestHash: null,
    createdAt: created,
    updatedAt: created,
  },
  members: [{ ...SNAPSHOT, groupSnapshotId: "8c3f5a7b-9d1e-4f2a-b4c6-d8e0f2a4b6c8" }],
};

const MANAGEABLE = [
  { reference: "a.img", sourceVolumeId: "", sizeGb: 3, safeToManage: true, reasonNotSafe: "" },
  { reference: "c.img", sourceVolumeId: "", sizeGb: 1, safeToManage: false, reasonNotSafe: "not a regular file" },
  { reference: "b.img", sourceVolumeId: VOLUME.id, sizeGb: 2, safeToManage: true, reasonNotSafe: "" },
];

const qos = (id: string, name: string, consumer: "front-end" | "back-end", minutes: number) => ({
  ...QOS,
  qos: { ...QOS.qos, id, name, consumer, createdAt: new Date(created.getTime() + minutes * 60_000) },
});
const QOS_A = qos("00000000-0000-4000-8000-00000000000a", "alpha", "front-end", 1);
const QOS_B = qos("00000000-0000-4000-8000-00000000000b", "beta", "back-end", 2);
const QOS_C = qos("00000000-0000-4000-8000-00000000000c", "gamma", "back-end", 3);

let calls: Array<{ name: string; args: unknown[] }> = [];
let hasOwnDefault = true;
const fakes: Partial<ApiUseCases> = {
  listManageableSnapshots: async (_ctx, host) => {
    calls.push({ name: "listManageableSnapshots", args: [host] });
    return MANAGEABLE;
  },
  manageSnapshot: async (ctx, input) => {
    calls.push({ name: "manageSnapshot", args: [ctx.projectId, input] });
    return SNAPSHOT;
  },
  unmanageSnapshot: async (_ctx, id) => {
    calls.push({ name: "unmanageSnapshot", args: [id] });
  },
  deleteQuotas: async (_ctx, projectId) => {
    calls.push({ name: "deleteQuotas", args: [projectId] });
    return { projectId, quotas: [] };
  },
  updateQuotas: async (_ctx, projectId, limits) => {
    calls.push({ name: "updateQuotas", args: [projectId, limits] });
    return { projectId, quotas: [] };
  },
  getDefaultVolumeType: async (_ctx, projectId) => {
    calls.push({ name: "getDefaultVolumeType", args: [projectId] });
    return { type: TYPE, projectOverride: hasOwnDefault };
  },
  setDefaultVolumeType: async (_ctx, projectId, ref) => {
    if (ref !== TYPE.name && ref !== TYPE.id) {
      throw new CinderblockError("NOT_FOUND", `volume_type: volume type "${ref}" not found`);
    }
    return { projectId, volumeTypeId: TYPE.id };
  },
  unsetDefaultVolumeType: async (_ctx, projectId) => {
    calls.push({ name: "unsetDefaultVolumeType", args: [projectId] });
    if (!hasOwnDefault) throw new CinderblockError("NOT_FOUND", "no default of its own");
  },
  listDefaultVolumeTypes: async () => [{ projectId: PROJECT, volumeTypeId: TYPE.id }],
  // Two pages, as the use case reads them (by name).
  listQosSpecs: async (_ctx, input) =>
    input.pageToken === "" ? { items: [QOS_A, QOS_B], nextPageToken: "more" } : { items: [QOS_C], nextPageToken: "" },
  getGroupSnapshot: async (_ctx, id) => {
    if (id !== GROUP.group.id) throw new CinderblockError("NOT_FOUND", `group snapshot ${id} not found`);
    return GROUP;
  },
  listGroupSnapshots: async (ctx, input) => {
    calls.push({ name: "listGroupSnapshots", args: [ctx.projectId, input] });
    return { items: [GROUP], nextPageToken: input.pageSize === 1 ? "next-token" : "" };
  },
  deleteGroupSnapshot: async (_ctx, id) => {
    calls.push({ name: "deleteGroupSnapshot", args: [id] });
    return GROUP;
  },
};
beforeEach(() => {
  calls = [];
  hasOwnDefault = true;
});

const call = fakeRestServer(fakes, ADMIN);

const json = async (res: Response) => (await res.json()) as Record<string, unknown>;

describe("manage and unmanage existing snapshots", () => {
  it("manages a backend's snapshot from cinderclient's body (ref source-name) with 202 and the snapshot", async () => {
    const res = await call(`/v3/${PROJECT}/os-snapshot-manage`, {
      method: "POST",
      body: JSON.stringify({
        snapshot: {
          volume_id: VOLUME.id,
          ref: { "source-name": "a.img" },
          name: null,
          description: "taken over",
          metadata: { k: "v" },
        },
      }),
    });
    expect(res.status).toBe(202);
    expect((await json(res)).snapshot).toMatchObject({ id: SNAPSHOT.id, volume_id: VOLUME.id, status: "available" });
    expect(calls).toEqual([
      {
        name: "manageSnapshot",
        args: [
          PROJECT,
          { volumeId: VOLUME.id, reference: "a.img", name: "", description: "taken over", metadata: { k: "v" } },
        ],
      },
    ]);
  });

  it("refuses a manage without volume_id or ref, naming the field; manageable_snapshots needs 3.8", async () => {
    const post = (path: string, snapshot: unknown, version?: string) =>
      call(path, { method: "POST", body: JSON.stringify({ snapshot }), version });
    const noVolume = await post("/v3/os-snapshot-manage", { ref: { "source-name": "a.img" } });
    expect(noVolume.status).toBe(400);
    expect(JSON.stringify(await json(noVolume))).toContain("volume_id");
    const noRef = await post("/v3/os-snapshot-manage", { volume_id: VOLUME.id, ref: {} });
    expect(noRef.status).toBe(400);
    expect(JSON.stringify(await json(noRef))).toContain("ref:");
    const old = await post("/v3/manageable_snapshots", { volume_id: VOLUME.id, ref: { "source-name": "a.img" } });
    expect(old.status).toBe(404);
    const v38 = await post(
      "/v3/manageable_snapshots",
      { volume_id: VOLUME.id, ref: { "source-name": "a.img" } },
      "3.8",
    );
    expect(v38.status).toBe(202);
  });

  it("lists manageable snapshots of a host (its #pool dropped), sorted by reference desc by default", async () => {
    const res = await call("/v3/manageable_snapshots?host=vol1@file%23data", { version: "3.8" });
    expect(res.status).toBe(200);
    expect(calls).toEqual([{ name: "listManageableSnapshots", args: ["vol1@file"] }]);
    expect(await json(res)).toEqual({
      "manageable-snapshots": [
        { reference: { "source-name": "c.img" }, size: 1, safe_to_manage: false, source_reference: null },
        {
          reference: { "source-name": "b.img" },
          size: 2,
          safe_to_manage: true,
          source_reference: { "source-id": VOLUME.id },
        },
        { reference: { "source-name": "a.img" }, size: 3, safe_to_manage: true, source_reference: null },
      ],
    });
    const detail = await json(await call("/v3/os-snapshot-manage/detail?host=vol1@file&sort=size:asc"));
    expect(detail["manageable-snapshots"]).toEqual([
      expect.objectContaining({ reference: { "source-name": "c.img" }, reason_not_safe: "not a regular file" }),
      expect.objectContaining({ reference: { "source-name": "b.img" }, reason_not_safe: null, cinder_id: null }),
      expect.objectContaining({ reference: { "source-name": "a.img" }, extra_info: null }),
    ]);
  });

  it("pages with a JSON marker, offset and limit as cinderclient sends them", async () => {
    const marker = encodeURIComponent(JSON.stringify({ "source-name": "a.img" }));
    const res = await json(
      await call(`/v3/manageable_snapshots?host=vol1@file&sort_key=reference&sort_dir=asc&marker=${marker}&limit=1`, {
        version: "3.8",
      }),
    );
    expect(res["manageable-snapshots"]).toEqual([expect.objectContaining({ reference: { "source-name": "b.img" } })]);
    const offset = await json(await call("/v3/os-snapshot-manage?host=vol1@file&sort=reference:asc&offset=2"));
    expect(offset["manageable-snapshots"]).toEqual([
      expect.objectContaining({ reference: { "source-name": "c.img" } }),
    ]);
  });

  it("refuses a list without host, with a cluster, an unknown sort key or a marker not listed", async () => {
    const expectBad = async (path: string, field: string, version?: string) => {
      const res = await call(path, { version });
      expect(res.status).toBe(400);
      expect(((await json(res)).badRequest as { message: string }).message).toContain(field);
    };
    await expectBad("/v3/os-snapshot-manage", "host");
    await expectBad("/v3/manageable_snapshots?host=vol1@file&cluster=c1", "cluster", "3.17");
    await expectBad("/v3/os-snapshot-manage?host=vol1@file&sort=name", "sort");
    await expectBad("/v3/os-snapshot-manage?host=vol1@file&marker=zzz.img", "marker");
    const cluster = await call("/v3/manageable_snapshots?cluster=c1", { version: "3.17" });
    expect(cluster.status).toBe(404);
  });

  it("unmanages with the snapshot action os-unmanage (202); a member is refused by the unmanage rule", async () => {
    const action = (token: string) =>
      call(`/v3/${PROJECT}/snapshots/${SNAPSHOT.id}/action`, {
        method: "POST",
        token,
        body: JSON.stringify({ "os-unmanage": null }),
      });
    expect((await action(ADMIN)).status).toBe(202);
    expect(calls).toEqual([{ name: "unmanageSnapshot", args: [SNAPSHOT.id] }]);
    const refused = await action(`alice:${PROJECT}`);
    expect(refused.status).toBe(403);
    expect(await json(refused)).toEqual({
      forbidden: { code: 403, message: "policy does not allow snapshot_extension:snapshot_unmanage to be performed" },
    });
    const list = await call("/v3/os-snapshot-manage?host=vol1@file", { token: `alice:${PROJECT}` });
    expect(list.status).toBe(403);
  });
});

describe("os-quota-sets delete", () => {
  it("takes cinderclient's quota-update body, whose tenant_id and skip_validation are no limits", async () => {
    const res = await call(`/v3/os-quota-sets/${PROJECT}`, {
      method: "PUT",
      body: JSON.stringify({ quota_set: { tenant_id: PROJECT, volumes: 5, skip_validation: false } }),
    });
    expect(res.status).toBe(200);
    expect(calls).toEqual([{ name: "updateQuotas", args: [PROJECT, { volumes: 5 }] }]);
  });

  it("resets a project's quotas with 200 and no body, held to the quotas:delete rule", async () => {
    const res = await call(`/v3/${PROJECT}/os-quota-sets/other-project`, { method: "DELETE" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
    expect(calls).toEqual([{ name: "deleteQuotas", args: ["other-project"] }]);
    const refused = await call(`/v3/os-quota-sets/${PROJECT}`, { method: "DELETE", token: `alice:${PROJECT}` });
    expect(refused.status).toBe(403);
    expect(JSON.stringify(await json(refused))).toContain("volume_extension:quotas:delete");
  });
});

describe("default-types (3.62)", () => {
  it("sets, shows, lists and unsets a project's default type", async () => {
    const put = await call("/v3/default-types/p2", {
      method: "PUT",
      version: "3.62",
      body: JSON.stringify({ default_type: { volume_type: "gold" } }),
    });
    expect(put.status).toBe(200);
    expect(await json(put)).toEqual({ default_type: { project_id: "p2", volume_type_id: TYPE.id } });
    const shown = await call("/v3/default-types/p2", { version: "3.62" });
    expect(await json(shown)).toEqual({ default_type: { project_id: "p2", volume_type_id: TYPE.id } });
    const listed = await call("/v3/default-types", { version: "3.62" });
    expect(await json(listed)).toEqual({ default_types: [{ project_id: PROJECT, volume_type_id: TYPE.id }] });
    const unset = await call("/v3/default-types/p2", { method: "DELETE", version: "3.62" });
    expect(unset.status).toBe(204);
  });

  it("answers 404 for a project with no default of its own, 400 for an unknown type, 404 before 3.62", async () => {
    hasOwnDefault = false;
    const none = await call("/v3/default-types/p2", { version: "3.62" });
    expect(none.status).toBe(404);
    expect(await json(none)).toEqual({
      itemNotFound: { code: 404, message: "Default type for project p2 not found." },
    });
    // Unsetting what is not set is no error, as in Cinder.
    expect((await call("/v3/default-types/p2", { method: "DELETE", version: "3.62" })).status).toBe(204);
    const unknown = await call("/v3/default-types/p2", {
      method: "PUT",
      version: "3.62",
      body: JSON.stringify({ default_type: { volume_type: "platinum" } }),
    });
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(await json(unknown))).toContain("volume_type");
    const old = await call("/v3/default-types", { version: "3.61" });
    expect(old.status).toBe(404);
    expect(JSON.stringify(await json(old))).toContain("3.62");
    const member = await call("/v3/default-types", { version: "3.62", token: `alice:${PROJECT}` });
    expect(member.status).toBe(403);
  });
});

describe("group snapshots (3.14)", () => {
  it("lists (id and name), details and shows a group snapshot with group_id null", async () => {
    const list = await call(`/v3/${PROJECT}/group_snapshots`, { version: "3.14", token: `alice:${PROJECT}` });
    expect(list.status).toBe(200);
    expect(await json(list)).toEqual({ group_snapshots: [{ id: GROUP.group.id, name: "nightly" }] });
    const detail = {
      id: GROUP.group.id,
      group_id: null,
      group_type_id: null,
      status: "available",
      created_at: "2026-12-06T10:00:00.123000",
      name: "nightly",
      description: "both disks",
    };
    const listed = await json(await call("/v3/group_snapshots/detail", { version: "3.14" }));
    expect(listed).toEqual({ group_snapshots: [detail] });
    const shown = await json(await call(`/v3/group_snapshots/${GROUP.group.id}`, { version: "3.58" }));
    expect(shown).toEqual({ group_snapshot: { ...detail, project_id: PROJECT } });
    const member = await json(
      await call(`/v3/group_snapshots/${GROUP.group.id}`, { version: "3.58", token: `alice:${PROJECT}` }),
    );
    expect(member.group_snapshot).not.toHaveProperty("project_id");
  });

  it("pages with limit and a next link, passes all_tenants for an admin; a group_id filter finds none", async () => {
    const res = await json(await call("/v3/group_snapshots?limit=1&all_tenants=1&sort=name:asc", { version: "3.29" }));
    expect(calls[0]).toMatchObject({
      name: "listGroupSnapshots",
      args: [PROJECT, { pageSize: 1, allProjects: true, sortKey: "name", sortDir: "asc" }],
    });
    const links = res.group_snapshot_links as Array<{ rel: string; href: string }>;
    expect(links[0]?.rel).toBe("next");
    expect(links[0]?.href).toContain(`marker=${GROUP.group.id}`);
    const byGroup = await json(await call(`/v3/group_snapshots?group_id=${GROUP.group.id}`, { version: "3.14" }));
    expect(byGroup).toEqual({ group_snapshots: [] });
  });

  it("deletes with 202; 404 for a name or unknown id; 404 before 3.14", async () => {
    const del = await call(`/v3/group_snapshots/${GROUP.group.id}`, { method: "DELETE", version: "3.14" });
    expect(del.status).toBe(202);
    expect(calls).toEqual([{ name: "deleteGroupSnapshot", args: [GROUP.group.id] }]);
    const byName = await call("/v3/group_snapshots/nightly", { version: "3.14" });
    expect(byName.status).toBe(404);
    expect(await json(byName)).toEqual({
      itemNotFound: { code: 404, message: "GroupSnapshot nightly could not be found." },
    });
    expect((await call("/v3/group_snapshots", { version: "3.13" })).status).toBe(404);
  });

  it("answers a create with 400 naming group_id: Cinderblock has no generic volume groups", async () => {
    const res = await call("/v3/group_snapshots", {
      method: "POST",
      version: "3.14",
      body: JSON.stringify({ group_snapshot: { group_id: GROUP.group.id, name: "g" } }),
    });
    expect(res.status).toBe(400);
    expect(((await json(res)).badRequest as { message: string }).message).toMatch(
      /^group_id: .*no generic volume groups/,
    );
  });
});

describe("qos-specs paging", () => {
  const ids = async (query: string) => {
    const res = await call(`/v3/${PROJECT}/qos-specs${query}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { qos_specs: Array<{ id: string }>; qos_specs_links?: Array<{ href: string }> };
    return { ids: body.qos_specs.map((q) => q.id), next: body.qos_specs_links?.[0]?.href };
  };

  it("lists every page of the use case, newest first by default, and sorts by a key asked for", async () => {
    expect((await ids("")).ids).toEqual([QOS_C.qos.id, QOS_B.qos.id, QOS_A.qos.id]);
    expect((await ids("?sort=name:asc")).ids).toEqual([QOS_A.qos.id, QOS_B.qos.id, QOS_C.qos.id]);
    expect((await ids("?sort_key=consumer&sort_dir=asc")).ids[0]).toBe(QOS_B.qos.id);
    expect((await ids("?consumer=back-end&sort=name:asc")).ids).toEqual([QOS_B.qos.id, QOS_C.qos.id]);
  });

  it("pages with limit, marker and offset, with a next link while more follow", async () => {
    const first = await ids("?limit=2&sort=name:asc");
    expect(first.ids).toEqual([QOS_A.qos.id, QOS_B.qos.id]);
    expect(first.next).toContain(`/v3/${PROJECT}/qos-specs?limit=2&sort=name%3Aasc&marker=${QOS_B.qos.id}`);
    const second = await ids(`?limit=2&sort=name:asc&marker=${QOS_B.qos.id}`);
    expect(second).toEqual({ ids: [QOS_C.qos.id], next: undefined });
    expect((await ids("?sort=name:asc&offset=1&limit=1")).ids).toEqual([QOS_B.qos.id]);
  });

  it("refuses an unknown marker or sort key with 400 naming it", async () => {
    const marker = await call("/v3/qos-specs?marker=00000000-0000-4000-8000-0000000000ff");
    expect(marker.status).toBe(400);
    expect(JSON.stringify(await marker.json())).toContain("marker");
    const sort = await call("/v3/qos-specs?sort=specs");
    expect(sort.status).toBe(400);
    expect(JSON.stringify(await sort.json())).toContain("sort_key");
  });
});
