import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QuotasServiceService } from "@cinderblock/proto";
import {
  backendUnavailable,
  freePort,
  KEYSTONE_USERS,
  keystoneTokenInfo,
  mustRunInCI,
  type PrivateKeystone,
  startPrivateKeystone,
} from "@cinderblock/testing";
import { type Metadata as GrpcMetadata, Server, ServerCredentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "./cli.js";
import { EXIT } from "./exit-codes.js";

// The CLI's credentials end to end: a real grpc-js server (plaintext and TLS with a certificate
// made by openssl) records the metadata each call carries; a real Keystone issues the token of an
// OS_* password login.

let received: GrpcMetadata[] = [];

async function startApi(credentials: ServerCredentials): Promise<{ address: string; server: Server }> {
  const server = new Server();
  server.addService(QuotasServiceService, {
    getQuotas(call: { metadata: GrpcMetadata }, done: (err: null, res: unknown) => void) {
      received.push(call.metadata);
      done(null, { projectId: "p-1", quotas: [] });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, server };
}

async function cli(argv: string[], env: Record<string, string>) {
  let stdout = "";
  let stderr = "";
  const code = await run(argv, {
    env,
    stdout: {
      write(s: string) {
        stdout += s;
      },
    },
    stderr: {
      write(s: string) {
        stderr += s;
      },
    },
    signal: new AbortController().signal,
  });
  return { code, stdout, stderr };
}

const dir = mkdtempSync(join(tmpdir(), "cinderblock-cli-tls-"));
let plain: { address: string; server: Server };
let tls: { address: string; server: Server };

beforeAll(async () => {
  // A self-signed server certificate for 127.0.0.1 (it is its own CA).
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=cinderblock-api",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ],
    { stdio: "ignore" },
  );
  plain = await startApi(ServerCredentials.createInsecure());
  tls = await startApi(
    ServerCredentials.createSsl(null, [
      { private_key: readFileSync(join(dir, "key.pem")), cert_chain: readFileSync(join(dir, "cert.pem")) },
    ]),
  );
});

afterAll(() => {
  plain?.server.forceShutdown();
  tls?.server.forceShutdown();
  rmSync(dir, { recursive: true, force: true });
});

describe("the CLI's credentials, as the api receives them", () => {
  it("sends --token as x-auth-token and nothing of noauth", async () => {
    received = [];
    const r = await cli(["quota", "show", "--token", "tok-1", "--api", plain.address], {});
    expect(r).toMatchObject({ code: EXIT.OK, stderr: "" });
    expect(received[0]?.get("x-auth-token")).toEqual(["tok-1"]);
    expect(received[0]?.get("authorization")).toEqual([]);
    expect(received[0]?.get("x-project-id")).toEqual([]);
  });

  it("sends a bearer token as authorization: Bearer", async () => {
    received = [];
    const r = await cli(["quota", "show"], {
      CINDERBLOCK_API: plain.address,
      CINDERBLOCK_TOKEN: "eyJ.x.y",
      CINDERBLOCK_TOKEN_TYPE: "bearer",
    });
    expect(r.code).toBe(EXIT.OK);
    expect(received[0]?.get("authorization")).toEqual(["Bearer eyJ.x.y"]);
    expect(received[0]?.get("x-auth-token")).toEqual([]);
  });

  it("still sends noauth's identity for development", async () => {
    received = [];
    const r = await cli(["quota", "show", "--api", plain.address, "--project", "p", "--user", "u", "--admin"], {});
    expect(r.code).toBe(EXIT.OK);
    expect(received[0]?.get("x-project-id")).toEqual(["p"]);
    expect(received[0]?.get("x-roles")).toEqual(["admin"]);
  });

  it("talks TLS to an api whose CA it is given, and refuses one it cannot verify", async () => {
    received = [];
    const ok = await cli(
      ["quota", "show", "--api", tls.address, "--token", "t", "--cacert", join(dir, "cert.pem")],
      {},
    );
    expect(ok).toMatchObject({ code: EXIT.OK, stderr: "" });
    expect(received).toHaveLength(1);
    // The system roots do not know a self-signed certificate.
    const untrusted = await cli(["quota", "show", "--api", tls.address, "--token", "t", "--tls", "--timeout", "5"], {});
    expect(untrusted.code).toBe(EXIT.UNAVAILABLE);
    // Plaintext to a TLS port gets no answer either.
    const plaintext = await cli(["quota", "show", "--api", tls.address, "--token", "t", "--timeout", "5"], {});
    expect(plaintext.code).not.toBe(EXIT.OK);
    expect(received).toHaveLength(1);
    const missing = await cli(
      ["quota", "show", "--api", tls.address, "--token", "t", "--cacert", join(dir, "no.pem")],
      {},
    );
    expect(missing.code).toBe(EXIT.USAGE);
    expect(missing.stderr).toContain("--cacert: cannot read");
  });
});

const why = mustRunInCI("the CLI's Keystone login suite", await backendUnavailable("keystone"));

describe.skipIf(why)("the CLI's Keystone login (OS_* variables, real Keystone)", () => {
  let keystone: PrivateKeystone;
  const openrc = () => ({
    CINDERBLOCK_API: plain.address,
    OS_AUTH_URL: keystone.url.replace(/\/v3$/, ""),
    OS_USERNAME: KEYSTONE_USERS.demo.username,
    OS_PASSWORD: KEYSTONE_USERS.demo.password,
    OS_PROJECT_NAME: KEYSTONE_USERS.demo.projectName,
    OS_USER_DOMAIN_NAME: "Default",
    OS_PROJECT_DOMAIN_NAME: "Default",
  });

  beforeAll(async () => {
    keystone = await startPrivateKeystone();
  }, 120_000);
  afterAll(async () => {
    await keystone?.destroy();
  }, 30_000);

  it("logs in with the password and sends the demo project's token", async () => {
    received = [];
    const r = await cli(["quota", "show"], openrc());
    expect(r).toMatchObject({ code: EXIT.OK, stderr: "" });
    const [token] = received[0]?.get("x-auth-token") ?? [];
    expect(typeof token).toBe("string");
    const info = await keystoneTokenInfo(keystone.url, String(token));
    expect(info.status).toBe(200);
    expect(info.body?.token.project?.name).toBe("demo");
    expect(info.body?.token.user.name).toBe("demo");
  });

  it("exits 8 when Keystone refuses the password, without printing it, and 9 when it cannot be reached", async () => {
    received = [];
    const wrong = await cli(["quota", "show"], { ...openrc(), OS_PASSWORD: "wrong-password" });
    expect(wrong.code).toBe(EXIT.DENIED);
    expect(wrong.stderr).toContain("Keystone refused the login of OS_USERNAME=demo");
    expect(wrong.stderr).not.toContain("wrong-password");
    const down = await cli(["quota", "show"], { ...openrc(), OS_AUTH_URL: `http://127.0.0.1:${await freePort()}/v3` });
    expect(down.code).toBe(EXIT.UNAVAILABLE);
    expect(down.stderr).toContain("cannot be reached");
    expect(received).toHaveLength(0);
  });
});
