import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  type AttachVolumeResponse,
  type CreateGroupSnapshotResponse,
  GroupSnapshotsServiceClient,
} from "@cinderblock/proto";
import { call, identity, mustRunInCI, type Stack, settle, startStack, uniqueName } from "@cinderblock/testing";
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The Cinder v3 REST listener driven by clients nobody here wrote: Debian's python3-openstackclient
// and python3-cinderclient, against api, scheduler and volume host as separate processes, noauth.

const run = promisify(execFile);

/** Why the clients cannot run here (undefined when both are installed). */
async function clientsMissing(): Promise<string | undefined> {
  for (const client of ["openstack", "cinder"]) {
    try {
      await run(client, ["--version"], { env: cleanEnv() });
    } catch {
      return `${client} is not installed (apt-get install python3-openstackclient python3-cinderclient)`;
    }
  }
  return undefined;
}

/** This process's environment without any OS_* login of the machine's own. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OS_")));
}

const missing = mustRunInCI("Cinder REST clients (openstackclient, cinderclient)", await clientsMissing());

let stack: Stack;
let rest = "";
const project = uniqueName("osc");

/** `openstack ... -f json` as `user` (noauth token `user:project[:roles]`), parsed. */
async function openstack(args: string[], roles = ""): Promise<unknown> {
  const token = `alice:${project}${roles ? `:${roles}` : ""}`;
  const { stdout } = await run(
    "openstack",
    ["--os-auth-type", "admin_token", "--os-token", token, "--os-endpoint", `${rest}/v3/${project}`, ...args],
    { env: { ...cleanEnv(), OS_VOLUME_API_VERSION: "3" }, timeout: 60_000 },
  );
  return stdout.trim() === "" ? undefined : JSON.parse(stdout);
}

/**
 * `cinder ...` with cinderclient's own noauth plugin (token `alice:<project>`), or with `roles` the
 * admin_token plugin and the token `alice:<project>:<roles>` (cinderclient's noauth sends no roles).
 */
async function cinder(args: string[], roles = "", version = "3.0"): Promise<string> {
  const login = roles
    ? [
        "--os-auth-type",
        "admin_token",
        "--os-token",
        `alice:${project}:${roles}`,
        "--os-endpoint",
        `${rest}/v3/${project}`,
      ]
    : ["--os-auth-type", "noauth", "--os-user-id", "alice", "--os-endpoint", `${rest}/v3`];
  const { stdout } = await run(
    "cinder",
    [...login, "--os-project-id", project, "--os-volume-api-version", version, ...args],
    { env: cleanEnv(), timeout: 60_000 },
  );
  return stdout;
}

/** POSTs a volume action as `alice` (for actions neither client has a command for). */
async function volumeAction(id: string, body: unknown): Promise<Response> {
  return fetch(`${rest}/v3/${project}/volumes/${id}/action`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-auth-token": `alice:${project}` },
    body: JSON.stringify(body),
  });
}

type Shown = Record<string, unknown>;

/** `openstack volume show` until the volume leaves a transitional status. */
const settledVolume = (name: string) =>
  settle(
    () => openstack(["volume", "show", name, "-f", "json"]) as Promise<Shown>,
    (v) => !["creating", "extending", "deleting"].includes(String(v.status)),
    { timeoutMs: 60_000, intervalMs: 300 },
  );

const settledSnapshot = (name: string) =>
  settle(
    () => openstack(["volume", "snapshot", "show", name, "-f", "json"]) as Promise<Shown>,
    (s) => s.status !== "creating",
    { timeoutMs: 60_000, intervalMs: 300 },
  );

