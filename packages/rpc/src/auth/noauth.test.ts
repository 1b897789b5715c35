import { CinderblockError } from "@cinderblock/domain";
import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { assertNoauthAllowed, createNoauthAuthenticator } from "./noauth.js";

function md(values: Record<string, string>): Metadata {
  const m = new Metadata();
  for (const [k, v] of Object.entries(values)) m.set(k, v);
  return m;
}

const noauth = createNoauthAuthenticator();

describe("the noauth strategy", () => {
  it("takes project, user and roles from metadata, roles exactly as written", async () => {
    await expect(
      noauth.authenticate({ metadata: md({ "x-project-id": "p1", "x-user-id": "u1", "x-roles": "Admin, member" }) }),
    ).resolves.toEqual({ projectId: "p1", userId: "u1", roles: ["Admin", "member"] });
  });

  it.each([
    [{ "x-user-id": "u1" }, "x-project-id metadata is required (noauth mode)"],
    [{ "x-project-id": "p1" }, "x-user-id metadata is required (noauth mode)"],
    [{ "x-project-id": "p 1", "x-user-id": "u1" }, "x-project-id: must be 1-255 characters without spaces"],
    [{ "x-project-id": "p1", "x-user-id": "u1", "x-roles": "member,adm in" }, "x-roles: each role must be"],
  ])("refuses %o as UNAUTHENTICATED", async (values, message) => {
    const refusal = await noauth.authenticate({ metadata: md(values) }).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(CinderblockError);
    expect(refusal).toMatchObject({ code: "UNAUTHENTICATED", message: expect.stringContaining(message) });
  });
});

describe("noauth is for loopback addresses", () => {
  it.each(["127.0.0.1:50051", "localhost:1", "[::1]:50051", "127.1.2.3:0"])("allows %s", (listen) => {
    expect(() => assertNoauthAllowed(listen, false)).not.toThrow();
  });

  it.each(["0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "api:50051"])("refuses %s unless allowed", (listen) => {
    expect(() => assertNoauthAllowed(listen, false)).toThrow(/CINDERBLOCK_NOAUTH_ALLOW_REMOTE=true/);
    expect(() => assertNoauthAllowed(listen, true)).not.toThrow();
  });
});
