import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { backendScripts } from "./backends.js";
import { freePort } from "./ports.js";

const execFileAsync = promisify(execFile);

/** The users `scripts/keystone/up.sh` makes (name, password, project; all in domain Default). */
export const KEYSTONE_USERS = {
  /** role admin on project admin */
  admin: { username: "admin", password: "admin", projectName: "admin" },
  /** role member (implies reader) on project demo */
  demo: { username: "demo", password: "demo", projectName: "demo" },
  /** role service on project service: may validate other users' tokens */
  service: { username: "cinder", password: "cinder", projectName: "service" },
} as const;

/** A private Keystone on 127.0.0.1 (scripts/keystone/up.sh), its files in a temp dir. */
export interface PrivateKeystone {
  /** The identity v3 endpoint, `http://127.0.0.1:<port>/v3`. */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stops it and keeps its database and keys (a later `start` serves them again in ~2-3 s). */
  stop(): Promise<void>;
  /** Serves the kept directory again, e.g. with another token lifetime (seconds). */
  start(options?: { tokenTtl?: number }): Promise<void>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

/**
 * Starts a private Keystone (first run ~6-12 s: database, keys, bootstrap, the users of
 * {@link KEYSTONE_USERS}). Needs scripts/keystone/setup.sh's packages (see its check.sh).
 */
export async function startPrivateKeystone(options: { tokenTtl?: number } = {}): Promise<PrivateKeystone> {
  const dir = await mkdtemp(join(tmpdir(), "cinderblock-keystone-"));
  const port = await freePort();
  const scripts = backendScripts("keystone");
  const up = async (tokenTtl?: number) => {
    await execFileAsync(join(scripts, "up.sh"), [dir, String(port)], {
      env: { ...process.env, TOKEN_TTL: String(tokenTtl ?? 3600) },
    });
  };
  const down = async (keep: boolean) => {
    await execFileAsync(join(scripts, "down.sh"), [dir], { env: { ...process.env, KEEP: keep ? "1" : "0" } });
  };
  try {
    await up(options.tokenTtl);
  } catch (error) {
    await down(false).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `http://127.0.0.1:${port}/v3`,
    port,
    dir,
    stop: () => down(true),
    start: (next) => up(next?.tokenTtl),
    async destroy() {
      await down(false);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** What a password login returned: the token and Keystone's body (user, project, roles, expiry). */
export interface KeystoneLogin {
  token: string;
  body: {
    token: {
      expires_at: string;
      user: { id: string; name: string };
      project?: { id: string; name: string };
      roles?: { id: string; name: string }[];
    };
  };
}

/**
 * A password login against `url` (identity v3), project-scoped, as a client would do it; done here
 * with plain node:http so that tests do not check the code under test with itself.
 */
export async function keystoneLogin(
  url: string,
  user: { username: string; password: string; projectName?: string },
): Promise<KeystoneLogin> {
  const body = JSON.stringify({
    auth: {
      identity: {
        methods: ["password"],
        password: { user: { name: user.username, domain: { id: "default" }, password: user.password } },
      },
      ...(user.projectName ? { scope: { project: { name: user.projectName, domain: { id: "default" } } } } : {}),
    },
  });
  const response = await keystoneRequest("POST", `${url}/auth/tokens`, { "content-type": "application/json" }, body);
  if (response.status !== 201) throw new Error(`keystone login as ${user.username}: HTTP ${response.status}`);
  const token = response.headers["x-subject-token"];
  if (typeof token !== "string") throw new Error("keystone login: no X-Subject-Token");
  return { token, body: JSON.parse(response.body) as KeystoneLogin["body"] };
}

/** Revokes `token` (it revokes itself, as a logout does). */
export async function keystoneRevoke(url: string, token: string): Promise<void> {
  const response = await keystoneRequest("DELETE", `${url}/auth/tokens`, {
    "x-auth-token": token,
    "x-subject-token": token,
  });
  if (response.status !== 204) throw new Error(`keystone revoke: HTTP ${response.status}`);
}

/** What Keystone says of `token` when it validates itself: the status, and the body when 200. */
export async function keystoneTokenInfo(
  url: string,
  token: string,
): Promise<{ status: number; body?: KeystoneLogin["body"] }> {
  const response = await keystoneRequest("GET", `${url}/auth/tokens`, {
    "x-auth-token": token,
    "x-subject-token": token,
  });
  return response.status === 200
    ? { status: 200, body: JSON.parse(response.body) as KeystoneLogin["body"] }
    : { status: response.status };
}

function keystoneRequest(
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    // NOTE: agent false and Connection: close: uWSGI drops the connection after each response.
    const req = request(url, { method, headers: { ...headers, connection: "close" }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}
