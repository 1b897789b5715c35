import { readFileSync } from "node:fs";
import { CinderblockError } from "@cinderblock/domain";
import {
  createRemoteJWKSet,
  customFetch,
  errors,
  type FetchImplementation,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import type { Authenticator, CallCredentials, Identity } from "./authenticator.js";
import { sendRequest } from "./http.js";

/** How the api checks bearer tokens (the CINDERBLOCK_JWT_* settings). */
export interface JwtAuthenticatorOptions {
  /** The `iss` tokens must carry; OIDC discovery starts at `<issuer>/.well-known/openid-configuration`. */
  issuer: string;
  /** The `aud` tokens must carry. */
  audience: string;
  /** The JWKS URL; default: the discovery document's `jwks_uri`. */
  jwksUrl?: string;
  /** Accepted signature algorithms (default RS256, PS256, ES256, EdDSA); none and HS* are refused. */
  algorithms?: string[];
  /** Seconds of clock difference tolerated on `exp` and `nbf` (default 30, at most 300). */
  clockSkewSeconds?: number;
  /** Dotted path of the claim with the project id (default `project_id`). */
  projectClaim?: string;
  /** Dotted path of the claim with the user id (default `sub`). */
  userClaim?: string;
  /** Dotted path of the claim with the roles: an array, or a space/comma separated string (default `roles`). */
  rolesClaim?: string;
  /** A PEM file of CA certificates for the issuer's https endpoints (default: the system roots). */
  caFile?: string;
  /**
   * Milliseconds after a JWKS fetch during which a token with an unknown `kid` does not cause
   * another fetch (default 30000): one refresh picks up a rotated key, a flood of made-up `kid`s
   * cannot make the api hammer the issuer.
   */
  jwksCooldownMs?: number;
  /** Milliseconds a fetched JWKS is used before it is fetched again (default 600000). */
  jwksMaxAgeMs?: number;
  /** Milliseconds one request to the issuer may take (default 5000). */
  timeoutMs?: number;
}

const DEFAULT_ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"];
const ASYMMETRIC = /^(RS|PS|ES)(256|384|512)$|^EdDSA$/;
const BEARER = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)$/i;
const MAX_TOKEN_LENGTH = 16 * 1024;

/**
 * The `jwt` strategy: `authorization: Bearer <JWT>` metadata checked against an OIDC issuer's keys
 * (JWKS from `jwksUrl` or discovery): the signature with an allowed algorithm, `iss`, `aud`, and
 * `exp`/`nbf` within the clock skew (`exp` is required). A token whose `kid` is not in the cached
 * key set causes one refresh (at most one per cooldown), so a rotated-in key is picked up and a
 * rotated-out key stops working at the next refresh. Project, user and roles come from the
 * configured claims. Refusals say why (expired, wrong audience, ...) and never carry the token.
 *
 * Throws at creation when the algorithm list holds `none` or an HS* (shared-secret) algorithm: with
 * a public key set, an HS token "signed" with the public key would otherwise verify.
 */
export function createJwtAuthenticator(options: JwtAuthenticatorOptions): Authenticator {
  const algorithms = options.algorithms ?? DEFAULT_ALGORITHMS;
  const refused = algorithms.filter((alg) => !ASYMMETRIC.test(alg));
  if (algorithms.length === 0 || refused.length > 0) {
    throw new Error(
      `CINDERBLOCK_JWT_ALGORITHMS: not accepted: ${refused.join(", ") || "(empty)"} (only RS*, PS*, ES* and EdDSA; never none or HS*)`,
    );
  }
  const skew = options.clockSkewSeconds ?? 30;
  if (!Number.isInteger(skew) || skew < 0 || skew > 300) {
    throw new Error("CINDERBLOCK_JWT_CLOCK_SKEW: expected 0 to 300 seconds");
  }
  const projectClaim = options.projectClaim ?? "project_id";
  const userClaim = options.userClaim ?? "sub";
  const rolesClaim = options.rolesClaim ?? "roles";
  const timeoutMs = options.timeoutMs ?? 5000;
  const ca = options.caFile === undefined ? undefined : readFileSync(options.caFile);

  // NOTE: our own fetch (node:http/https, fresh connection, optional CA) instead of the global one,
  // which cannot take a CA file without the undici package.
  const fetchJson: FetchImplementation = async (url, init) => {
    const response = await sendRequest(new URL(url), {
      headers: Object.fromEntries(init.headers.entries()),
      timeoutMs,
      signal: init.signal,
      ca,
    });
    return new Response(response.body, { status: response.status });
  };

  let keys: Promise<JWTVerifyGetKey> | undefined;
  async function resolveKeys(): Promise<JWTVerifyGetKey> {
    const url = options.jwksUrl ?? (await discoverJwksUri(options.issuer, fetchJson, timeoutMs));
    return createRemoteJWKSet(new URL(url), {
      cooldownDuration: options.jwksCooldownMs ?? 30_000,
      cacheMaxAge: options.jwksMaxAgeMs ?? 600_000,
      timeoutDuration: timeoutMs,
      [customFetch]: fetchJson,
    });
  }
  function keySet(): Promise<JWTVerifyGetKey> {
    if (!keys) {
      keys = resolveKeys();
      // A failed discovery is tried again on the next call, not remembered.
      keys.catch(() => {
        keys = undefined;
      });
    }
    return keys;
  }

  return {
    strategy: "jwt",
    async authenticate(call: CallCredentials): Promise<Identity> {
      const token = bearerOf(call);
      const getKey = await keySet();
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          issuer: options.issuer,
          audience: options.audience,
          algorithms,
          clockTolerance: skew,
          requiredClaims: ["exp"],
        }));
      } catch (error) {
        throw refusal(error);
      }
      const projectId = claimText(payload, projectClaim);
      if (projectId === undefined) {
        throw new CinderblockError("UNAUTHENTICATED", `token has no project (claim ${projectClaim})`);
      }
      const userId = claimText(payload, userClaim);
      if (userId === undefined) {
        throw new CinderblockError("UNAUTHENTICATED", `token has no user (claim ${userClaim})`);
      }
      return {
        projectId,
        userId,
        roles: claimRoles(payload, rolesClaim),
        ...(typeof payload.exp === "number" ? { expiresAt: new Date(payload.exp * 1000) } : {}),
      };
    },
  };
}

