import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CinderblockError } from "@cinderblock/domain";
import {
  backendUnavailable,
  freePort,
  KEYSTONE_USERS,
  keystoneLogin,
  keystoneRevoke,
  mustRunInCI,
  type PrivateKeystone,
  rejectionOf,
  sleep,
  startPrivateKeystone,
} from "@cinderblock/testing";
import { Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Authenticator } from "./authenticator.js";
import { createKeystoneAuthenticator } from "./keystone.js";

// Against a real Keystone (Debian's, started privately on loopback by scripts/keystone/up.sh).

const why = mustRunInCI("the Keystone authenticator suite", await backendUnavailable("keystone"));

function withToken(token?: string): { metadata: Metadata } {
  const metadata = new Metadata();
  if (token !== undefined) metadata.set("x-auth-token", token);
  return { metadata };
}

const refusal = (promise: Promise<unknown>) => rejectionOf(promise, CinderblockError);

/** An HTTP proxy in front of Keystone that counts the token validations (GET /v3/auth/tokens). */
async function countingProxy(targetPort: number): Promise<{ url: string; validations: () => number; server: Server }> {
  let validations = 0;
  const server = createServer((incoming, outgoing) => {
    if (incoming.method === "GET" && incoming.url?.startsWith("/v3/auth/tokens")) validations++;
    const upstream = request(
      { host: "127.0.0.1", port: targetPort, path: incoming.url, method: incoming.method, headers: incoming.headers },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    upstream.on("error", () => outgoing.destroy());
    incoming.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v3`, validations: () => validations, server };
}

describe.skipIf(why)("keystone authenticator (real Keystone)", () => {
  let keystone: PrivateKeystone;
  const authenticators: Authenticator[] = [];
  const create = (overrides: Partial<Parameters<typeof createKeystoneAuthenticator>[0]> = {}) => {
    const authenticator = createKeystoneAuthenticator({
      url: keystone.url,
      username: KEYSTONE_USERS.service.username,
      password: KEYSTONE_USERS.service.password,
      projectName: KEYSTONE_USERS.service.projectName,
      ...overrides,
    });
    authenticators.push(authenticator);
    return authenticator;
  };

  beforeAll(async () => {
    keystone = await startPrivateKeystone();
  }, 120_000);

  afterAll(async () => {
    for (const authenticator of authenticators) authenticator.close?.();
    await keystone?.destroy();
  }, 30_000);

  it("accepts a member's token with its project, user and roles as Keystone has them", async () => {
    const login = await keystoneLogin(keystone.url, KEYSTONE_USERS.demo);
    const identity = await create().authenticate(withToken(login.token));
    expect(identity).toMatchObject({
      projectId: login.body.token.project?.id,
      projectName: "demo",
      userId: login.body.token.user.id,
      userName: "demo",
      expiresAt: new Date(login.body.token.expires_at),
    });
    expect([...identity.roles].sort()).toEqual(["member", "reader"]);
    expect(identity.roles).not.toContain("admin");
  });

  it("gives an admin's token the admin role", async () => {
    const login = await keystoneLogin(keystone.url, KEYSTONE_USERS.admin);
    const identity = await create().authenticate(withToken(login.token));
    expect(identity.roles).toContain("admin");
    expect(identity.projectName).toBe("admin");
  });

  it("refuses a revoked token", async () => {
    const login = await keystoneLogin(keystone.url, KEYSTONE_USERS.demo);
    const authenticator = create({ cacheSeconds: 0 });
    await authenticator.authenticate(withToken(login.token));
    await keystoneRevoke(keystone.url, login.token);
    const error = await refusal(authenticator.authenticate(withToken(login.token)));
    expect(error.code).toBe("UNAUTHENTICATED");
    expect(error.message).toBe("token is invalid, expired or revoked");
  });

  it("refuses a token without a project scope, saying so", async () => {
    // admin has no default project (demo has one, which Keystone would scope an unscoped login to)
    const login = await keystoneLogin(keystone.url, { ...KEYSTONE_USERS.admin, projectName: "" });
    expect(login.body.token.project).toBeUndefined();
    const error = await refusal(create().authenticate(withToken(login.token)));
    expect(error.code).toBe("UNAUTHENTICATED");
    expect(error.message).toMatch(/not scoped to a project/);
    expect(error.message).not.toContain(login.token);
  });

  it("refuses a garbage token and a missing one, never echoing the token", async () => {
    const authenticator = create();
    const garbage = "gAAAAABnotarealtoken-0123456789";
    const bad = await refusal(authenticator.authenticate(withToken(garbage)));
    expect(bad.code).toBe("UNAUTHENTICATED");
    expect(bad.message).not.toContain(garbage);
    const missing = await refusal(authenticator.authenticate(withToken()));
    expect(missing.code).toBe("UNAUTHENTICATED");
    expect(missing.message).toMatch(/missing x-auth-token/);
    const header = await refusal(authenticator.authenticate(withToken("two words")));
    expect(header.code).toBe("UNAUTHENTICATED");
  });

  it("serves a repeat validation from its cache, and shares one request between concurrent ones", async () => {
    const proxy = await countingProxy(keystone.port);
    try {
      const login = await keystoneLogin(keystone.url, KEYSTONE_USERS.demo);
      const authenticator = create({ url: proxy.url });
      const [first, second] = await Promise.all([
        authenticator.authenticate(withToken(login.token)),
        authenticator.authenticate(withToken(login.token)),
      ]);
      expect(second).toEqual(first);
      expect(proxy.validations()).toBe(1);
      expect(await authenticator.authenticate(withToken(login.token))).toEqual(first);
      expect(proxy.validations()).toBe(1);
      // Another token is not served from the first one's entry.
      const other = await keystoneLogin(keystone.url, KEYSTONE_USERS.admin);
      expect((await authenticator.authenticate(withToken(other.token))).roles).toContain("admin");
      expect(proxy.validations()).toBe(2);
      // Without a cache, every call asks Keystone.
      const uncached = create({ url: proxy.url, cacheSeconds: 0 });
      await uncached.authenticate(withToken(login.token));
      await uncached.authenticate(withToken(login.token));
      expect(proxy.validations()).toBe(4);
    } finally {
      await new Promise((resolve) => proxy.server.close(resolve));
    }
  });

  it("keeps the cache bounded: the least recently used token is validated again", async () => {
    const proxy = await countingProxy(keystone.port);
    try {
      const authenticator = create({ url: proxy.url, cacheSize: 1 });
      const demo = await keystoneLogin(keystone.url, KEYSTONE_USERS.demo);
      const admin = await keystoneLogin(keystone.url, KEYSTONE_USERS.admin);
      await authenticator.authenticate(withToken(demo.token));
      await authenticator.authenticate(withToken(admin.token));
      await authenticator.authenticate(withToken(demo.token));
      expect(proxy.validations()).toBe(3);
    } finally {
      await new Promise((resolve) => proxy.server.close(resolve));
    }
  });

  it("says UNAVAILABLE when Keystone does not answer, and names bad service credentials", async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}/v3`;
    const down = await refusal(create({ url: nowhere }).authenticate(withToken("gAAAAABsomething")));
    expect(down.code).toBe("UNAVAILABLE");
    const wrong = await refusal(create({ password: "not-the-password" }).authenticate(withToken("gAAAAABsomething")));
    expect(wrong.code).toBe("UNAVAILABLE");
    expect(wrong.message).toMatch(/refused the service's own credentials/);
    expect(wrong.message).not.toContain("not-the-password");
  });

  // Last: it restarts Keystone with a short token lifetime.
  it("refuses an expired token even when it was cached, and UNAVAILABLE while Keystone is stopped", async () => {
    const authenticator = create({ cacheSeconds: 3600 });
    const login = await keystoneLogin(keystone.url, KEYSTONE_USERS.demo);
    await authenticator.authenticate(withToken(login.token));

    await keystone.stop();
    const stopped = await refusal(create().authenticate(withToken(login.token)));
    expect(stopped.code).toBe("UNAVAILABLE");
    expect(stopped.message).toMatch(/cannot be reached/);

    await keystone.start({ tokenTtl: 3 });
    const short = await keystoneLogin(keystone.url, KEYSTONE_USERS.demo);
    const identity = await authenticator.authenticate(withToken(short.token));
    expect(identity.expiresAt?.getTime()).toBe(Date.parse(short.body.token.expires_at));
    await sleep(Math.max(0, Date.parse(short.body.token.expires_at) - Date.now()) + 1500);
    const expired = await refusal(authenticator.authenticate(withToken(short.token)));
    expect(expired.code).toBe("UNAUTHENTICATED");
    expect(expired.message).toBe("token is invalid, expired or revoked");
  }, 60_000);
});
