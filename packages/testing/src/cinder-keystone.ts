import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { KEYSTONE_USERS, type PrivateKeystone, startPrivateKeystone } from "./keystone.js";
import { type Stack, type StackOptions, startStack } from "./stack.js";

const run = promisify(execFile);

/** A private Keystone and a stack whose api validates its tokens and serves the Cinder v3 REST listener. */
export interface KeystoneCinder {
  keystone: PrivateKeystone;
  stack: Stack;
  /** The REST listener's base URL, `http://127.0.0.1:<port>` (no `/v3`). */
  rest: string;
  /** Stops the stack and removes the Keystone. */
  stop(): Promise<void>;
}

/** This process's environment without any `OS_*` login of the machine's own. */
export function envWithoutOsLogin(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OS_")));
}

/** The `OS_*` login of one of {@link KEYSTONE_USERS} on `keystoneUrl`, as a user of a real cloud has it. */
export function keystoneLoginEnv(keystoneUrl: string, who: keyof typeof KEYSTONE_USERS): NodeJS.ProcessEnv {
  const user = KEYSTONE_USERS[who];
  return {
    ...envWithoutOsLogin(),
    OS_AUTH_URL: keystoneUrl,
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

/** The api's settings for the keystone strategy against the Keystone at `url`, as its service user. */
export function keystoneStrategyEnv(url: string): Record<string, string> {
  return {
    CINDERBLOCK_AUTH_STRATEGY: "keystone",
    CINDERBLOCK_KEYSTONE_URL: url,
    CINDERBLOCK_KEYSTONE_USERNAME: KEYSTONE_USERS.service.username,
    CINDERBLOCK_KEYSTONE_PASSWORD: KEYSTONE_USERS.service.password,
    CINDERBLOCK_KEYSTONE_PROJECT_NAME: KEYSTONE_USERS.service.projectName,
  };
}

/**
 * Starts a private Keystone and a stack with `CINDERBLOCK_AUTH_STRATEGY=keystone` and the REST
 * listener on, then registers the listener in the catalog as a Cinder deployment does: for each of
 * `serviceTypes` (default `volumev3`) a service with public, internal and admin endpoints at
 * `/v3/%(project_id)s`, made with Debian's `openstack` (python3-openstackclient) as admin.
 */
export async function startKeystoneCinder(
  options: { serviceTypes?: readonly string[]; stack?: StackOptions } = {},
): Promise<KeystoneCinder> {
  const keystone = await startPrivateKeystone();
  let stack: Stack | undefined;
  try {
    stack = await startStack({
      ...options.stack,
      env: {
        ...keystoneStrategyEnv(keystone.url),
        CINDERBLOCK_REST_LISTEN: "127.0.0.1:0",
        ...options.stack?.env,
      },
    });
    const rest = `http://127.0.0.1:${String((await stack.api.waitFor("rest listening")).port)}`;
    const env = keystoneLoginEnv(keystone.url, "admin");
    const openstack = async (args: string[]) =>
      JSON.parse((await run("openstack", [...args, "-f", "json"], { env, timeout: 60_000 })).stdout) as {
        id: string;
      };
    for (const type of options.serviceTypes ?? ["volumev3"]) {
      const service = await openstack(["service", "create", "--name", `cinderblock-${type}`, type]);
      for (const iface of ["public", "internal", "admin"]) {
        await openstack([
          "endpoint",
          "create",
          "--region",
          "RegionOne",
          service.id,
          iface,
          `${rest}/v3/%(project_id)s`,
        ]);
      }
    }
    const started = stack;
    return {
      keystone,
      stack: started,
      rest,
      async stop() {
        await started.stop();
        await keystone.destroy();
      },
    };
  } catch (error) {
    await stack?.stop();
    await keystone.destroy();
    throw error;
  }
}
