import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { type FlagValues, stringFlag, UsageError } from "./args.js";
import { CliFailure } from "./commands.js";
import { EXIT } from "./exit-codes.js";

/** A Keystone v3 password login (the `OS_*` variables of an openrc file). */
export interface KeystonePasswordLogin {
  /** OS_AUTH_URL, with `/v3` added when it names no version. */
  authUrl: string;
  username: string;
  password: string;
  projectName: string;
  userDomainName: string;
  projectDomainName: string;
  /** OS_CACERT: the CA of an https Keystone. */
  caFile?: string;
}

/** How the CLI proves who it is. */
export type Credentials =
  /** Development only (the api's noauth strategy): the identity is whatever these say. */
  | { kind: "noauth"; projectId: string; userId: string; roles: string[] }
  /** A token: Keystone's goes in `x-auth-token`, an OIDC/JWT one in `authorization: Bearer`. */
  | { kind: "token"; token: string; tokenType: "keystone" | "bearer" }
  /** Log in to Keystone first, then send the token it issues. */
  | { kind: "keystone-password"; login: KeystonePasswordLogin };

/** TLS to the api: off, or on with the system roots or a CA file. */
export type TlsOption = { caFile?: string } | undefined;

const TRUE = /^(1|true|yes)$/i;
const FALSE = /^(0|false|no|)$/i;
const NOAUTH_FLAGS = ["project", "user", "roles", "admin"] as const;

function boolEnv(env: Record<string, string | undefined>, name: string): boolean {
  const value = env[name] ?? "";
  if (!TRUE.test(value) && !FALSE.test(value)) {
    throw new UsageError(`${name}: expected 1/true/yes or 0/false/no, got '${value}'`);
  }
  return TRUE.test(value);
}

/**
 * Who the CLI acts as, from flags first, then the environment: a token (`--token`,
 * CINDERBLOCK_TOKEN), else a Keystone password login when OS_AUTH_URL is set, else noauth's
 * self-declared identity (`--project`, ... for development).
 */
export function credentialsFrom(flags: FlagValues, env: Record<string, string | undefined>): Credentials {
  const token = stringFlag(flags, "token") || env.CINDERBLOCK_TOKEN || "";
  const tokenType = stringFlag(flags, "token-type") || env.CINDERBLOCK_TOKEN_TYPE || "keystone";
  if (tokenType !== "keystone" && tokenType !== "bearer") {
    throw new UsageError(`--token-type: expected keystone or bearer, got '${tokenType}'`);
  }
  const authUrl = env.OS_AUTH_URL ?? "";
  if (token || authUrl) {
    const noauth = NOAUTH_FLAGS.find((name) => flags[name] !== undefined);
    if (noauth) {
      throw new UsageError(
        `--${noauth} is for the api's noauth (development) mode; with ${token ? "a token" : "OS_AUTH_URL"} the project, user and roles come from the token`,
      );
    }
  }
  if (token) return { kind: "token", token, tokenType };
  if (authUrl) {
    if (tokenType === "bearer")
      throw new UsageError("--token-type bearer needs --token (OS_AUTH_URL gives a Keystone token)");
    const missing = ["OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME"].filter((name) => !env[name]);
    if (missing.length > 0) {
      throw new UsageError(`OS_AUTH_URL is set, but ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} not`);
    }
    return {
      kind: "keystone-password",
      login: {
        authUrl: versioned(authUrl),
        username: env.OS_USERNAME ?? "",
        password: env.OS_PASSWORD ?? "",
        projectName: env.OS_PROJECT_NAME ?? "",
        userDomainName: env.OS_USER_DOMAIN_NAME || "Default",
        projectDomainName: env.OS_PROJECT_DOMAIN_NAME || "Default",
        ...(env.OS_CACERT ? { caFile: env.OS_CACERT } : {}),
      },
    };
  }
  const projectId = stringFlag(flags, "project") || env.CINDERBLOCK_PROJECT || "";
  if (!projectId) {
    throw new UsageError(
      "--project is required (or set CINDERBLOCK_PROJECT), or give a --token, or OS_AUTH_URL and its OS_* variables",
    );
  }
  const userId = stringFlag(flags, "user") || env.CINDERBLOCK_USER || env.USER || "";
  if (!userId) throw new UsageError("--user is required (or set CINDERBLOCK_USER)");
  const roles = (stringFlag(flags, "roles") || env.CINDERBLOCK_ROLES || "")
    .split(",")
    .map((r) => r.trim())
    .filter((r) => r !== "");
  if ((flags.admin === true || boolEnv(env, "CINDERBLOCK_ADMIN")) && !roles.includes("admin")) roles.push("admin");
  return { kind: "noauth", projectId, userId, roles };
}

