import { X509Certificate } from "node:crypto";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { descriptorSetPath } from "@cinderblock/proto";
import { makeTestPki, type TestPki, waitUntil } from "@cinderblock/testing";
import { type ChannelCredentials, Client, credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { addHealthAndReflection, listen, Server, shutdown } from "./server.js";
import { serverTls, type TlsOptions } from "./tls.js";

// The public port with TLS, on a real grpc-js server on 127.0.0.1:0 with certificates made by
// openssl, called by real clients: what a plaintext, a TLS and an mTLS caller get, and a
// certificate renewed on disk reaching new connections.

let dir: string;
let pki: TestPki;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cinderblock-tls-test-"));
  pki = await makeTestPki(join(dir, "pki"));
});
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function serve(tls: TlsOptions | undefined, reflection = true): Promise<string> {
  const server = new Server();
  addHealthAndReflection(server, { descriptorSetPath, services: ["cinderblock.v1.VolumesService"], reflection });
  const port = await listen(server, "127.0.0.1:0", tls && serverTls(tls));
  cleanups.push(() => shutdown(server, 0));
  return `127.0.0.1:${port}`;
}

const raw = (b: Buffer) => b;

/** grpc.health.v1 Check of the whole server: resolves with its status, rejects with the call's error. */
function healthCheck(address: string, creds: ChannelCredentials): Promise<"SERVING" | "NOT_SERVING"> {
  const client = new Client(address, creds);
  cleanups.push(() => client.close());
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      raw,
      raw,
      Buffer.alloc(0),
      new Metadata(),
      { deadline: Date.now() + 5000 },
      (err: ServiceError | null, res?: Buffer) =>
        // HealthCheckResponse.status (field 1): 1 SERVING, 2 NOT_SERVING.
        err ? reject(err) : resolve(res?.[1] === 1 ? "SERVING" : "NOT_SERVING"),
    ),
  );
}

/** Asks server reflection (v1) to list the services: their names as the raw answer, or the call's error code. */
function listServices(address: string, creds: ChannelCredentials): Promise<string> {
  const client = new Client(address, creds);
  cleanups.push(() => client.close());
  return new Promise((resolve, reject) => {
    const stream = client.makeBidiStreamRequest(
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      raw,
      raw,
      new Metadata(),
    );
    stream.on("data", (res: Buffer) => {
      resolve(res.toString("latin1"));
      stream.cancel();
    });
    stream.on("error", (err: ServiceError) => (err.code === status.CANCELLED ? undefined : reject(err)));
    // ServerReflectionRequest.list_services (field 7, a string): "".
    stream.write(Buffer.from([0x3a, 0x00]));
    stream.end();
  });
}

async function codeOf(call: Promise<unknown>): Promise<status | "ok"> {
  return call.then(
    () => "ok",
    (e: ServiceError) => e.code,
  );
}

const trusting = async (caFile: string, client?: { certFile: string; keyFile: string }) =>
  credentials.createSsl(
    await readFile(caFile),
    client ? await readFile(client.keyFile) : null,
    client ? await readFile(client.certFile) : null,
  );

/** The fingerprint of the certificate a new TLS connection to `address` is served. */
function servedFingerprint(address: string, caFile: Buffer): Promise<string> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host, port: Number(port), ca: caFile, servername: "localhost", ALPNProtocols: ["h2"] },
      () => {
        resolve(socket.getPeerCertificate().fingerprint256);
        socket.end();
      },
    );
    socket.on("error", reject);
  });
}