function bearerOf(call: CallCredentials): string {
  const values = call.metadata.get("authorization");
  if (values.length === 0)
    throw new CinderblockError("UNAUTHENTICATED", "missing authorization metadata (Bearer token)");
  if (values.length > 1) throw new CinderblockError("UNAUTHENTICATED", "more than one authorization metadata value");
  const value = String(values[0]).trim();
  if (value.length > MAX_TOKEN_LENGTH) throw new CinderblockError("UNAUTHENTICATED", "token is too long");
  const match = BEARER.exec(value);
  if (!match?.[1]) {
    throw new CinderblockError("UNAUTHENTICATED", "authorization metadata is not 'Bearer <JWT>'");
  }
  return match[1];
}

async function discoverJwksUri(issuer: string, fetchJson: FetchImplementation, timeoutMs: number): Promise<string> {
  const where = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  let document: { issuer?: unknown; jwks_uri?: unknown };
  try {
    const response = await fetchJson(where, {
      method: "GET",
      redirect: "manual",
      headers: new Headers({ accept: "application/json" }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
    document = (await response.json()) as typeof document;
  } catch (error) {
    throw new CinderblockError(
      "UNAVAILABLE",
      `the token issuer's discovery document (${where}) cannot be read; try again`,
      { cause: error },
    );
  }
  if (document.issuer !== issuer) {
    throw new CinderblockError(
      "UNAVAILABLE",
      `the discovery document at ${where} names another issuer (${String(document.issuer)}); check CINDERBLOCK_JWT_ISSUER`,
    );
  }
  if (typeof document.jwks_uri !== "string") {
    throw new CinderblockError("UNAVAILABLE", `the discovery document at ${where} has no jwks_uri`);
  }
  return document.jwks_uri;
}

/** Why jose refused a token, as the caller should read it. */
function refusal(error: unknown): CinderblockError {
  const unauthenticated = (reason: string) => new CinderblockError("UNAUTHENTICATED", reason, { cause: error });
  if (error instanceof errors.JWTExpired) return unauthenticated("token has expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case "nbf":
        return unauthenticated("token is not valid yet (nbf)");
      case "aud":
        return unauthenticated("token has the wrong audience (aud)");
      case "iss":
        return unauthenticated("token has the wrong issuer (iss)");
      case "exp":
        return unauthenticated("token has no valid expiry (exp)");
      default:
        return unauthenticated(`token claim ${safe(error.claim)} is not valid (${safe(error.reason)})`);
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return unauthenticated("token is signed with an algorithm that is not accepted");
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return unauthenticated("token signature is not valid");
  if (error instanceof errors.JWKSNoMatchingKey)
    return unauthenticated("token is signed with a key the issuer does not publish");
  if (error instanceof errors.JWKSMultipleMatchingKeys)
    return unauthenticated("token names no key (kid) and several match");
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid)
    return unauthenticated("token is malformed");
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error instanceof errors.JOSEError) {
    return new CinderblockError("UNAVAILABLE", "the token issuer's keys (JWKS) cannot be read; try again", {
      cause: error,
    });
  }
  if (error instanceof CinderblockError) return error;
  // The key set could not be fetched (connection refused, reset, TLS failure).
  return new CinderblockError("UNAVAILABLE", "the token issuer's keys (JWKS) cannot be read; try again", {
    cause: error,
  });
}

/** A claim value for a message: short and plain (it comes from the token). */
function safe(text: string): string {
  return text.replace(/[^A-Za-z0-9_. -]/g, "").slice(0, 64);
}

function claim(payload: JWTPayload, path: string): unknown {
  let value: unknown = payload;
  for (const part of path.split(".")) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function claimText(payload: JWTPayload, path: string): string | undefined {
  const value = claim(payload, path);
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
}

/** Roles as the issuer spelled them: an array of strings, or one space/comma separated string. */
function claimRoles(payload: JWTPayload, path: string): string[] {
  const value = claim(payload, path);
  if (Array.isArray(value)) return value.filter((role): role is string => typeof role === "string" && role !== "");
  if (typeof value === "string") return value.split(/[\s,]+/).filter((role) => role !== "");
  return [];
}
