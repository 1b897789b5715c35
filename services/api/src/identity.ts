import { type ApiConfig, ConfigError } from "@cinderblock/config";
import {
  type Authenticator,
  assertNoauthAllowed,
  createGuard,
  createJwtAuthenticator,
  createKeystoneAuthenticator,
  createNoauthAuthenticator,
  type Guard,
  loadPolicy,
  PolicyError,
} from "@cinderblock/rpc";
import { API_METHOD_RULES } from "./rules.js";

/** The strategy CINDERBLOCK_AUTH_STRATEGY names, built from its settings. */
function createAuthenticator(config: ApiConfig): Authenticator {
  switch (config.CINDERBLOCK_AUTH_STRATEGY) {
    case "keystone":
      return createKeystoneAuthenticator({
        url: config.CINDERBLOCK_KEYSTONE_URL ?? "",
        username: config.CINDERBLOCK_KEYSTONE_USERNAME ?? "",
        password: config.CINDERBLOCK_KEYSTONE_PASSWORD ?? "",
        projectName: config.CINDERBLOCK_KEYSTONE_PROJECT_NAME,
        userDomainName: config.CINDERBLOCK_KEYSTONE_USER_DOMAIN_NAME,
        projectDomainName: config.CINDERBLOCK_KEYSTONE_PROJECT_DOMAIN_NAME,
        caFile: config.CINDERBLOCK_KEYSTONE_CA_FILE,
        cacheSeconds: config.CINDERBLOCK_KEYSTONE_CACHE_SECONDS,
        cacheSize: config.CINDERBLOCK_KEYSTONE_CACHE_SIZE,
      });
    case "jwt":
      return createJwtAuthenticator({
        issuer: config.CINDERBLOCK_JWT_ISSUER ?? "",
        audience: config.CINDERBLOCK_JWT_AUDIENCE ?? "",
        jwksUrl: config.CINDERBLOCK_JWT_JWKS_URL,
        algorithms: config.CINDERBLOCK_JWT_ALGORITHMS,
        clockSkewSeconds: config.CINDERBLOCK_JWT_CLOCK_SKEW,
        projectClaim: config.CINDERBLOCK_JWT_PROJECT_CLAIM,
        userClaim: config.CINDERBLOCK_JWT_USER_CLAIM,
        rolesClaim: config.CINDERBLOCK_JWT_ROLES_CLAIM,
        caFile: config.CINDERBLOCK_JWT_CA_FILE,
      });
    case "noauth":
      try {
        assertNoauthAllowed(config.CINDERBLOCK_API_LISTEN, config.CINDERBLOCK_NOAUTH_ALLOW_REMOTE);
        // The Cinder REST listener authenticates through this same strategy.
        if (config.CINDERBLOCK_REST_LISTEN) {
          assertNoauthAllowed(config.CINDERBLOCK_REST_LISTEN, config.CINDERBLOCK_NOAUTH_ALLOW_REMOTE);
        }
      } catch (error) {
        throw new ConfigError(`invalid configuration:\n  ${(error as Error).message}`);
      }
      return createNoauthAuthenticator();
  }
}

/**
 * The api's guard: the configured authentication strategy, then the policy (defaults overridden
 * by CINDERBLOCK_POLICY_FILE) on API_METHOD_RULES. A bad policy file or noauth on an address others
 * can reach stops the api at start-up with a ConfigError naming the setting.
 */
export function createApiGuard(config: ApiConfig): { guard: Guard; authenticator: Authenticator } {
  let policy: ReturnType<typeof loadPolicy>;
  try {
    policy = loadPolicy(config.CINDERBLOCK_POLICY_FILE);
  } catch (error) {
    if (error instanceof PolicyError) throw new ConfigError(`invalid configuration:\n  ${error.message}`);
    throw error;
  }
  const authenticator = createAuthenticator(config);
  return { guard: createGuard({ authenticator, policy, methods: API_METHOD_RULES }), authenticator };
}