/**
 * TLS to the api: on with `--cacert`/CINDERBLOCK_CACERT (that CA), with `--tls`/CINDERBLOCK_TLS or an
 * `https://` api address (OS_CACERT if set, else the system roots); off otherwise.
 */
export function tlsFrom(flags: FlagValues, env: Record<string, string | undefined>, httpsAddress: boolean): TlsOption {
  const caFile = stringFlag(flags, "cacert") || env.CINDERBLOCK_CACERT || "";
  if (caFile) return { caFile };
  if (flags.tls === true || boolEnv(env, "CINDERBLOCK_TLS") || httpsAddress) {
    return env.OS_CACERT ? { caFile: env.OS_CACERT } : {};
  }
  return undefined;
}

/** `OS_AUTH_URL` as the v3 endpoint (openrc files often give the bare `http://host:5000`). */
function versioned(url: string): string {
  const trimmed = url.replace(/\/+$/, "");
  return /\/v3$/.test(trimmed) ? trimmed : `${trimmed}/v3`;
}

/** Reads a PEM file named by a flag or variable; a missing file is a usage error naming it. */
export async function readCaFile(path: string, setting: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new UsageError(`${setting}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}

/**
 * A project-scoped password login against Keystone v3: the token it issues (its X-Subject-Token).
 * Fails with exit 8 when Keystone refuses the credentials, 9 when it cannot be reached.
 */
export async function keystonePasswordLogin(login: KeystonePasswordLogin, timeoutMs: number): Promise<string> {
  const url = new URL(`${login.authUrl}/auth/tokens`);
  const ca = login.caFile ? await readCaFile(login.caFile, "OS_CACERT") : undefined;
  const body = JSON.stringify({
    auth: {
      identity: {
        methods: ["password"],
        password: {
          user: { name: login.username, domain: { name: login.userDomainName }, password: login.password },
        },
      },
      scope: { project: { name: login.projectName, domain: { name: login.projectDomainName } } },
    },
  });
  let answer: { status: number; token: string | undefined };
  try {
    answer = await new Promise((resolve, reject) => {
      const send = url.protocol === "https:" ? httpsRequest : httpRequest;
      // NOTE: a fresh connection, closed after: Keystone under uWSGI drops it after each response.
      const req = send(
        url,
        {
          method: "POST",
          agent: false,
          headers: {
            "content-type": "application/json",
            "content-length": String(Buffer.byteLength(body)),
            connection: "close",
          },
          signal: AbortSignal.timeout(timeoutMs),
          ...(ca ? { ca } : {}),
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            const token = res.headers["x-subject-token"];
            resolve({ status: res.statusCode ?? 0, token: typeof token === "string" ? token : undefined });
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  } catch (error) {
    throw new CliFailure(
      `Keystone (OS_AUTH_URL=${login.authUrl}) cannot be reached: ${(error as Error).message}`,
      EXIT.UNAVAILABLE,
    );
  }
  if (answer.status === 401) {
    throw new CliFailure(
      `Keystone refused the login of OS_USERNAME=${login.username} on OS_PROJECT_NAME=${login.projectName} (HTTP 401)`,
      EXIT.DENIED,
    );
  }
  if (answer.status !== 201 || !answer.token) {
    throw new CliFailure(`Keystone answered the login with HTTP ${answer.status}`, EXIT.UNAVAILABLE);
  }
  return answer.token;
}
