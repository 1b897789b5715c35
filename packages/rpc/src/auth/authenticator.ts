import type { Metadata, ServerUnaryCall } from "@grpc/grpc-js";

/** grpc-js's AuthContext, which its package index does not export (1.14). */
type AuthContext = ReturnType<ServerUnaryCall<unknown, unknown>["getAuthContext"]>;

/**
 * Who a caller is, as an authentication strategy established it. Roles are kept exactly as the
 * identity provider spelled them (a policy's `role:admin` matches only `admin`).
 */
export interface Identity {
  projectId: string;
  userId: string;
  roles: string[];
  /** Names, when the provider gives them (Keystone does): for logs and notifications only. */
  projectName?: string;
  userName?: string;
  /** When the credential stops being valid (caches must not keep it past this). */
  expiresAt?: Date;
}

/** What a strategy may look at: the call's metadata and its transport (TLS peer certificate). */
export interface CallCredentials {
  metadata: Metadata;
  /** grpc-js's `call.getAuthContext()`: transport security type and the peer's certificate. */
  transport?: AuthContext;
}

/**
 * One authentication strategy (`CINDERBLOCK_AUTH_STRATEGY`): noauth, keystone or jwt.
 * `authenticate` resolves to the caller's identity, or rejects with a CinderblockError:
 * UNAUTHENTICATED for a missing, expired, forged or unverifiable credential (the reason in the
 * message, never the credential itself), UNAVAILABLE when the identity provider cannot be reached.
 */
export interface Authenticator {
  readonly strategy: "noauth" | "keystone" | "jwt" | "peer";
  authenticate(call: CallCredentials, signal?: AbortSignal): Promise<Identity>;
  /** Releases timers, caches and connections. */
  close?(): void;
}
