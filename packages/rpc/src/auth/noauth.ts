import { CinderblockError } from "@cinderblock/domain";
import type { Metadata } from "@grpc/grpc-js";
import type { Authenticator, Identity } from "./authenticator.js";

/** An identity value: 1-255 characters, no whitespace or control characters. */
const IDENTITY = /^[^\s\p{Cc}]{1,255}$/u;

/** A metadata value as a string, or undefined when absent or empty. */
export function header(md: Metadata, key: string): string | undefined {
  const [value] = md.get(key);
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * The identity a caller states in metadata, with no proof: `x-project-id` and `x-user-id`
 * (required) and `x-roles` (comma-separated, kept exactly as written: `Admin` is not `admin`).
 */
export function statedIdentity(md: Metadata, mode: string): Identity {
  const projectId = header(md, "x-project-id");
  const userId = header(md, "x-user-id");
  if (!projectId) throw new CinderblockError("UNAUTHENTICATED", `x-project-id metadata is required (${mode})`);
  if (!userId) throw new CinderblockError("UNAUTHENTICATED", `x-user-id metadata is required (${mode})`);
  if (!IDENTITY.test(projectId)) {
    throw new CinderblockError("UNAUTHENTICATED", "x-project-id: must be 1-255 characters without spaces");
  }
  if (!IDENTITY.test(userId)) {
    throw new CinderblockError("UNAUTHENTICATED", "x-user-id: must be 1-255 characters without spaces");
  }
  const roles = (header(md, "x-roles") ?? "")
    .split(",")
    .map((r) => r.trim())
    .filter((r) => r !== "");
  if (roles.some((r) => !IDENTITY.test(r))) {
    throw new CinderblockError("UNAUTHENTICATED", "x-roles: each role must be 1-255 characters without spaces");
  }
  return { projectId, userId, roles };
}

/**
 * The `noauth` strategy (as Cinder's noauth middleware): the caller states who it is in gRPC
 * metadata. For development on a loopback address only (see {@link assertNoauthAllowed}).
 */
export function createNoauthAuthenticator(): Authenticator {
  return {
    strategy: "noauth",
    authenticate: async ({ metadata }) => statedIdentity(metadata, "noauth mode"),
  };
}

/** Whether `host` (of a listen address) is a loopback address, where only this machine can connect. */
function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Refuses to run noauth on an address others can reach unless explicitly allowed: with noauth,
 * whoever connects is whichever project and role it says.
 */
export function assertNoauthAllowed(listen: string, allowRemote: boolean): void {
  const host = listen.slice(0, listen.lastIndexOf(":"));
  if (isLoopback(host) || allowRemote) return;
  throw new CinderblockError(
    "FAILED_PRECONDITION",
    `CINDERBLOCK_AUTH_STRATEGY=noauth on ${listen}: anyone who reaches it can act as any project or admin; ` +
      "listen on a loopback address, choose keystone or jwt, or set CINDERBLOCK_NOAUTH_ALLOW_REMOTE=true",
  );
}
