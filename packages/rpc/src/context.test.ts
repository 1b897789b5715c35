import { CinderblockError } from "@cinderblock/domain";
import { Metadata, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { noauthContext } from "./context.js";
import { toServiceError } from "./errors.js";

function md(values: Record<string, string>): Metadata {
  const m = new Metadata();
  for (const [k, v] of Object.entries(values)) m.set(k, v);
  return m;
}

describe("noauthContext", () => {
  it("takes project, user, roles and request id from metadata", () => {
    expect(
      noauthContext(md({ "x-project-id": "p1", "x-user-id": "u1", "x-roles": "Admin, member", "x-request-id": "r-1" })),
    ).toEqual({ projectId: "p1", userId: "u1", roles: ["admin", "member"], requestId: "r-1" });
  });

  it("makes a request id when none is given", () => {
    expect(noauthContext(md({ "x-project-id": "p1", "x-user-id": "u1" })).requestId).toMatch(/^req-[0-9a-f-]{36}$/);
  });

  it.each([
    [{ "x-user-id": "u1" }, "x-project-id metadata is required (noauth mode)"],
    [{ "x-project-id": "p1" }, "x-user-id metadata is required (noauth mode)"],
    [{ "x-project-id": "p 1", "x-user-id": "u1" }, "x-project-id: must be 1-255 characters without spaces"],
  ])("refuses %o as UNAUTHENTICATED", (values, message) => {
    expect(() => noauthContext(md(values))).toThrow(new CinderblockError("UNAUTHENTICATED", message));
  });
});

describe("toServiceError", () => {
  it("keeps a domain error's code and message", () => {
    const mapped = toServiceError(new CinderblockError("FAILED_PRECONDITION", "volume v is in maintenance"), "r-1");
    expect(mapped.internal).toBe(false);
    expect(mapped.error).toMatchObject({ code: status.FAILED_PRECONDITION, details: "volume v is in maintenance" });
  });

  it("hides anything else behind INTERNAL with the request id", () => {
    const mapped = toServiceError(new Error("password=hunter2 leaked"), "r-2");
    expect(mapped.internal).toBe(true);
    expect(mapped.error).toMatchObject({ code: status.INTERNAL, details: "internal error (request r-2)" });
  });
});