beforeAll(async () => {
  if (missing) return;
  stack = await startStack({ env: { CINDERBLOCK_REST_LISTEN: "127.0.0.1:0" } });
  const listening = await stack.api.waitFor("rest listening");
  rest = `http://127.0.0.1:${String(listening.port)}`;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe.skipIf(missing)("Cinder v3 REST with the openstack and cinder clients", () => {
  it("creates, lists, shows, extends, tags and deletes a volume with `openstack volume`", async () => {
    const created = (await openstack(["volume", "create", "--size", "1", "osc-vol", "-f", "json"])) as Shown;
    expect(created).toMatchObject({ name: "osc-vol", size: 1 });
    expect((await settledVolume("osc-vol")).status).toBe("available");

    const listed = (await openstack(["volume", "list", "-f", "json"])) as Shown[];
    expect(listed).toEqual([
      expect.objectContaining({ ID: created.id, Name: "osc-vol", Size: 1, Status: "available" }),
    ]);

    await openstack(["volume", "set", "--size", "2", "--property", "tier=gold", "osc-vol"]);
    const extended = await settledVolume("osc-vol");
    expect(extended).toMatchObject({ size: 2, status: "available", bootable: "false" });
    expect(extended.properties).toMatchObject({ tier: "gold" });

    await openstack(["volume", "unset", "--property", "tier", "osc-vol"]);
    expect((await settledVolume("osc-vol")).properties).toEqual({});
  });

  it("creates, lists, shows, renames and deletes a snapshot with `openstack volume snapshot`", async () => {
    const snap = (await openstack([
      "volume",
      "snapshot",
      "create",
      "--volume",
      "osc-vol",
      "--property",
      "k=v",
      "osc-snap",
      "-f",
      "json",
    ])) as Shown;
    expect(snap).toMatchObject({ name: "osc-snap", size: 2 });
    const shown = await settledSnapshot("osc-snap");
    expect(shown).toMatchObject({ status: "available", "os-extended-snapshot-attributes:progress": "100%" });

    const listed = (await openstack(["volume", "snapshot", "list", "-f", "json"])) as Shown[];
    expect(listed).toEqual([expect.objectContaining({ ID: snap.id, Name: "osc-snap", Status: "available" })]);

    await openstack(["volume", "snapshot", "set", "--name", "osc-snap-2", "--description", "nightly", "osc-snap"]);
    expect(await settledSnapshot("osc-snap-2")).toMatchObject({ description: "nightly", properties: { k: "v" } });

    await openstack(["volume", "snapshot", "delete", "osc-snap-2"]);
    const gone = await settle(
      () => openstack(["volume", "snapshot", "list", "-f", "json"]) as Promise<Shown[]>,
      (all) => all.length === 0,
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect(gone).toEqual([]);
  });

  it("lists and shows with `cinder`, and shows the project's quota and usage", async () => {
    const list = await cinder(["list"]);
    expect(list).toContain("osc-vol");
    expect(list).toContain("available");
    const quota = await cinder(["quota-show", project]);
    expect(quota).toMatch(/\|\s+volumes\s+\|\s+10\s+\|/);
    const usage = await cinder(["quota-usage", project]);
    expect(usage).toMatch(/\|\s+volumes\s+\|\s+1\s+\|/);
    const limits = await cinder(["absolute-limits"]);
    expect(limits).toMatch(/totalVolumesUsed\s+\|\s+1/);
  });

  it("creates and lists volume types as an administrator; a member is refused with 403", async () => {
    const gold = (await openstack(
      ["volume", "type", "create", "--property", "volume_backend_name=file", "osc-gold", "-f", "json"],
      "admin",
    )) as Shown;
    expect(gold).toMatchObject({ name: "osc-gold", is_public: true });
    const types = (await openstack(["volume", "type", "list", "-f", "json"])) as Shown[];
    expect(types.map((t) => t.Name)).toContain("osc-gold");
    const refused = await openstack(["volume", "type", "create", "osc-silver", "-f", "json"]).catch(
      (error: { stderr?: string }) => error.stderr ?? "",
    );
    expect(refused).toMatch(/policy does not allow volume_extension:type_create.*HTTP 403/s);
  });

  it("deletes the volume with `openstack volume delete`", async () => {
    await openstack(["volume", "delete", "osc-vol"]);
    const gone = await settle(
      () => openstack(["volume", "list", "-f", "json"]) as Promise<Shown[]>,
      (all) => all.length === 0,
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect(gone).toEqual([]);
  });

  it("force-deletes a volume stuck in maintenance with `cinder force-delete` as an administrator, releasing its quota", async () => {
    const created = (await openstack(["volume", "create", "--size", "2", "osc-stuck", "-f", "json"])) as Shown;
    expect((await settledVolume("osc-stuck")).status).toBe("available");
    const id = String(created.id);
    expect(await cinder(["quota-usage", project])).toMatch(/\|\s+gigabytes\s+\|\s+2\s+\|/);
    await cinder(["reset-state", "--state", "maintenance", id], "admin");
    expect((await settledVolume("osc-stuck")).status).toBe("maintenance");

    const output = (error: { stdout?: string; stderr?: string }) => `${error.stdout ?? ""}${error.stderr ?? ""}`;
    const plain = await cinder(["delete", id]).catch(output);
    expect(plain).toMatch(/status must be available, error or error_deleting to delete, but is maintenance/);
    const member = await cinder(["force-delete", id]).catch(output);
    expect(member).toMatch(/volume_extension:volume_admin_actions:force_delete/);

    await cinder(["force-delete", id], "admin");
    const gone = await settle(
      () => openstack(["volume", "list", "-f", "json"]) as Promise<Shown[]>,
      (all) => all.length === 0,
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect(gone).toEqual([]);
    const usage = await cinder(["quota-usage", project]);
    expect(usage).toMatch(/\|\s+volumes\s+\|\s+0\s+\|/);
    expect(usage).toMatch(/\|\s+gigabytes\s+\|\s+0\s+\|/);
  });

  it("snapshots an in-use volume only with --force (attached over gRPC, shown in-use over REST)", async () => {
    const created = (await openstack(["volume", "create", "--size", "1", "osc-attached", "-f", "json"])) as Shown;
    expect((await settledVolume("osc-attached")).status).toBe("available");
    const md = identity(project, "alice");
    const attached = await call<AttachVolumeResponse>((done) =>
      stack.volumes.attachVolume(
        {
          volumeId: String(created.id),
          instanceId: "server-1",
          mountpoint: "/dev/vdb",
          connector: { host: "compute1" },
        },
        md,
        done,
      ),
    );
    const inUse = await settledVolume("osc-attached");
    expect(inUse).toMatchObject({ status: "in-use" });
    expect(inUse.attachments).toEqual([
      expect.objectContaining({ server_id: "server-1", device: "/dev/vdb", volume_id: created.id }),
    ]);

    const refused = await openstack([
      "volume",
      "snapshot",
      "create",
      "--volume",
      "osc-attached",
      "s1",
      "-f",
      "json",
    ]).catch((error: { stderr?: string }) => error.stderr ?? "");
    expect(refused).toMatch(/HTTP 400/);
    await openstack(["volume", "snapshot", "create", "--volume", "osc-attached", "--force", "s1", "-f", "json"]);
    expect((await settledSnapshot("s1")).status).toBe("available");

    await call((done) =>
      stack.volumes.detachVolume(
        { volumeId: String(created.id), attachmentId: attached.attachment?.id ?? "" },
        md,
        done,
      ),
    );
    await openstack(["volume", "snapshot", "delete", "s1"]);
    await settle(
      () => openstack(["volume", "snapshot", "list", "-f", "json"]) as Promise<Shown[]>,
      (all) => all.length === 0,
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect((await settledVolume("osc-attached")).status).toBe("available");
    await openstack(["volume", "delete", "osc-attached"]);
  });

  it("attaches with os-attach and detaches with os-detach (neither client has the command: raw HTTP)", async () => {
    const created = (await openstack(["volume", "create", "--size", "1", "osc-legacy", "-f", "json"])) as Shown;
    expect((await settledVolume("osc-legacy")).status).toBe("available");
    const server = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b";
    const attached = await volumeAction(String(created.id), {
      "os-attach": { instance_uuid: server, mountpoint: "/dev/vdc", host_name: "compute1" },
    });
    expect(attached.status).toBe(202);
    const inUse = await settledVolume("osc-legacy");
    expect(inUse).toMatchObject({ status: "in-use" });
    expect(inUse.attachments).toEqual([
      expect.objectContaining({ server_id: server, device: "/dev/vdc", volume_id: created.id }),
    ]);
    const twice = await volumeAction(String(created.id), {
      "os-attach": { instance_uuid: server, mountpoint: "/dev/vdd" },
    });
    expect(twice.status).toBe(400);
    expect(await twice.json()).toEqual({
      badRequest: { code: 400, message: expect.stringContaining("already attached") },
    });

    // Without attachment_id: the volume's one attachment, as Cinder.
    expect((await volumeAction(String(created.id), { "os-detach": {} })).status).toBe(202);
    const detached = await settle(
      () => openstack(["volume", "show", "osc-legacy", "-f", "json"]) as Promise<Shown>,
      (v) => v.status === "available",
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect(detached.attachments).toEqual([]);
    await openstack(["volume", "delete", "osc-legacy"]);
  });

  it("attaches and detaches with `cinder attachment-create/list/show/complete/delete` (3.44)", async () => {
    const created = (await openstack(["volume", "create", "--size", "1", "osc-att", "-f", "json"])) as Shown;
    expect((await settledVolume("osc-att")).status).toBe("available");
    const server = "7a2e3d4c-5b6f-4a70-9b8c-0d1e2f3a4b5c";
    const att = (args: string[]) => cinder(args, "", "3.44");
    const output = (error: { stdout?: string; stderr?: string }) => `${error.stdout ?? ""}${error.stderr ?? ""}`;

    // Without --connect cinderclient sends an empty connector: a reserve, which Cinderblock refuses by name.
    const reserve = await att(["attachment-create", "osc-att", server]).catch(output);
    expect(reserve).toMatch(/connector: is required/);

    const made = await att([
      "attachment-create",
      "--connect",
      "True",
      "--host",
      "compute1",
      "--initiator",
      "iqn.2026-12.test:compute1",
      "--mountpoint",
      "/dev/vdb",
      "osc-att",
      server,
    ]);
    const id = /\|\s+id\s+\|\s+([0-9a-f-]{36})\s+\|/.exec(made)?.[1] ?? "";
    expect(made).toMatch(/\|\s+status\s+\|\s+attached\s+\|/);
    expect(made).toMatch(/driver_volume_type/);
    const inUse = await settledVolume("osc-att");
    expect(inUse).toMatchObject({ status: "in-use" });
    expect(inUse.attachments).toEqual([
      expect.objectContaining({ attachment_id: id, server_id: server, device: "/dev/vdb", volume_id: created.id }),
    ]);

    const listed = await att(["attachment-list"]);
    expect(listed).toContain(id);
    expect(listed).toContain(server);
    const shown = await att(["attachment-show", id]);
    expect(shown).toMatch(/\|\s+attach_mode\s+\|\s+rw\s+\|/);
    expect(shown).toContain(String(created.id));
    await att(["attachment-complete", id]);

    await att(["attachment-delete", id]);
    const detached = await settledVolume("osc-att");
    expect(detached).toMatchObject({ status: "available", attachments: [] });
    expect(await att(["attachment-list"])).not.toContain(id);
    await openstack(["volume", "delete", "osc-att"]);
  });

  it("marks a volume bootable and not with `cinder set-bootable`", async () => {
    const created = (await openstack(["volume", "create", "--size", "1", "osc-boot", "-f", "json"])) as Shown;
    expect((await settledVolume("osc-boot")).bootable).toBe("false");
    await cinder(["set-bootable", String(created.id), "true"]);
    expect((await settledVolume("osc-boot")).bootable).toBe("true");
    await cinder(["set-bootable", String(created.id), "false"]);
    expect((await settledVolume("osc-boot")).bootable).toBe("false");
    await openstack(["volume", "delete", "osc-boot"]);
  });

  it("lists, disables and enables volume services and lists pools as an administrator; a member gets 403", async () => {
    const services = (await openstack(["volume", "service", "list", "-f", "json"], "admin")) as Shown[];
    expect(services).toEqual([
      expect.objectContaining({ Binary: "cinder-volume", Host: "vol1@file", Status: "enabled", State: "up" }),
    ]);
    await openstack(
      ["volume", "service", "set", "--disable", "--disable-reason", "maintenance", "vol1@file", "cinder-volume"],
      "admin",
    );
    const disabled = (await openstack(["volume", "service", "list", "--long", "-f", "json"], "admin")) as Shown[];
    expect(disabled).toEqual([
      expect.objectContaining({ Host: "vol1@file", Status: "disabled", "Disabled Reason": "maintenance" }),
    ]);
    await openstack(["volume", "service", "set", "--enable", "vol1@file", "cinder-volume"], "admin");
    const enabled = (await openstack(["volume", "service", "list", "--long", "-f", "json"], "admin")) as Shown[];
    expect(enabled).toEqual([expect.objectContaining({ Host: "vol1@file", Status: "enabled" })]);

    const pools = await cinder(["get-pools", "--detail"], "admin");
    expect(pools).toMatch(/\|\s+name\s+\|\s+vol1@file#/);
    expect(pools).toMatch(/\|\s+volume_backend_name\s+\|\s+file\s+\|/);
    expect(pools).toMatch(/\|\s+free_capacity_gb\s+\|/);

    const refused = await openstack(["volume", "service", "list", "-f", "json"]).catch(
      (error: { stderr?: string }) => error.stderr ?? "",
    );
    expect(refused).toMatch(/policy does not allow volume_extension:services:index.*HTTP 403/s);
    const noPools = await cinder(["get-pools"]).catch((error: { stderr?: string }) => error.stderr ?? "");
    expect(noPools).toMatch(/scheduler_stats:get_pools.*HTTP 403/s);
  });

  it("creates, associates, sets, unsets, disassociates and deletes QoS specs with `openstack volume qos`", async () => {
    const admin = (args: string[]) => openstack(args, "admin");
    const created = (await admin([
      "volume",
      "qos",
      "create",
      "--consumer",
      "front-end",
      "--property",
      "total_iops_sec=1000",
      "osc-qos",
      "-f",
      "json",
    ])) as Shown;
    expect(created).toMatchObject({ name: "osc-qos", consumer: "front-end" });
    expect(JSON.stringify(created.properties)).toContain("total_iops_sec");

    await admin(["volume", "qos", "associate", "osc-qos", "osc-gold"]);
    await admin(["volume", "qos", "set", "--property", "read_iops_sec=500", "osc-qos"]);
    const shown = (await admin(["volume", "qos", "show", "osc-qos", "-f", "json"])) as Shown;
    expect(JSON.stringify(shown.associations)).toContain("osc-gold");
    expect(JSON.stringify(shown.properties)).toContain("read_iops_sec");

    await admin(["volume", "qos", "unset", "--property", "read_iops_sec", "osc-qos"]);
    await admin(["volume", "qos", "disassociate", "--volume-type", "osc-gold", "osc-qos"]);
    const listed = (await admin(["volume", "qos", "list", "-f", "json"])) as Shown[];
    expect(listed).toEqual([expect.objectContaining({ ID: created.id, Name: "osc-qos", Consumer: "front-end" })]);
    expect(JSON.stringify(listed[0]?.Properties)).not.toContain("read_iops_sec");
    expect(JSON.stringify(listed[0]?.Associations ?? [])).not.toContain("osc-gold");

    const refused = await openstack(["volume", "qos", "list", "-f", "json"]).catch(
      (error: { stderr?: string }) => error.stderr ?? "",
    );
    expect(refused).toMatch(/policy does not allow volume_extension:qos_specs_manage:get_all.*HTTP 403/s);
    await admin(["volume", "qos", "delete", "osc-qos"]);
    expect(await admin(["volume", "qos", "list", "-f", "json"])).toEqual([]);
  });

  it("unmanages a snapshot, lists it as manageable and manages it again with `cinder` as an administrator", async () => {
    const volume = (await openstack(["volume", "create", "--size", "1", "osc-manage", "-f", "json"])) as Shown;
    expect((await settledVolume("osc-manage")).status).toBe("available");
    const snap = (await openstack([
      "volume",
      "snapshot",
      "create",
      "--volume",
      "osc-manage",
      "m1",
      "-f",
      "json",
    ])) as Shown;
    expect((await settledSnapshot("m1")).status).toBe("available");

    const refused = await cinder(["snapshot-unmanage", String(snap.id)]).catch(
      (error: { stderr?: string }) => error.stderr ?? "",
    );
    expect(refused).toMatch(/snapshot_extension:snapshot_unmanage.*HTTP 403/s);
    await cinder(["snapshot-unmanage", String(snap.id)], "admin");
    await settle(
      () => openstack(["volume", "snapshot", "list", "-f", "json"]) as Promise<Shown[]>,
      (all) => all.length === 0,
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    // The file driver keeps the storage under a name that is not its own any more.
    const reference = `unmanaged-snapshot-${String(snap.id)}.img`;
    const manageable = await cinder(["snapshot-manageable-list", "vol1@file"], "admin", "3.8");
    expect(manageable).toMatch(new RegExp(`${reference}.*\\|\\s+1\\s+\\|\\s+True\\s+\\|`));
    const summary = await cinder(["snapshot-manageable-list", "--detailed", "false", "vol1@file"], "admin", "3.8");
    expect(summary).toContain(reference);
    expect(summary).not.toContain("reason_not_safe");

    await cinder(
      ["snapshot-manage", "--name", "m2", "--metadata", "origin=unmanaged", "osc-manage", reference],
      "admin",
    );
    const managed = await settledSnapshot("m2");
    expect(managed).toMatchObject({
      status: "available",
      size: 1,
      volume_id: volume.id,
      properties: { origin: "unmanaged" },
    });
    expect(await cinder(["snapshot-manageable-list", "vol1@file"], "admin", "3.8")).not.toContain(reference);

    await openstack(["volume", "snapshot", "delete", "m2"]);
    await settle(
      () => openstack(["volume", "snapshot", "list", "-f", "json"]) as Promise<Shown[]>,
      (all) => all.length === 0,
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    await openstack(["volume", "delete", "osc-manage"]);
  });

  it("resets a project's quotas to the defaults with `cinder quota-delete`", async () => {
    await cinder(["quota-update", "--volumes", "5", "--snapshots", "7", project], "admin");
    expect(await cinder(["quota-show", project])).toMatch(/\|\s+volumes\s+\|\s+5\s+\|/);
    const refused = await cinder(["quota-delete", project]).catch((error: { stderr?: string }) => error.stderr ?? "");
    expect(refused).toMatch(/volume_extension:quotas:delete.*HTTP 403/s);
    await cinder(["quota-delete", project], "admin");
    const quota = await cinder(["quota-show", project]);
    expect(quota).toMatch(/\|\s+volumes\s+\|\s+10\s+\|/);
    expect(quota).toMatch(/\|\s+snapshots\s+\|\s+10\s+\|/);
  });

  it("sets, lists and unsets a project's default volume type with `cinder default-type-*` (3.62)", async () => {
    const admin = (args: string[]) => cinder(args, "admin", "3.62");
    const silver = (await openstack(
      ["volume", "type", "create", "--property", "volume_backend_name=file", "osc-silver", "-f", "json"],
      "admin",
    )) as Shown;
    const set = await admin(["default-type-set", "osc-silver", project]);
    expect(set).toMatch(new RegExp(`volume_type_id\\s+\\|\\s+${String(silver.id)}`));
    expect(await admin(["default-type-list"])).toMatch(new RegExp(`${String(silver.id)}\\s+\\|\\s+${project}`));
    expect(await admin(["default-type-list", "--project-id", project])).toContain(String(silver.id));

    // A volume created without a type gets the project's default.
    await openstack(["volume", "create", "--size", "1", "osc-typed", "-f", "json"]);
    expect(await settledVolume("osc-typed")).toMatchObject({ status: "available", type: "osc-silver" });
    await openstack(["volume", "delete", "osc-typed"]);

    expect(await admin(["default-type-unset", project])).toContain("has been unset successfully");
    expect(await admin(["default-type-list"])).not.toContain(project);
    const gone = await admin(["default-type-list", "--project-id", project]).catch(
      (error: { stderr?: string }) => error.stderr ?? "",
    );
    expect(gone).toMatch(/Default type for project .* not found.*HTTP 404/s);
  });

  it("lists, shows and deletes a group snapshot (made over gRPC) with `cinder group-snapshot-*` (3.14)", async () => {
    const created = (await openstack(["volume", "create", "--size", "1", "osc-grouped", "-f", "json"])) as Shown;
    expect((await settledVolume("osc-grouped")).status).toBe("available");
    const groups = new GroupSnapshotsServiceClient(stack.address, credentials.createInsecure());
    try {
      const made = await call<CreateGroupSnapshotResponse>((done) =>
        groups.createGroupSnapshot(
          { name: "osc-group", description: "both", volumeIds: [String(created.id)], clientRequestId: "" },
          identity(project, "alice"),
          done,
        ),
      );
      const id = made.groupSnapshot?.id ?? "";
      const listed = await cinder(["group-snapshot-list"], "", "3.14");
      expect(listed).toMatch(new RegExp(`${id}\\s+\\|\\s+available\\s+\\|\\s+osc-group`));
      const shown = await cinder(["group-snapshot-show", id], "", "3.14");
      expect(shown).toMatch(/\|\s+group_id\s+\|\s+None\s+\|/);
      expect(shown).toMatch(/\|\s+description\s+\|\s+both\s+\|/);

      const create = await fetch(`${rest}/v3/${project}/group_snapshots`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-auth-token": `alice:${project}`,
          "openstack-api-version": "volume 3.14",
        },
        body: JSON.stringify({ group_snapshot: { group_id: id, name: "g2" } }),
      });
      expect(create.status).toBe(400);
      expect(JSON.stringify(await create.json())).toContain("group_id: Cinderblock has no generic volume groups");

      await cinder(["group-snapshot-delete", id], "", "3.14");
      await settle(
        () => cinder(["group-snapshot-list"], "", "3.14"),
        (out) => !out.includes(id),
        { timeoutMs: 60_000, intervalMs: 300 },
      );
      await settle(
        () => openstack(["volume", "snapshot", "list", "-f", "json"]) as Promise<Shown[]>,
        (all) => all.length === 0,
        { timeoutMs: 60_000, intervalMs: 300 },
      );
    } finally {
      groups.close();
    }
    await openstack(["volume", "delete", "osc-grouped"]);
  });
});
