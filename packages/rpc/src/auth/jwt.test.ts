import { createHmac } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CinderblockError } from "@cinderblock/domain";
import { rejectionOf } from "@cinderblock/testing";
import { Metadata } from "@grpc/grpc-js";
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Authenticator } from "./authenticator.js";
import { createJwtAuthenticator, type JwtAuthenticatorOptions } from "./jwt.js";

// A real OIDC-style issuer in the test: keys generated per run, discovery and JWKS served over HTTP
// on loopback; tokens made by jose as an identity provider would make them.

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

async function newKey(kid: string, alg = "RS256"): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return {
    kid,
    privateKey,
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" },
    publicPem: await exportSPKI(publicKey),
  };
}

const AUDIENCE = "cinderblock";
let server: Server;
let issuer: string;
let published: SigningKey[] = [];
let jwksFetches = 0;
let key1: SigningKey;

const authenticators: Authenticator[] = [];
function create(options: Partial<JwtAuthenticatorOptions> = {}): Authenticator {
  const authenticator = createJwtAuthenticator({ issuer, audience: AUDIENCE, ...options });
  authenticators.push(authenticator);
  return authenticator;
}

function token(key: SigningKey, claims: JWTPayload = {}, edit?: (jwt: SignJWT) => SignJWT): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ project_id: "p-1", roles: ["member"], ...claims })
    .setProtectedHeader({ alg: String(key.publicJwk.alg), kid: key.kid, typ: "JWT" })
    .setIssuer(issuer)
    .setAudience(AUDIENCE)
    .setSubject("u-1")
    .setIssuedAt(now)
    .setExpirationTime(now + 300);
  if (edit) jwt = edit(jwt);
  return jwt.sign(key.privateKey);
}

function bearer(jwt?: string): { metadata: Metadata } {
  const metadata = new Metadata();
  if (jwt !== undefined) metadata.set("authorization", `Bearer ${jwt}`);
  return { metadata };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

const refusal = (promise: Promise<unknown>) => rejectionOf(promise, CinderblockError);

async function refused(promise: Promise<unknown>, reason: RegExp, jwt?: string): Promise<void> {
  const error = await refusal(promise);
  expect(error.code).toBe("UNAUTHENTICATED");
  expect(error.message).toMatch(reason);
  if (jwt) expect(error.message).not.toContain(jwt);
}

beforeAll(async () => {
  key1 = await newKey("key-1");
  published = [key1];
  server = createServer((request, response) => {
    if (request.url === "/.well-known/openid-configuration") {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    } else if (request.url === "/jwks") {
      jwksFetches++;
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ keys: published.map((key) => key.publicJwk) }));
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const authenticator of authenticators) authenticator.close?.();
  await new Promise((resolve) => server.close(resolve));
});

