import { z } from "zod";

const bool = z.preprocess(
  (v) => (typeof v === "boolean" ? String(v) : v),
  z.enum(["true", "false"], "expected true or false").transform((v) => v === "true"),
);

const optionalText = z.string().trim().min(1).optional();

/** Algorithms a JWT may be signed with: asymmetric only. */
const JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

/**
 * The api's identity settings (issue 13): which strategy authenticates callers and how it reaches
 * its identity provider. Spread into the api schema; {@link checkAuthSettings} adds the checks that
 * span several settings (what each strategy requires).
 */
export const authFields = {
  /** `noauth` (development: identity from x-project-id/x-user-id/x-roles), `keystone` or `jwt`. */
  CINDERBLOCK_AUTH_STRATEGY: z
    .enum(["noauth", "keystone", "jwt"], { error: "expected noauth, keystone or jwt" })
    .default("noauth"),
  /** noauth listens only on a loopback address unless this is true. */
  CINDERBLOCK_NOAUTH_ALLOW_REMOTE: bool.default(false),
  /** A policy file overriding the default rules (by Cinder's rule names). */
  CINDERBLOCK_POLICY_FILE: optionalText,

  /** The Keystone identity v3 endpoint, e.g. http://127.0.0.1:5000/v3. */
  CINDERBLOCK_KEYSTONE_URL: z
    .url({ protocol: /^https?$/, error: "expected an http(s) URL, e.g. http://keystone:5000/v3" })
    .optional(),
  /** The service user that validates callers' tokens (role `service`, as keystonemiddleware's). */
  CINDERBLOCK_KEYSTONE_USERNAME: optionalText,
  CINDERBLOCK_KEYSTONE_PASSWORD: z.string().min(1).optional(),
  CINDERBLOCK_KEYSTONE_PROJECT_NAME: z.string().trim().min(1).default("service"),
  CINDERBLOCK_KEYSTONE_USER_DOMAIN_NAME: z.string().trim().min(1).default("Default"),
  CINDERBLOCK_KEYSTONE_PROJECT_DOMAIN_NAME: z.string().trim().min(1).default("Default"),
  /** CA certificate(s) (PEM) to verify an https Keystone with, instead of the system roots. */
  CINDERBLOCK_KEYSTONE_CA_FILE: optionalText,
  /** Seconds a validated token is cached (never past its expiry); 0 validates every call. */
  CINDERBLOCK_KEYSTONE_CACHE_SECONDS: z.coerce.number().int().min(0).max(3600).default(60),
  /** Most validated tokens kept in the cache (the oldest go first). */
  CINDERBLOCK_KEYSTONE_CACHE_SIZE: z.coerce.number().int().min(1).max(1_000_000).default(10_000),

  /** The issuer (`iss`) tokens must carry; also the base of OIDC discovery. */
  CINDERBLOCK_JWT_ISSUER: optionalText,
  /** The audience (`aud`) tokens must carry. */
  CINDERBLOCK_JWT_AUDIENCE: optionalText,
  /** The JWKS URL; default: `jwks_uri` of `<issuer>/.well-known/openid-configuration`. */
  CINDERBLOCK_JWT_JWKS_URL: z
    .url({ protocol: /^https?$/, error: "expected an http(s) URL, e.g. https://idp/.well-known/jwks.json" })
    .optional(),
  /** Comma-separated allow-list of signature algorithms; `none` and HS* are never accepted. */
  CINDERBLOCK_JWT_ALGORITHMS: z
    .string()
    .default("RS256,PS256,ES256,EdDSA")
    .transform((text, ctx) => {
      const list = text
        .split(",")
        .map((a) => a.trim())
        .filter((a) => a !== "");
      const refused = list.filter((a) => !JWT_ALGORITHMS.includes(a));
      if (list.length === 0 || refused.length > 0) {
        ctx.addIssue({
          code: "custom",
          message:
            refused.length > 0
              ? `not accepted: ${refused.join(", ")} (none and HS* are never accepted; expected some of ${JWT_ALGORITHMS.join(", ")})`
              : `expected a comma-separated list of ${JWT_ALGORITHMS.join(", ")}`,
        });
        return z.NEVER;
      }
      return [...new Set(list)];
    }),
  /** Seconds of clock difference tolerated on `exp` and `nbf`. */
  CINDERBLOCK_JWT_CLOCK_SKEW: z.coerce
    .number()
    .int()
    .min(0, "expected 0 to 300 seconds")
    .max(300, "expected 0 to 300 seconds")
    .default(30),
  /** Dotted path of the claim holding the project id. */
  CINDERBLOCK_JWT_PROJECT_CLAIM: z.string().trim().min(1).default("project_id"),
  /** Dotted path of the claim holding the user id. */
  CINDERBLOCK_JWT_USER_CLAIM: z.string().trim().min(1).default("sub"),
  /** Dotted path of the claim holding the roles (an array, or a space/comma separated string). */
  CINDERBLOCK_JWT_ROLES_CLAIM: z.string().trim().min(1).default("roles"),
  /** CA certificate(s) (PEM) to verify the issuer's https endpoints with. */
  CINDERBLOCK_JWT_CA_FILE: optionalText,
};

type AuthSettings = {
  CINDERBLOCK_AUTH_STRATEGY: "noauth" | "keystone" | "jwt";
} & Partial<Record<keyof typeof authFields, unknown>>;

const REQUIRED: Record<"keystone" | "jwt", (keyof typeof authFields)[]> = {
  keystone: ["CINDERBLOCK_KEYSTONE_URL", "CINDERBLOCK_KEYSTONE_USERNAME", "CINDERBLOCK_KEYSTONE_PASSWORD"],
  jwt: ["CINDERBLOCK_JWT_ISSUER", "CINDERBLOCK_JWT_AUDIENCE"],
};

/** The settings a strategy cannot run without: each missing one is an issue naming it. */
export function checkAuthSettings(value: AuthSettings, ctx: z.RefinementCtx): void {
  const strategy = value.CINDERBLOCK_AUTH_STRATEGY;
  if (strategy === "noauth") return;
  for (const key of REQUIRED[strategy]) {
    if (value[key] === undefined) {
      ctx.addIssue({ code: "custom", path: [key], message: `required when CINDERBLOCK_AUTH_STRATEGY=${strategy}` });
    }
  }
}
