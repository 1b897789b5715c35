import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  backendUnavailable,
  KEYSTONE_USERS,
  keystoneLogin,
  mustRunInCI,
  type PrivateKeystone,
  type Stack,
  settle,
  startPrivateKeystone,
  startStack,
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

let keystone: PrivateKeystone;
let stack: Stack;
let rest = "";

/** This process's environment without any OS_* login of the machine's own. */
const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OS_")));

/** The `OS_*` login of `who` on the private Keystone, as a user of a real cloud has it. */
function loginEnv(who: keyof typeof KEYSTONE_USERS): NodeJS.ProcessEnv {
  const user = KEYSTONE_USERS[who];
  return {
    ...cleanEnv(),
    OS_AUTH_URL: keystone.url,
    OS_IDENTITY_API_VERSION: "3",
    OS_USERNAME: user.username,
    OS_PASSWORD: user.password,
    OS_PROJECT_NAME: user.projectName,
    OS_USER_DOMAIN_ID: "default",
    OS_PROJECT_DOMAIN_ID: "default",
    OS_VOLUME_API_VERSION: "3",
    OS_INTERFACE: "public",
  };
}

/** `openstack ... -f json` logged in to the private Keystone as `who`. */
async function openstack(who: keyof typeof KEYSTONE_USERS, args: string[]): Promise<unknown> {
  const { stdout } = await run("openstack", args, { env: loginEnv(who), timeout: 60_000 });
  return stdout.trim() === "" ? undefined : JSON.parse(stdout);
}

type Shown = Record<string, unknown>;

beforeAll(async () => {
  if (why) return;
  keystone = await startPrivateKeystone();
  stack = await startStack({
    env: {
      CINDERBLOCK_AUTH_STRATEGY: "keystone",
      CINDERBLOCK_KEYSTONE_URL: keystone.url,
      CINDERBLOCK_KEYSTONE_USERNAME: KEYSTONE_USERS.service.username,
      CINDERBLOCK_KEYSTONE_PASSWORD: KEYSTONE_USERS.service.password,
      CINDERBLOCK_KEYSTONE_PROJECT_NAME: KEYSTONE_USERS.service.projectName,
      CINDERBLOCK_REST_LISTEN: "127.0.0.1:0",
    },
  });
  rest = `http://127.0.0.1:${String((await stack.api.waitFor("rest listening")).port)}`;
  // The catalog entry a Cinder deployment has: the volumev3 service at /v3/%(project_id)s.
  const service = (await openstack("admin", [
    "service",
    "create",
    "--name",
    "cinderv3",
    "volumev3",
    "-f",
    "json",
  ])) as Shown;
  for (const iface of ["public", "internal", "admin"]) {
    await openstack("admin", [
      "endpoint",
      "create",
      "--region",
      "RegionOne",
      String(service.id),
      iface,
      `${rest}/v3/%(project_id)s`,
      "-f",
      "json",
    ]);
  }
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await keystone?.destroy();
});

describe.skipIf(why)("Cinder v3 REST with a real Keystone", () => {
  it("serves a Keystone member through the catalog: cinder create and quota-usage, openstack volume list/show/delete", async () => {
    // NOTE: `openstack volume create` (openstackclient 6.0) needs an image service in the catalog
    // even without --image; cinderclient does not, so it makes the volume here.
    await run("cinder", ["create", "--name", "ks-vol", "1"], { env: loginEnv("demo"), timeout: 60_000 });
    const created = (await openstack("demo", ["volume", "show", "ks-vol", "-f", "json"])) as Shown;
    const demo = await keystoneLogin(keystone.url, KEYSTONE_USERS.demo);
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
