import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  backendUnavailable,
  KEYSTONE_USERS,
  type KeystoneCinder,
  keystoneLogin,
  keystoneLoginEnv,
  mustRunInCI,
  settle,
  startKeystoneCinder,
} from "@cinderblock/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The Cinder v3 REST listener with CINDERBLOCK_AUTH_STRATEGY=keystone: a private Keystone whose
// catalog names the listener as the volumev3/block-storage service, and Debian's openstackclient
// logging in with a password as users of a real cloud do.

const run = promisify(execFile);

async function clientMissing(): Promise<string | undefined> {
  try {
    await run("openstack", ["--version"]);
    return undefined;
  } catch {
    return "openstack is not installed (apt-get install python3-openstackclient)";
  }
}

const why = mustRunInCI(
  "Cinder REST with Keystone and openstackclient",
  (await backendUnavailable("keystone")) ?? (await clientMissing()),
);

let cloud: KeystoneCinder;
let rest = "";

/** `openstack ... -f json` logged in to the private Keystone as `who`. */
async function openstack(who: keyof typeof KEYSTONE_USERS, args: string[]): Promise<unknown> {
  const { stdout } = await run("openstack", args, { env: loginEnv(who), timeout: 60_000 });
  return stdout.trim() === "" ? undefined : JSON.parse(stdout);
}

/** The `OS_*` login of `who` on the private Keystone, as a user of a real cloud has it. */
const loginEnv = (who: keyof typeof KEYSTONE_USERS) => keystoneLoginEnv(cloud.keystone.url, who);

type Shown = Record<string, unknown>;

beforeAll(async () => {
  if (why) return;
  // The catalog entry a Cinder deployment has: the volumev3 service at /v3/%(project_id)s.
  cloud = await startKeystoneCinder();
  rest = cloud.rest;
}, 180_000);

afterAll(async () => {
  await cloud?.stop();
});

describe.skipIf(why)("Cinder v3 REST with a real Keystone", () => {
  it("serves a Keystone member through the catalog: cinder create and quota-usage, openstack volume list/show/delete", async () => {
    // NOTE: `openstack volume create` (openstackclient 6.0) needs an image service in the catalog
    // even without --image; cinderclient does not, so it makes the volume here.
    await run("cinder", ["create", "--name", "ks-vol", "1"], { env: loginEnv("demo"), timeout: 60_000 });
    const created = (await openstack("demo", ["volume", "show", "ks-vol", "-f", "json"])) as Shown;
    const demo = await keystoneLogin(cloud.keystone.url, KEYSTONE_USERS.demo);
    const shown = await settle(
      () => openstack("demo", ["volume", "show", "ks-vol", "-f", "json"]) as Promise<Shown>,
      (v) => v.status !== "creating",
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect(shown).toMatchObject({
      id: created.id,
      status: "available",
      "os-vol-tenant-attr:tenant_id": demo.body.token.project?.id,
      user_id: demo.body.token.user.id,
    });
    const listed = (await openstack("demo", ["volume", "list", "-f", "json"])) as Shown[];
    expect(listed.map((v) => v.ID)).toEqual([created.id]);

    // The admin sees it with --all-projects; the member's list stays its own project's.
    const all = (await openstack("admin", ["volume", "list", "--all-projects", "-f", "json"])) as Shown[];
    expect(all.map((v) => v.ID)).toContain(created.id);
    expect((await openstack("admin", ["volume", "list", "-f", "json"])) as Shown[]).toEqual([]);

    // NOTE: `openstack quota show` (openstackclient 6.0) needs a compute service in the catalog.
    const { stdout: quota } = await run("cinder", ["quota-usage", demo.body.token.project?.id ?? ""], {
      env: loginEnv("demo"),
      timeout: 60_000,
    });
    expect(quota).toMatch(/\|\s+volumes\s+\|\s+1\s+\|\s+0\s+\|\s+10\s+\|/);

    await openstack("demo", ["volume", "delete", "ks-vol"]);
    const gone = await settle(
      () => openstack("demo", ["volume", "list", "-f", "json"]) as Promise<Shown[]>,
      (all) => all.length === 0,
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect(gone).toEqual([]);
  });

  it("refuses a forged token with keystonemiddleware's 401", async () => {
    const res = await fetch(`${rest}/v3/volumes`, { headers: { "x-auth-token": "not-a-token" } });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: 401, title: "Unauthorized", message: expect.any(String) } });
  });
});
