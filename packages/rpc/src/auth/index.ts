export type { Authenticator, CallCredentials, Identity } from "./authenticator.js";
export type { Guard, GuardOptions, MethodRules } from "./guard.js";
export { createGuard, statedIdentityGuard } from "./guard.js";
export { assertNoauthAllowed, createNoauthAuthenticator } from "./noauth.js";
export type { Policy } from "./policy.js";
export { loadPolicy, PolicyError, RULE_DEFAULTS } from "./policy.js";
