import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { QuotasServiceClient } from "@cinderblock/proto";
import { call, identity, type Stack, startStack, uniqueName } from "@cinderblock/testing";
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The built `cinderblock` command, run as a subprocess against the three services.

const CLI = createRequire(import.meta.url).resolve("@cinderblock/cli/bin/cinderblock.js");

let stack: Stack;
let quotas: QuotasServiceClient;

beforeAll(async () => {
  stack = await startStack();
  quotas = new QuotasServiceClient(stack.address, credentials.createInsecure());
});

afterAll(async () => {
  quotas?.close();
  await stack?.stop();
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function env(project: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CINDERBLOCK_API: stack.address,
    CINDERBLOCK_PROJECT: project,
    CINDERBLOCK_USER: "alice",
    CINDERBLOCK_ROLES: "",
    CINDERBLOCK_ADMIN: "",
  };
}

function start(project: string, args: string[]): { child: ChildProcess; result: Promise<Result> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: env(project), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
  });
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  const result = new Promise<Result>((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
  return { child, result };
}

function cli(project: string, ...args: string[]): Promise<Result> {
  return start(project, args).result;
}

/** The single JSON document a --json command printed (fails the test on anything else). */
function json<T = Record<string, unknown>>(r: Result): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`exit ${r.code}, not one JSON document:\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

describe("cinderblock CLI", () => {
  it("creates a volume, snapshots it with --wait, lists, shows and deletes them", async () => {
    const p = uniqueName("cli-");

    const created = await cli(p, "volume", "create", "--name", "data", "--size", "1", "--wait", "--json");
    expect(created.code).toBe(0);
    const volume = json(created);
    expect(volume).toMatchObject({ name: "data", sizeGb: 1, status: "VOLUME_STATUS_AVAILABLE", bootable: false });
    const volumeId = String(volume.id);
    expect(created.stderr).toContain(`volume ${volumeId}: available`);

    const snap = await cli(p, "snapshot", "create", volumeId, "--name", "nightly", "--wait", "--json");
    expect(snap.code).toBe(0);
    const snapshot = json(snap);
    expect(snapshot).toMatchObject({
      name: "nightly",
      volumeId,
      status: "SNAPSHOT_STATUS_AVAILABLE",
      progress: "100%",
      statusReason: "",
    });
    const snapshotId = String(snapshot.id);
    // Progress went to stderr while it ran, ending with the terminal status.
    expect(snap.stderr).toMatch(new RegExp(`snapshot ${snapshotId}: available 100%`));

    // Tables for people.
    const volumes = await cli(p, "volume", "list");
    expect(volumes.code).toBe(0);
    const [header, row, ...more] = volumes.stdout.trimEnd().split("\n");
    expect(header?.split(/\s+/)).toEqual(["ID", "NAME", "STATUS", "SIZE_GB", "TYPE", "BOOTABLE", "HOST", "CREATED"]);
    expect(row).toMatch(new RegExp(`^${volumeId}\\s+data\\s+available\\s+1\\s+`));
    expect(more).toEqual([]);
    const snapshots = await cli(p, "snapshot", "list", "--volume", volumeId);
    expect(snapshots.stdout).toMatch(
      new RegExp(`\\n${snapshotId}\\s+nightly\\s+available\\s+100%\\s+${volumeId}\\s+1\\s`),
    );
    const shown = await cli(p, "snapshot", "show", snapshotId);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^status\s+available$/m);
    expect(shown.stdout).toMatch(new RegExp(`^volume_id\\s+${volumeId}$`, "m"));

    // A settled snapshot: watch prints its state once and ends.
    const watched = await cli(p, "snapshot", "watch", snapshotId, "--json");
    expect(watched.code).toBe(0);
    expect(
      watched.stdout
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l).status),
    ).toEqual(["SNAPSHOT_STATUS_AVAILABLE"]);

    // One JSON document for scripts.
    const listed = json<{ volumes: Array<{ id: string }>; nextPageToken: string }>(
      await cli(p, "volume", "list", "--json"),
    );
    expect(listed).toEqual({ volumes: [expect.objectContaining({ id: volumeId })], nextPageToken: "" });
    const snapList = json<{ snapshots: Array<{ id: string; status: string }> }>(
      await cli(p, "snapshot", "list", "--json", "--status", "available"),
    );
    expect(snapList.snapshots.map((s) => [s.id, s.status])).toEqual([[snapshotId, "SNAPSHOT_STATUS_AVAILABLE"]]);
    expect(json(await cli(p, "volume", "show", volumeId, "--json"))).toMatchObject({ id: volumeId, attachments: [] });

    // A volume with a snapshot is refused without --cascade: FAILED_PRECONDITION is exit 5.
    const refused = await cli(p, "volume", "delete", volumeId);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain("FAILED_PRECONDITION");
    expect(refused.stderr).toContain("cascade");

    const snapDeleted = await cli(p, "snapshot", "delete", snapshotId, "--wait");
    expect(snapDeleted.code).toBe(0);
    expect(snapDeleted.stdout).toBe(`snapshot ${snapshotId} deleted\n`);
    const volDeleted = await cli(p, "volume", "delete", volumeId, "--wait", "--json");
    expect(volDeleted.code).toBe(0);
    expect(json(volDeleted)).toMatchObject({ id: volumeId, status: "VOLUME_STATUS_DELETED" });
    expect((await cli(p, "volume", "list", "--json")).stdout).toBe('{"volumes":[],"nextPageToken":""}\n');
  });

  it("pages through lists", async () => {
    const p = uniqueName("cli-");
    const ids: string[] = [];
    for (const name of ["a", "b", "c"]) {
      ids.push(String(json(await cli(p, "volume", "create", "--name", name, "--size", "1", "--json")).id));
    }
    const first = await cli(p, "volume", "list", "--limit", "2");
    expect(first.stdout.trimEnd().split("\n")).toHaveLength(3);
    const token = /more: --page-token (\S+)/.exec(first.stderr)?.[1] ?? "";
    expect(token).not.toBe("");
    const second = json<{ volumes: Array<{ id: string }>; nextPageToken: string }>(
      await cli(p, "volume", "list", "--limit", "2", "--page-token", token, "--json"),
    );
    expect(second.volumes).toHaveLength(1);
    const all = json<{ volumes: Array<{ id: string }>; nextPageToken: string }>(
      await cli(p, "volume", "list", "--limit", "2", "--all-pages", "--json"),
    );
    expect(all.volumes.map((v) => v.id).sort()).toEqual([...ids].sort());
    expect(all.nextPageToken).toBe("");
  });

  it("shows the quota as a table and as JSON", async () => {
    const p = uniqueName("cli-");
    await cli(p, "volume", "create", "--name", "q", "--size", "2", "--wait");
    const table = await cli(p, "quota", "show");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^RESOURCE\s+LIMIT\s+IN_USE$/m);
    expect(table.stdout).toMatch(/^volumes\s+10\s+1$/m);
    expect(table.stdout).toMatch(/^gigabytes\s+1000\s+2$/m);
    const doc = json<{ projectId: string; quotas: unknown[] }>(await cli(p, "quota", "show", "--json"));
    expect(doc.projectId).toBe(p);
    expect(doc.quotas).toContainEqual({ resource: "snapshots", limit: 10, inUse: 0 });
  });

  it("exits with the documented codes: usage 2, not found 3, quota 6, admin only 8, unreachable 9, failed 11", async () => {
    const p = uniqueName("cli-");
    const typo = await cli(p, "volume", "create", "--sise", "1");
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("unknown flag --sise");
    const badLimit = await cli(p, "volume", "list", "--limit", "ten");
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toContain("--limit");
    const badStatus = await cli(p, "snapshot", "list", "--status", "sleeping");
    expect(badStatus.code).toBe(2);
    expect(badStatus.stderr).toContain("--status");
    const noProject = await cli("", "volume", "list");
    expect(noProject.code).toBe(2);
    expect(noProject.stderr).toContain("--project");
    const noSize = await cli(p, "volume", "create", "--name", "x");
    expect(noSize.code).toBe(2);
    expect(noSize.stderr).toContain("--size");
    expect((await cli(p, "volume", "show")).code).toBe(2);

    const missing = await cli(p, "volume", "show", randomUUID());
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain("NOT_FOUND");
    expect((await cli(p, "snapshot", "delete", randomUUID())).code).toBe(3);
    const invalid = await cli(p, "volume", "create", "--name", "x", "--size", "0");
    expect(invalid.code).toBe(4);
    expect(invalid.stderr).toContain("INVALID_ARGUMENT: size_gb: must be at least 1");

    await call((done) =>
      quotas.updateQuotas({ projectId: p, limits: { volumes: 0 } }, identity(p, "root", "admin"), done),
    );
    const overQuota = await cli(p, "volume", "create", "--name", "x", "--size", "1");
    expect(overQuota.code).toBe(6);
    expect(overQuota.stderr).toContain("quota exceeded for volumes");

    const notAdmin = await cli(p, "volume", "list", "--all-projects");
    expect(notAdmin.code).toBe(8);

    const unreachable = await cli(p, "volume", "list", "--api", "127.0.0.1:1");
    expect(unreachable.code).toBe(9);
    expect(unreachable.stderr).toContain("UNAVAILABLE");

    // No backend is in that zone: the scheduler puts the volume in error, --wait exits 11.
    const failed = await cli(
      uniqueName("cli-"),
      "volume",
      "create",
      "--name",
      "x",
      "--size",
      "1",
      "--availability-zone",
      "nowhere",
      "--wait",
    );
    expect(failed.code).toBe(11);
    expect(failed.stderr).toMatch(/ended in error: no valid backend/);
    expect(failed.stdout).toMatch(/^status\s+error$/m);
  });

  it("streams events as JSON lines", async () => {
    const p = uniqueName("cli-");
    const watcher = start(p, ["events", "--json", "--type", "volume.create.end", "--count", "1"]);
    const created: string[] = [];
    // NOTE: nothing tells a client when the server's subscription is live, so volumes are created
    // until one's event arrives (the first normally does).
    for (let attempt = 0; attempt < 5 && watcher.child.exitCode === null; attempt++) {
      created.push(String(json(await cli(p, "volume", "create", "--name", "e", "--size", "1", "--wait", "--json")).id));
      await Promise.race([watcher.result, new Promise((r) => setTimeout(r, 1000 * (attempt + 1)))]);
    }
    const result = await watcher.result;
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    const event = JSON.parse(lines[0] ?? "") as { eventType: string; payload: Record<string, unknown> };
    expect(event.eventType).toBe("volume.create.end");
    expect(created).toContain(event.payload.volume_id);
    expect(event.payload.tenant_id).toBe(p);
  });

  it("manages volume types (admin), retypes a volume to one with --wait and clones it with --source-volume", async () => {
    const p = uniqueName("cli-types-");
    const name = uniqueName("cli-type-");
    const refused = await cli(p, "type", "create", name);
    expect(refused.code).toBe(8);

    const made = await cli(
      p,
      "type",
      "create",
      name,
      "--property",
      "volume_backend_name=file",
      "--description",
      "from the cli",
      "--admin",
      "--json",
    );
    expect(made.code).toBe(0);
    const type = json(made);
    expect(type).toMatchObject({
      name,
      description: "from the cli",
      isPublic: true,
      extraSpecs: { volume_backend_name: "file" },
    });
    const typeId = String(type.id);
    const hidden = json(await cli(p, "type", "create", uniqueName("cli-private-"), "--private", "--admin", "--json"));
    expect(hidden.isPublic).toBe(false);

    const listed = await cli(p, "type", "list", "--all-pages");
    expect(listed.code).toBe(0);
    expect(listed.stdout.split("\n")[0]?.split(/\s+/)).toEqual(["ID", "NAME", "PUBLIC", "DESCRIPTION", "EXTRA_SPECS"]);
    expect(listed.stdout).toMatch(new RegExp(`^${typeId}\\s+${name}\\s+true\\s+from the cli`, "m"));
    // A member sees only the user-visible extra specs, and not the private type.
    expect(listed.stdout).not.toContain("volume_backend_name");
    expect(listed.stdout).not.toContain(String(hidden.id));
    const byName = await cli(p, "type", "show", name);
    expect(byName.code).toBe(0);
    expect(byName.stdout).toMatch(new RegExp(`^id\\s+${typeId}$`, "m"));
    expect(json(await cli(p, "type", "show", typeId, "--json"))).toMatchObject({ id: typeId, name });
    const missing = await cli(p, "type", "show", uniqueName("no-such-type-"));
    expect(missing.code).toBe(3);

    const volumeId = String(
      json(await cli(p, "volume", "create", "--name", "r", "--size", "1", "--wait", "--json")).id,
    );
    const badPolicy = await cli(p, "volume", "retype", volumeId, name, "--migration-policy", "always");
    expect(badPolicy.code).toBe(2);
    expect(badPolicy.stderr).toContain("--migration-policy: expected never or on-demand, got 'always'");
    const retyped = await cli(p, "volume", "retype", volumeId, name, "--migration-policy", "never", "--wait", "--json");
    expect(retyped.code).toBe(0);
    expect(json(retyped)).toMatchObject({
      id: volumeId,
      volumeType: name,
      volumeTypeId: typeId,
      status: "VOLUME_STATUS_AVAILABLE",
    });

    const cloned = await cli(p, "volume", "create", "--name", "copy", "--source-volume", volumeId, "--wait", "--json");
    expect(cloned.code).toBe(0);
    const clone = json(cloned);
    expect(clone).toMatchObject({
      sourceVolumeId: volumeId,
      sizeGb: 1,
      volumeType: name,
      status: "VOLUME_STATUS_AVAILABLE",
    });

    const inUse = await cli(p, "type", "delete", name, "--admin");
    expect(inUse.code).toBe(5);
    for (const id of [String(clone.id), volumeId])
      expect((await cli(p, "volume", "delete", id, "--wait")).code).toBe(0);
    const deleted = await cli(p, "type", "delete", name, "--admin");
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toBe(`volume type ${typeId} (${name}) deleted\n`);
    expect((await cli(p, "type", "show", typeId)).code).toBe(3);
  });
});
