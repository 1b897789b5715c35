import { randomUUID } from "node:crypto";
import { CinderblockError, type RequestContext } from "@cinderblock/domain";
import type { Metadata } from "@grpc/grpc-js";

/** An identity value: 1-255 characters, no whitespace or control characters. */
const IDENTITY = /^[^\s\p{Cc}]{1,255}$/u;

function header(md: Metadata, key: string): string | undefined {
  const [value] = md.get(key);
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * The `noauth` strategy (like Cinder's noauth middleware): the caller states who it is in gRPC
 * metadata, with no proof. `x-project-id` and `x-user-id` are required; `x-roles` is a
 * comma-separated list (e.g. "admin,member"); `x-request-id` is kept when given, else one is made.
 * For trusted networks and development only; real authentication comes later.
 */
export function noauthContext(md: Metadata): RequestContext {
  const projectId = header(md, "x-project-id");
  const userId = header(md, "x-user-id");
  if (!projectId) throw new CinderblockError("UNAUTHENTICATED", "x-project-id metadata is required (noauth mode)");
  if (!userId) throw new CinderblockError("UNAUTHENTICATED", "x-user-id metadata is required (noauth mode)");
  if (!IDENTITY.test(projectId)) {
    throw new CinderblockError("UNAUTHENTICATED", "x-project-id: must be 1-255 characters without spaces");
  }
  if (!IDENTITY.test(userId)) {
    throw new CinderblockError("UNAUTHENTICATED", "x-user-id: must be 1-255 characters without spaces");
  }
  const roles = (header(md, "x-roles") ?? "")
    .split(",")
    .map((r) => r.trim().toLowerCase())
    .filter((r) => r !== "");
  const given = header(md, "x-request-id");
  const requestId = given && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : `req-${randomUUID()}`;
  return { requestId, projectId, userId, roles };
}