describe("jwt authenticator (a real issuer over HTTP)", () => {
  it("accepts a valid token, keys found by discovery, with project, user, roles and expiry", async () => {
    const jwt = await token(key1, { roles: ["member", "reader"] });
    const identity = await create().authenticate(bearer(jwt));
    expect(identity).toMatchObject({ projectId: "p-1", userId: "u-1", roles: ["member", "reader"] });
    expect(identity.expiresAt?.getTime()).toBeGreaterThan(Date.now());
  });

  it("takes the JWKS URL when given, and ES256/EdDSA keys", async () => {
    const es = await newKey("es-1", "ES256");
    const ed = await newKey("ed-1", "EdDSA");
    published = [key1, es, ed];
    const authenticator = create({ jwksUrl: `${issuer}/jwks` });
    expect((await authenticator.authenticate(bearer(await token(es)))).userId).toBe("u-1");
    expect((await authenticator.authenticate(bearer(await token(ed)))).userId).toBe("u-1");
    published = [key1];
  });

  it("refuses an expired token, and one not valid yet beyond the skew, but tolerates the skew", async () => {
    const now = Math.floor(Date.now() / 1000);
    const authenticator = create({ clockSkewSeconds: 30 });
    const expired = await token(key1, {}, (jwt) => jwt.setIssuedAt(now - 600).setExpirationTime(now - 60));
    await refused(authenticator.authenticate(bearer(expired)), /^token has expired$/, expired);
    const early = await token(key1, {}, (jwt) => jwt.setNotBefore(now + 120));
    await refused(authenticator.authenticate(bearer(early)), /not valid yet/, early);
    const withinSkew = await token(key1, {}, (jwt) => jwt.setNotBefore(now + 10).setExpirationTime(now + 300));
    await expect(authenticator.authenticate(bearer(withinSkew))).resolves.toMatchObject({ projectId: "p-1" });
    const justExpired = await token(key1, {}, (jwt) => jwt.setIssuedAt(now - 600).setExpirationTime(now - 10));
    await expect(authenticator.authenticate(bearer(justExpired))).resolves.toMatchObject({ projectId: "p-1" });
    const noExp = await new SignJWT({ project_id: "p-1" })
      .setProtectedHeader({ alg: "RS256", kid: key1.kid })
      .setIssuer(issuer)
      .setAudience(AUDIENCE)
      .setSubject("u-1")
      .sign(key1.privateKey);
    await refused(authenticator.authenticate(bearer(noExp)), /exp/, noExp);
  });

  it("refuses the wrong audience and the wrong issuer", async () => {
    const authenticator = create();
    const otherAud = await token(key1, {}, (jwt) => jwt.setAudience("nova"));
    await refused(authenticator.authenticate(bearer(otherAud)), /wrong audience/, otherAud);
    const otherIss = await token(key1, {}, (jwt) => jwt.setIssuer("https://evil.example"));
    await refused(authenticator.authenticate(bearer(otherIss)), /wrong issuer/, otherIss);
  });

  it("refuses alg none", async () => {
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${b64({ alg: "none", typ: "JWT" })}.${b64({
      iss: issuer,
      aud: AUDIENCE,
      sub: "u-1",
      project_id: "p-1",
      roles: ["admin"],
      exp: now + 300,
    })}.`;
    await refused(create().authenticate(bearer(unsigned)), /algorithm that is not accepted/);
  });

  it("refuses HS256 signed with the issuer's RSA public key as the secret (algorithm confusion)", async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: issuer, aud: AUDIENCE, sub: "u-1", project_id: "p-1", roles: ["admin"], exp: now + 300 };
    for (const secret of [key1.publicPem, JSON.stringify(key1.publicJwk)]) {
      const input = `${b64({ alg: "HS256", typ: "JWT", kid: key1.kid })}.${b64(claims)}`;
      const forged = `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
      await refused(create().authenticate(bearer(forged)), /algorithm that is not accepted/, forged);
    }
  });

  it("refuses a configuration that allows none or HS*", () => {
    expect(() => create({ algorithms: ["RS256", "HS256"] })).toThrow(/CINDERBLOCK_JWT_ALGORITHMS: not accepted: HS256/);
    expect(() => create({ algorithms: ["none"] })).toThrow(/not accepted: none/);
    expect(() => create({ algorithms: [] })).toThrow(/CINDERBLOCK_JWT_ALGORITHMS/);
    expect(() => create({ clockSkewSeconds: 3600 })).toThrow(/CINDERBLOCK_JWT_CLOCK_SKEW/);
  });

  it("refuses a token signed by a key the issuer does not publish, or with a broken signature", async () => {
    const stranger = await newKey("key-1"); // same kid, another key
    const forged = await token(stranger);
    await refused(create().authenticate(bearer(forged)), /signature is not valid/, forged);
    const good = await token(key1);
    const [header, payload] = good.split(".");
    const tampered = `${header}.${b64({ ...JSON.parse(Buffer.from(String(payload), "base64url").toString()), roles: ["admin"] })}.${good.split(".")[2]}`;
    await refused(create().authenticate(bearer(tampered)), /signature is not valid/, tampered);
  });

  it("picks up a rotated key with one JWKS refresh, and refuses the removed key afterwards", async () => {
    const authenticator = create({ jwksCooldownMs: 0 });
    const old = await token(key1);
    await authenticator.authenticate(bearer(old));
    const before = jwksFetches;

    const key2 = await newKey("key-2");
    published = [key2]; // rotation: key-1 retired, key-2 in
    const rotated = await token(key2, { project_id: "p-2" });
    expect((await authenticator.authenticate(bearer(rotated))).projectId).toBe("p-2");
    expect(jwksFetches).toBe(before + 1);
    // The known key-2 is served from the refreshed set: no fetch.
    await authenticator.authenticate(bearer(await token(key2)));
    expect(jwksFetches).toBe(before + 1);
    // key-1 is gone from the refreshed set: its tokens are refused (after one more look).
    await refused(authenticator.authenticate(bearer(old)), /key the issuer does not publish/, old);
    published = [key1];
  });

  it("does not fetch the JWKS again for every unknown kid within the cooldown", async () => {
    const authenticator = create({ jwksCooldownMs: 60_000 });
    await authenticator.authenticate(bearer(await token(key1)));
    const before = jwksFetches;
    const unknown = await newKey("made-up");
    for (let i = 0; i < 5; i++) {
      await refused(authenticator.authenticate(bearer(await token(unknown))), /key the issuer does not publish/);
    }
    expect(jwksFetches).toBe(before);
  });

  it("refuses a token without the project claim, and reads nested claims and string roles", async () => {
    await refused(
      create().authenticate(bearer(await token(key1, { project_id: undefined }))),
      /token has no project \(claim project_id\)/,
    );
    const keycloak = create({
      projectClaim: "tenant.id",
      userClaim: "preferred_username",
      rolesClaim: "realm_access.roles",
    });
    const nested = await token(key1, {
      tenant: { id: "p-9" },
      preferred_username: "alice",
      realm_access: { roles: ["admin", "member"] },
    });
    expect(await keycloak.authenticate(bearer(nested))).toMatchObject({
      projectId: "p-9",
      userId: "alice",
      roles: ["admin", "member"],
    });
    const scoped = create({ rolesClaim: "scope" });
    expect((await scoped.authenticate(bearer(await token(key1, { scope: "reader member,admin" })))).roles).toEqual([
      "reader",
      "member",
      "admin",
    ]);
    // Roles match exactly: no role claim gives no roles, not a default.
    expect((await create({ rolesClaim: "absent" }).authenticate(bearer(await token(key1)))).roles).toEqual([]);
  });

  it("refuses missing and malformed authorization metadata", async () => {
    const authenticator = create();
    await refused(authenticator.authenticate(bearer()), /missing authorization/);
    const metadata = new Metadata();
    metadata.set("authorization", "Basic dXNlcjpwYXNz");
    await refused(authenticator.authenticate({ metadata }), /not 'Bearer <JWT>'/);
    await refused(authenticator.authenticate(bearer("not.a.jwt")), /malformed/);
  });

  it("says UNAVAILABLE when the issuer cannot be reached", async () => {
    const gone = createServer();
    await new Promise<void>((resolve) => gone.listen(0, "127.0.0.1", resolve));
    const address = `http://127.0.0.1:${(gone.address() as AddressInfo).port}`;
    await new Promise((resolve) => gone.close(resolve));
    const viaDiscovery = await refusal(
      createJwtAuthenticator({ issuer: address, audience: AUDIENCE }).authenticate(bearer(await token(key1))),
    );
    expect(viaDiscovery.code).toBe("UNAVAILABLE");
    const viaJwks = await refusal(create({ jwksUrl: `${address}/jwks` }).authenticate(bearer(await token(key1))));
    expect(viaJwks.code).toBe("UNAVAILABLE");
  });
});
