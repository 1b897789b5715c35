import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { findNatsServer, mustRunInCI, type PrivateNats, startPrivateNats } from "@cinderblock/testing";
import { nkeys } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectBus } from "./connection.js";

// connectBus against a private nats-server that wants TLS with a client certificate and knows its
// user by an NKey: the standard nats.js options, from files as the NATS_* settings name them.

const run = promisify(execFile);
const skip = mustRunInCI(
  "connectBus over TLS with an NKey",
  findNatsServer() ? undefined : "no nats-server binary (apt-get install nats-server)",
);

let dir: string;
let nats: PrivateNats;
const files = (name: string) => join(dir, name);

/** A CA, a server certificate for 127.0.0.1 and a client certificate it signs, made with the openssl CLI. */
async function makeCertificates(): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    files("ca.key"),
    "-out",
    files("ca.pem"),
    "-days",
    "1",
    "-subj",
    "/CN=test-ca",
  ]);
  for (const [name, san] of [
    ["server", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
    ["client", "extendedKeyUsage=clientAuth"],
  ] as const) {
    await run("openssl", [
      "req",
      ...ec,
      "-keyout",
      files(`${name}.key`),
      "-out",
      files(`${name}.csr`),
      "-subj",
      `/CN=${name}`,
    ]);
    await writeFile(files(`${name}.ext`), `${san}\n`);
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      files(`${name}.csr`),
      "-CA",
      files("ca.pem"),
      "-CAkey",
      files("ca.key"),
      "-CAcreateserial",
      "-days",
      "1",
      "-out",
      files(`${name}.pem`),
      "-extfile",
      files(`${name}.ext`),
    ]);
  }
}

const user = nkeys.createUser();
const stranger = nkeys.createUser();

beforeAll(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), "cinderblock-nats-tls-"));
  await makeCertificates();
  await writeFile(files("seed"), `${new TextDecoder().decode(user.getSeed())}\n`);
  await writeFile(files("stranger-seed"), new TextDecoder().decode(stranger.getSeed()));
  await writeFile(
    files("server.conf"),
    [
      "tls {",
      `  cert_file: "${files("server.pem")}"`,
      `  key_file: "${files("server.key")}"`,
      `  ca_file: "${files("ca.pem")}"`,
      "  verify: true",
      "}",
      `authorization { users: [ { nkey: ${user.getPublicKey()} } ] }`,
    ].join("\n"),
  );
  nats = await startPrivateNats(findNatsServer() as string, { configFile: files("server.conf") });
}, 60_000);

afterAll(async () => {
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(skip)("connectBus", () => {
  const tls = () => ({ caFile: files("ca.pem"), certFile: files("client.pem"), keyFile: files("client.key") });

  it("connects over TLS with a client certificate and an NKey seed file, and makes the streams", async () => {
    const bus = await connectBus({
      url: [nats.url],
      prefix: "cbtls",
      name: "tls-test",
      credentials: { nkeySeedFile: files("seed") },
      tls: tls(),
    });
    try {
      expect((await bus.jsm.streams.info(bus.subjects.castsStream)).config.name).toBe("CBTLS_CASTS");
      expect(bus.nc.info?.tls_required).toBe(true);
    } finally {
      await bus.close();
    }
  });

  it("refuses a server it cannot verify, and is refused with a seed the server does not know", async () => {
    const base = { url: nats.url, prefix: "cbtls", name: "tls-test" };
    // Without the CA (the server asks for TLS, the client upgrades but cannot verify it).
    await expect(connectBus({ ...base, credentials: { nkeySeedFile: files("seed") } })).rejects.toThrow(
      /verify the first certificate/,
    );
    await expect(
      connectBus({ ...base, credentials: { nkeySeedFile: files("stranger-seed") }, tls: tls() }),
    ).rejects.toThrow(/Authorization Violation/);
    await expect(connectBus({ ...base, credentials: { nkeySeedFile: files("missing") }, tls: tls() })).rejects.toThrow(
      /cannot read the NATS NKey seed file .*missing/,
    );
  });
});
