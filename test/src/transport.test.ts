import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeTestPki, type ServiceProcess, startService, type TestPki } from "@cinderblock/testing";
import { type ChannelCredentials, Client, credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

// The services as processes, started with and without their TLS settings: the volume host does not
// start without mTLS, nor the api without its client certificate for hosts; the api's public port
// speaks TLS when given a certificate, and serves no reflection when told not to.

let dir: string;
let pki: TestPki;
const started: ServiceProcess[] = [];
const clients: Client[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cinderblock-transport-"));
  pki = await makeTestPki(dir);
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of started.splice(0)) await s.kill();
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function start(name: "api" | "volume", env: Record<string, string>): ServiceProcess {
  // Nothing answers on these: a service that starts waits for them, with its port bound.
  const service = startService(name, {
    DATABASE_URL: "postgres://postgres@127.0.0.1:1/none",
    NATS_URL: "nats://127.0.0.1:1",
    CINDERBLOCK_API_LISTEN: "127.0.0.1:0",
    CINDERBLOCK_METRICS_LISTEN: "",
    LOG_LEVEL: "info",
    ...env,
  });
  started.push(service);
  return service;
}

async function exitOf(service: ServiceProcess): Promise<{ code: number | null; output: string }> {
  const code = await new Promise<number | null>((resolve) => {
    if (service.child.exitCode !== null) resolve(service.child.exitCode);
    else service.child.once("exit", resolve);
  });
  return { code, output: service.lines.join("\n") };
}

const raw = (b: Buffer) => b;

function unary(address: string, creds: ChannelCredentials, path: string): Promise<Buffer> {
  const client = new Client(address, creds);
  clients.push(client);
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      path,
      raw,
      raw,
      Buffer.alloc(0),
      new Metadata(),
      { deadline: Date.now() + 5000 },
      (err: ServiceError | null, res?: Buffer) => (err ? reject(err) : resolve(res ?? Buffer.alloc(0))),
    ),
  );
}

const codeOf = (call: Promise<unknown>) =>
  call.then(
    () => "ok" as const,
    (e: ServiceError) => e.code,
  );

describe("services refuse to start without their TLS settings", () => {
  it("the volume host: its internal service is mTLS-only", async () => {
    const { code, output } = await exitOf(start("volume", {}));
    expect(code).toBe(1);
    expect(output).toContain("CINDERBLOCK_VOLUME_TLS_CERT_FILE: required");
    expect(output).toContain("CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE: required");
  });

  it("the api: it needs a client certificate for the volume hosts", async () => {
    const { code, output } = await exitOf(start("api", {}));
    expect(code).toBe(1);
    expect(output).toContain("CINDERBLOCK_HOST_TLS_CERT_FILE: required");
  });

  it("a certificate that does not match its key stops the volume host, naming the files", async () => {
    const { code, output } = await exitOf(
      start("volume", { ...pki.env, CINDERBLOCK_VOLUME_TLS_KEY_FILE: pki.apiClient.keyFile }),
    );
    expect(code).toBe(1);
    expect(output).toContain(`TLS certificate ${pki.volumeServer.certFile} and key ${pki.apiClient.keyFile}`);
  });
});

describe("the api's public port with TLS", () => {
  it("speaks TLS only, and serves no reflection when CINDERBLOCK_API_REFLECTION=false", async () => {
    const api = start("api", {
      ...pki.env,
      CINDERBLOCK_API_TLS_CERT_FILE: pki.apiServer.certFile,
      CINDERBLOCK_API_TLS_KEY_FILE: pki.apiServer.keyFile,
      CINDERBLOCK_API_REFLECTION: "false",
    });
    const listening = await api.waitFor("grpc listening");
    expect(listening.tls).toBe(true);
    const address = `127.0.0.1:${String(listening.port)}`;
    const tls = credentials.createSsl(await readFile(pki.caFile));
    // Health answers (NOT_SERVING while PostgreSQL and NATS are awaited) over TLS only.
    expect(await codeOf(unary(address, credentials.createInsecure(), "/grpc.health.v1.Health/Check"))).toBe(
      status.UNAVAILABLE,
    );
    expect(await unary(address, tls, "/grpc.health.v1.Health/Check")).toEqual(Buffer.from([0x08, 0x02]));
    const client = new Client(address, tls);
    clients.push(client);
    const reflection = await new Promise<status>((resolve) => {
      const stream = client.makeBidiStreamRequest(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        raw,
        raw,
        new Metadata(),
      );
      stream.on("data", () => resolve(status.OK));
      stream.on("error", (e: ServiceError) => resolve(e.code));
      stream.write(Buffer.from([0x3a, 0x00]));
      stream.end();
    });
    expect(reflection).toBe(status.UNIMPLEMENTED);
  });
});