describe("public port with TLS", () => {
  it("refuses a plaintext client and answers a TLS client that trusts the CA", async () => {
    const address = await serve({ ...pki.apiServer });
    expect(await codeOf(healthCheck(address, credentials.createInsecure()))).toBe(status.UNAVAILABLE);
    expect(await healthCheck(address, await trusting(pki.caFile))).toBe("NOT_SERVING");
    // A client that trusts another CA does not accept the server.
    expect(await codeOf(healthCheck(address, await trusting(pki.otherCa.certFile)))).toBe(status.UNAVAILABLE);
  });

  it("without certificate files the port is plaintext (development)", async () => {
    const address = await serve(undefined);
    expect(await healthCheck(address, credentials.createInsecure())).toBe("NOT_SERVING");
  });

  it("serves a renewed certificate to new connections, and keeps the old one while the new files do not load", async () => {
    const live = { certFile: join(dir, "live.pem"), keyFile: join(dir, "live-key.pem") };
    await copyFile(pki.apiServer.certFile, live.certFile);
    await copyFile(pki.apiServer.keyFile, live.keyFile);
    const errors: Error[] = [];
    let reloads = 0;
    const address = await serve({
      ...live,
      refreshMs: 50,
      onReload: () => reloads++,
      onError: (e) => errors.push(e),
    });
    const caFile = await readFile(pki.caFile);
    const fingerprint = async (file: string) => new X509Certificate(await readFile(file)).fingerprint256;
    expect(await servedFingerprint(address, caFile)).toBe(await fingerprint(pki.apiServer.certFile));

    // Half a rotation: the new certificate is there, its key not yet. The old pair stays in use.
    const renewed = await pki.ca.issue("api-server-renewed", {
      dns: ["localhost"],
      ip: ["127.0.0.1"],
      usage: "server",
    });
    await copyFile(renewed.certFile, live.certFile);
    await waitUntil(
      async () => errors.length,
      (n) => n > 0,
      5000,
      20,
    );
    expect(errors[0]?.message).toContain("do not load");
    expect(await servedFingerprint(address, caFile)).toBe(await fingerprint(pki.apiServer.certFile));
    expect(reloads).toBe(0);

    await copyFile(renewed.keyFile, live.keyFile);
    await waitUntil(
      async () => reloads,
      (n) => n > 0,
      5000,
      20,
    );
    expect(await servedFingerprint(address, caFile)).toBe(await fingerprint(renewed.certFile));
    expect(await healthCheck(address, await trusting(pki.caFile))).toBe("NOT_SERVING");
  });

  it("with a client CA, requires a client certificate signed by it", async () => {
    const address = await serve({ ...pki.apiServer, caFile: pki.caFile });
    expect(await codeOf(healthCheck(address, await trusting(pki.caFile)))).toBe(status.UNAVAILABLE);
    expect(await codeOf(healthCheck(address, await trusting(pki.caFile, pki.otherClient)))).toBe(status.UNAVAILABLE);
    expect(await healthCheck(address, await trusting(pki.caFile, pki.apiClient))).toBe("NOT_SERVING");
  });

  it("refuses to start on files that do not load, naming them", async () => {
    const broken = join(dir, "broken.pem");
    await writeFile(broken, "not a certificate");
    expect(() => serverTls({ certFile: broken, keyFile: pki.apiServer.keyFile })).toThrow(broken);
    expect(() => serverTls({ certFile: pki.apiClient.certFile, keyFile: pki.apiServer.keyFile })).toThrow(
      /do not load/,
    );
    expect(() => serverTls({ certFile: join(dir, "missing.pem"), keyFile: pki.apiServer.keyFile })).toThrow(
      /cannot read .*missing\.pem/,
    );
  });
});

describe("server reflection", () => {
  it("lists only the public services given, never the internal ones", async () => {
    const address = await serve(undefined);
    const listed = await listServices(address, credentials.createInsecure());
    expect(listed).toContain("cinderblock.v1.VolumesService");
    expect(listed).toContain("grpc.health.v1.Health");
    expect(listed).not.toContain("cinderblock.internal");
  });

  it("is not served when turned off", async () => {
    const address = await serve({ ...pki.apiServer }, false);
    const creds = await trusting(pki.caFile);
    expect(await codeOf(listServices(address, creds))).toBe(status.UNIMPLEMENTED);
    expect(await healthCheck(address, creds)).toBe("NOT_SERVING");
  });
});
