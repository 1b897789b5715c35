import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { CinderblockError } from "@cinderblock/domain";
import type { Authenticator, CallCredentials, Identity } from "./authenticator.js";
import { type HttpResponse, headerValue, sendRequest } from "./http.js";

/** How the api reaches Keystone (the CINDERBLOCK_KEYSTONE_* settings). */
export interface KeystoneAuthenticatorOptions {
  /** The identity v3 endpoint, e.g. `http://127.0.0.1:5000/v3`. */
  url: string;
  /** The service user that validates callers' tokens (needs role `service` or `admin`). */
  username: string;
  password: string;
  /** The service user's project (default `service`). */
  projectName?: string;
  userDomainName?: string;
  projectDomainName?: string;
  /** A PEM file of CA certificates for an https Keystone (default: the system roots). */
  caFile?: string;
  /** Seconds a validated token is cached, never past its expiry (default 60; 0: no cache). */
  cacheSeconds?: number;
  /** Most validated tokens cached; the least recently used go first (default 10000). */
  cacheSize?: number;
  /** Milliseconds one request to Keystone may take (default 10000). */
  timeoutMs?: number;
}

const METADATA_KEY = "x-auth-token";
/** A Keystone token is a header value: visible ASCII, and fernet tokens are ~180-250 characters. */
const TOKEN_SHAPE = /^[\x21-\x7e]{1,8192}$/;
/** The service token is renewed this long before Keystone says it expires. */
const RENEW_MARGIN_MS = 60_000;

interface CachedIdentity {
  identity: Identity;
  until: number;
}

interface ServiceToken {
  token: string;
  expiresAt: number;
}

/**
 * The `keystone` strategy: the caller's `x-auth-token` metadata is validated against Keystone v3 the
 * way keystonemiddleware does it for Cinder (`GET /v3/auth/tokens` with the service's own token in
 * `X-Auth-Token` and the caller's in `X-Subject-Token`). The service token comes from a password
 * login scoped to the service project and is renewed before it expires, or when Keystone refuses
 * it. Only project-scoped tokens are accepted; the identity carries Keystone's project and user ids
 * and role names as Keystone spells them.
 *
 * Validated tokens are cached under a SHA-256 of the token (the token itself is never kept) for at
 * most `cacheSeconds` and never past their expiry, so a revoked token may be accepted for up to
 * `cacheSeconds` (keystonemiddleware's default is 300). Concurrent validations of one token share a
 * single request.
 */
export function createKeystoneAuthenticator(options: KeystoneAuthenticatorOptions): Authenticator {
  const base = options.url.replace(/\/+$/, "");
  const tokensUrl = new URL(`${base}/auth/tokens`);
  const ca = options.caFile === undefined ? undefined : readFileSync(options.caFile);
  const cacheMs = (options.cacheSeconds ?? 60) * 1000;
  const cacheSize = options.cacheSize ?? 10_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const cache = new Map<string, CachedIdentity>();
  const inflight = new Map<string, Promise<Identity>>();
  let service: ServiceToken | undefined;
  let login: Promise<ServiceToken> | undefined;
  let closed = false;

  async function send(init: { method: "GET" | "POST"; headers: Record<string, string>; body?: string }) {
    try {
      return await sendRequest(tokensUrl, { ...init, ca, timeoutMs });
    } catch (error) {
      throw new CinderblockError("UNAVAILABLE", `the identity service (Keystone) cannot be reached; try again`, {
        cause: error,
      });
    }
  }

  async function logIn(): Promise<ServiceToken> {
    const response = await send({
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(
        passwordAuth({
          username: options.username,
          password: options.password,
          projectName: options.projectName ?? "service",
          userDomainName: options.userDomainName ?? "Default",
          projectDomainName: options.projectDomainName ?? "Default",
        }),
      ),
    });
    if (response.status !== 201 && response.status !== 200) {
      throw new CinderblockError(
        "UNAVAILABLE",
        response.status === 401
          ? "the identity service (Keystone) refused the service's own credentials (CINDERBLOCK_KEYSTONE_USERNAME/PASSWORD/PROJECT_NAME)"
          : `the identity service (Keystone) answered the service's login with HTTP ${response.status}; try again`,
      );
    }
    const token = headerValue(response, "x-subject-token");
    const expires = Date.parse(String(parseBody(response)?.token?.expires_at));
    if (!token) throw new CinderblockError("UNAVAILABLE", "the identity service (Keystone) issued no service token");
    return { token, expiresAt: Number.isNaN(expires) ? Date.now() + RENEW_MARGIN_MS * 2 : expires };
  }

  /** The service token, logging in again when there is none, it is about to expire, or `renew`. */
  async function serviceToken(renew?: string): Promise<string> {
    if (service && service.token !== renew && service.expiresAt - RENEW_MARGIN_MS > Date.now()) return service.token;
    if (!login) {
      login = logIn().finally(() => {
        login = undefined;
      });
      service = await login;
      return service.token;
    }
    return (await login).token;
  }

  async function validate(token: string): Promise<Identity> {
    let used = await serviceToken();
    let response = await check(token, used);
    if (response.status === 401) {
      // Our own token was refused (expired early, revoked, keys rotated): log in again, once.
      used = await serviceToken(used);
      response = await check(token, used);
    }
    switch (response.status) {
      case 200:
        return identityFrom(response);
      case 404:
        throw new CinderblockError("UNAUTHENTICATED", "token is invalid, expired or revoked");
      case 400:
        throw new CinderblockError("UNAUTHENTICATED", "token is malformed");
      case 401:
        throw new CinderblockError(
          "UNAVAILABLE",
          "the identity service (Keystone) refused the service's own token; try again",
        );
      case 403:
        throw new CinderblockError(
          "UNAVAILABLE",
          "the service user may not validate tokens (it needs Keystone's service or admin role)",
        );
      default:
        throw new CinderblockError(
          "UNAVAILABLE",
          `the identity service (Keystone) answered HTTP ${response.status}; try again`,
        );
    }
  }

  function check(token: string, service: string): Promise<HttpResponse> {
    return send({
      method: "GET",
      headers: { accept: "application/json", "x-auth-token": service, "x-subject-token": token },
    });
  }

  function remember(key: string, identity: Identity): void {
    if (cacheMs <= 0 || closed) return;
    const until = Math.min(Date.now() + cacheMs, identity.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY);
    if (until <= Date.now()) return;
    cache.delete(key);
    cache.set(key, { identity, until });
    while (cache.size > cacheSize) {
      const oldest = cache.keys().next().value;
      if (oldest === undefined) break;
      cache.delete(oldest);
    }
  }

  function cached(key: string): Identity | undefined {
    const entry = cache.get(key);
    if (!entry) return undefined;
    cache.delete(key);
    if (entry.until <= Date.now()) return undefined;
    cache.set(key, entry); // most recently used last: eviction takes the first
    return entry.identity;
  }

  return {
    strategy: "keystone",
    async authenticate(call: CallCredentials, signal?: AbortSignal): Promise<Identity> {
      const token = tokenOf(call);
      const key = createHash("sha256").update(token).digest("base64url");
      const hit = cached(key);
      if (hit) return hit;
      let pending = inflight.get(key);
      if (!pending) {
        pending = validate(token)
          .then((identity) => {
            remember(key, identity);
            return identity;
          })
          .finally(() => inflight.delete(key));
        inflight.set(key, pending);
      }
      return signal ? abortable(pending, signal) : pending;
    },
    close() {
      closed = true;
      cache.clear();
    },
  };
}

/** The body of a project-scoped password login (Keystone v3). */
function passwordAuth(credentials: {
  username: string;
  password: string;
  projectName: string;
  userDomainName: string;
  projectDomainName: string;
}) {
  return {
    auth: {
      identity: {
        methods: ["password"],
        password: {
          user: {
            name: credentials.username,
            domain: { name: credentials.userDomainName },
            password: credentials.password,
          },
        },
      },
      scope: { project: { name: credentials.projectName, domain: { name: credentials.projectDomainName } } },
    },
  };
}

function tokenOf(call: CallCredentials): string {
  const values = call.metadata.get(METADATA_KEY);
  if (values.length === 0)
    throw new CinderblockError("UNAUTHENTICATED", `missing ${METADATA_KEY} metadata (a Keystone token)`);
  if (values.length > 1) throw new CinderblockError("UNAUTHENTICATED", `more than one ${METADATA_KEY} metadata value`);
  const token = String(values[0]).trim();
  if (!TOKEN_SHAPE.test(token)) throw new CinderblockError("UNAUTHENTICATED", "token is malformed");
  return token;
}

interface KeystoneTokenBody {
  token?: {
    expires_at?: unknown;
    project?: { id?: unknown; name?: unknown };
    user?: { id?: unknown; name?: unknown };
    roles?: { name?: unknown }[];
  };
}

function parseBody(response: HttpResponse): KeystoneTokenBody | undefined {
  try {
    return JSON.parse(response.body) as KeystoneTokenBody;
  } catch {
    return undefined;
  }
}

function identityFrom(response: HttpResponse): Identity {
  const token = parseBody(response)?.token;
  if (!token)
    throw new CinderblockError("UNAVAILABLE", "the identity service (Keystone) answered without a token body");
  const project = token.project;
  if (!project || typeof project.id !== "string") {
    throw new CinderblockError(
      "UNAUTHENTICATED",
      "token is not scoped to a project (log in with a project scope, e.g. OS_PROJECT_NAME)",
    );
  }
  if (typeof token.user?.id !== "string") {
    throw new CinderblockError("UNAVAILABLE", "the identity service (Keystone) answered without the token's user");
  }
  const expires = Date.parse(String(token.expires_at));
  return {
    projectId: project.id,
    userId: token.user.id,
    roles: (token.roles ?? []).flatMap((role) => (typeof role.name === "string" ? [role.name] : [])),
    ...(typeof project.name === "string" ? { projectName: project.name } : {}),
    ...(typeof token.user.name === "string" ? { userName: token.user.name } : {}),
    ...(Number.isNaN(expires) ? {} : { expiresAt: new Date(expires) }),
  };
}

/** `promise`, or a rejection when `signal` aborts first (the shared work goes on for the others). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
