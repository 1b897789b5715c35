import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { promisify } from "node:util";
import { backendScripts, backendUnavailable, freePort, mustRunInCI, REPO_ROOT } from "@cinderblock/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The deployment for real, secure as it ships: builds the images (deploy/Dockerfile and the local
// secrets, PostgreSQL, NATS and Keystone images) with podman, starts deploy/compose.yaml through
// podman's API socket with docker-compose (its `secrets` service making a CA, certificates and
// passwords into a directory of the test's), logs in to the stack's Keystone as the demo user, and
// calls the api from outside the containers with `buf curl` over TLS with that token (and as the
// admin, to give each of the two volume hosts a volume type and a volume); then tears it
// all down (containers, named volumes, the secrets, the health-check loop and podman's API service).
// Then the same with deploy/compose.ha.yaml on top: JetStream's replicas and leaders, the standby's
// streaming, a snapshot through each api, and one after the NATS node leading the casts is stopped.
// In CI it must run; elsewhere, without root or podman, it says why and skips.

const execFileAsync = promisify(execFile);
const SCRIPTS = backendScripts("containers");
const BUF = join(REPO_ROOT, "node_modules", ".bin", "buf");
const PROJECT = "cinderblocktest";

const unavailable = mustRunInCI("the container test", await backendUnavailable("containers"));

let env: NodeJS.ProcessEnv;
let api: string;
let apiPort: number;
let rest: string;
let metrics: string;
let keystone: string;
let secrets: string;
let token: string;
let started = false;

async function script(name: string, ...args: string[]): Promise<string> {
  const t0 = Date.now();
  try {
    const { stdout } = await execFileAsync(join(SCRIPTS, name), args, {
      env,
      cwd: REPO_ROOT,
      maxBuffer: 64 * 1024 * 1024,
    });
    console.log(`${name} ${args.join(" ")}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    throw new Error(`${name} failed:\n${e.stdout ?? ""}\n${e.stderr ?? error}`);
  }
}

/** `buf curl` from outside the containers, as a user would: TLS against the stack's CA, reflection. */
async function bufCurl(args: string[], authToken: string | null = token): Promise<string> {
  const auth = authToken === null ? [] : ["-H", `x-auth-token: ${authToken}`];
  const { stdout } = await execFileAsync(
    BUF,
    ["curl", "--protocol", "grpc", "--cacert", join(secrets, "ca.crt"), ...auth, ...args],
    { cwd: REPO_ROOT },
  );
  return stdout;
}

/** The gRPC status code (lower-case, as buf curl prints it) a failed `buf curl` ended with. */
async function bufCurlError(args: string[], authToken: string | null): Promise<string> {
  try {
    await bufCurl(args, authToken);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    return /"code":\s*"([a-z_]+)"/.exec(stderr)?.[1] ?? stderr;
  }
  throw new Error(`buf curl ${args.join(" ")} succeeded`);
}

async function rpc<T>(method: string, body: object): Promise<T> {
  return JSON.parse(await bufCurl(["-d", JSON.stringify(body), `${api}/cinderblock.v1.${method}`])) as T;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The OS_* variables of one of the openrc files the `secrets` service wrote. */
function openrc(name: string): Record<string, string> {
  const text = readFileSync(join(secrets, name), "utf8");
  return Object.fromEntries([...text.matchAll(/(OS_\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
}

/** A Keystone password login, project-scoped: the token (X-Subject-Token), as the openstack CLI does. */
async function login(user: string, password: string, project: string): Promise<string> {
  const res = await fetch(`${keystone}/auth/tokens`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      auth: {
        identity: { methods: ["password"], password: { user: { name: user, domain: { id: "default" }, password } } },
        scope: { project: { name: project, domain: { id: "default" } } },
      },
    }),
  });
  expect(res.status, `Keystone login as ${user}`).toBe(201);
  return res.headers.get("x-subject-token") ?? "";
}

/** Whether a TLS handshake with `host:port` completes, with or without a client certificate. */
function handshake(host: string, port: number, client?: { cert: Buffer; key: Buffer }): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, ca: readFileSync(join(secrets, "ca.crt")), servername: "volume", ...client });
    socket.setTimeout(5000, () => socket.destroy(new Error("timeout")));
    // TLS 1.3: a missing client certificate shows up as an alert after the handshake "completed".
    socket.on("secureConnect", () => socket.write(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")));
    socket.on("data", () => {
      socket.destroy();
      resolve("ok");
    });
    socket.on("error", (error) => resolve(error.message));
    socket.on("close", () => resolve("closed"));
  });
}

describe.skipIf(unavailable !== undefined)("the compose deployment on podman, secure by default", () => {
  beforeAll(async () => {
    apiPort = await freePort();
    const metricsPort = await freePort();
    const keystonePort = await freePort();
    const restPort = await freePort();
    secrets = mkdtempSync(join(tmpdir(), "cinderblock-secrets-"));
    env = {
      ...process.env,
      COMPOSE_PROJECT_NAME: PROJECT,
      CINDERBLOCK_API_PORT: String(apiPort),
      CINDERBLOCK_METRICS_PORT: String(metricsPort),
      CINDERBLOCK_KEYSTONE_PORT: String(keystonePort),
      CINDERBLOCK_REST_PORT: String(restPort),
      CINDERBLOCK_SECRETS_DIR: secrets,
    };
    api = `https://127.0.0.1:${apiPort}`;
    metrics = `http://127.0.0.1:${metricsPort}/metrics`;
    keystone = `http://127.0.0.1:${keystonePort}/v3`;
    rest = `http://127.0.0.1:${restPort}`;
    await script("build.sh");
    started = true;
    await script("up.sh");
    const demo = openrc("demo-openrc");
    token = await login(demo.OS_USERNAME ?? "", demo.OS_PASSWORD ?? "", demo.OS_PROJECT_NAME ?? "");
  }, 900_000);

  afterAll(async () => {
    if (!started) return;
    try {
      if (process.env.CI === "true") console.log(await script("logs.sh"));
    } finally {
      await script("down.sh", "-v");
      rmSync(secrets, { recursive: true, force: true });
    }
  }, 120_000);

  it("made its credentials at first start, for the user to read, and nothing the user does not need", () => {
    const demo = openrc("demo-openrc");
    expect(demo.OS_AUTH_URL).toBe(keystone);
    expect(demo.OS_PASSWORD).toMatch(/^p[0-9a-f]{48}$/);
    expect(readFileSync(join(secrets, "ca.crt"), "utf8")).toMatch(/BEGIN CERTIFICATE/);
    expect(token).toMatch(/^\S{100,}$/);
  });

  it("lists the public services through reflection, over TLS", async () => {
    const services = (await bufCurl(["--list-services", api])).split("\n");
    expect(services).toEqual(
      expect.arrayContaining([
        "cinderblock.v1.VolumesService",
        "cinderblock.v1.SnapshotsService",
        "grpc.health.v1.Health",
      ]),
    );
  });

  it("creates a volume and a snapshot that ends available, with the demo user's token", async () => {
    type VolumeRes = { volume: { id: string; status: string; projectId?: string } };
    type SnapshotRes = { snapshot: { id: string; status: string; progress?: string } };
    const created = await rpc<VolumeRes>("VolumesService/CreateVolume", { name: "boot", sizeGb: 1 });
    await until("the volume to be available", async () => {
      const { volume } = await rpc<VolumeRes>("VolumesService/GetVolume", { id: created.volume.id });
      expect(volume.status).not.toBe("VOLUME_STATUS_ERROR");
      return volume.status === "VOLUME_STATUS_AVAILABLE" ? volume : undefined;
    });
    const { snapshot } = await rpc<SnapshotRes>("SnapshotsService/CreateSnapshot", {
      volumeId: created.volume.id,
      name: "nightly",
    });
    const done = await until("the snapshot to be available", async () => {
      const res = await rpc<SnapshotRes>("SnapshotsService/GetSnapshot", { id: snapshot.id });
      expect(res.snapshot.status).not.toBe("SNAPSHOT_STATUS_ERROR");
      return res.snapshot.status === "SNAPSHOT_STATUS_AVAILABLE" ? res.snapshot : undefined;
    });
    expect(done.progress).toBe("100%");
    // The api container's /metrics, published like its gRPC port, counted that call.
    const text = await (await fetch(metrics)).text();
    expect(text).toMatch(
      /grpc_server_handled_total\{[^}]*grpc_method="CreateSnapshot"[^}]*grpc_code="OK"[^}]*\} [1-9]/,
    );
  });

  it("serves Cinder's v3 REST API on its published port, with the demo user's Keystone token", async () => {
    const versions = await fetch(`${rest}/v3/`);
    expect(versions.status).toBe(200);
    expect(await versions.json()).toMatchObject({ versions: [{ id: "v3.0", status: "CURRENT" }] });
    const listed = await fetch(`${rest}/v3/volumes/detail`, { headers: { "x-auth-token": token } });
    expect(listed.status).toBe(200);
    const { volumes } = (await listed.json()) as { volumes: Array<{ name: string; status: string }> };
    expect(volumes).toEqual(expect.arrayContaining([expect.objectContaining({ name: "boot", status: "available" })]));
    const forged = await fetch(`${rest}/v3/volumes`, { headers: { "x-auth-token": "gAAAAABforged-token" } });
    expect(forged.status).toBe(401);
  });

  it("runs two volume hosts: a volume of each backend's type is available on its own host", async () => {
    // Types are the admin's to make (README "Deployment": one per backend of the compose file).
    const admin = openrc("admin-openrc");
    const adminToken = await login(admin.OS_USERNAME ?? "", admin.OS_PASSWORD ?? "", admin.OS_PROJECT_NAME ?? "");
    const asAdmin = async <T>(method: string, body: object): Promise<T> =>
      JSON.parse(await bufCurl(["-d", JSON.stringify(body), `${api}/cinderblock.v1.${method}`], adminToken)) as T;
    type VolumeRes = { volume: { id: string; status: string; host?: string } };
    const hosts: string[] = [];
    for (const backend of ["file-a", "file-b"]) {
      await asAdmin("VolumeTypesService/CreateVolumeType", {
        name: `type-${backend}`,
        extraSpecs: { volume_backend_name: backend },
      });
      const created = await asAdmin<VolumeRes>("VolumesService/CreateVolume", {
        name: `on-${backend}`,
        sizeGb: 1,
        volumeType: `type-${backend}`,
      });
      const volume = await until(`the volume of type-${backend} to be available`, async () => {
        const { volume } = await asAdmin<VolumeRes>("VolumesService/GetVolume", { id: created.volume.id });
        expect(volume.status).not.toBe("VOLUME_STATUS_ERROR");
        return volume.status === "VOLUME_STATUS_AVAILABLE" ? volume : undefined;
      });
      hosts.push(volume.host ?? "");
    }
    expect(hosts).toEqual(["vol1@file-a", "vol2@file-b"]);
  });

  it("retypes a volume from file-a's type to file-b's with migration on-demand: it moves to vol2 with its bytes", async () => {
    // The volume hosts call each other with their peer certificates (make-secrets.sh's peer.crt).
    const admin = openrc("admin-openrc");
    const adminToken = await login(admin.OS_USERNAME ?? "", admin.OS_PASSWORD ?? "", admin.OS_PROJECT_NAME ?? "");
    const asAdmin = async <T>(method: string, body: object): Promise<T> =>
      JSON.parse(await bufCurl(["-d", JSON.stringify(body), `${api}/cinderblock.v1.${method}`], adminToken)) as T;
    type VolumeRes = {
      volume: { id: string; status: string; host?: string; volumeType?: string; migrationStatus?: string };
    };
    for (const backend of ["file-a", "file-b"]) {
      await asAdmin("VolumeTypesService/CreateVolumeType", {
        name: `migrate-${backend}`,
        extraSpecs: { volume_backend_name: backend },
      });
    }
    const created = await asAdmin<VolumeRes>("VolumesService/CreateVolume", {
      name: "moving",
      sizeGb: 1,
      volumeType: "migrate-file-a",
    });
    const id = created.volume.id;
    const settled = (what: string, done: (v: VolumeRes["volume"]) => boolean) =>
      until(what, async () => {
        const { volume } = await asAdmin<VolumeRes>("VolumesService/GetVolume", { id });
        expect(volume.status).not.toBe("VOLUME_STATUS_ERROR");
        return done(volume) ? volume : undefined;
      });
    const before = await settled("the volume to be available", (v) => v.status === "VOLUME_STATUS_AVAILABLE");
    expect(before.host).toBe("vol1@file-a");
    // Known bytes in the volume's file on vol1 (the file driver's data directory), at its start and
    // past its middle, the rest sparse zeros.
    const file = `/var/lib/cinderblock/volumes/volume-${id}.img`;
    const inVolumeHost = (service: string, ...command: string[]) =>
      script("compose.sh", "exec", "-T", service, ...command);
    await inVolumeHost(
      "volume",
      "node",
      "-e",
      `const fs = require("node:fs"), crypto = require("node:crypto");
       const fd = fs.openSync(${JSON.stringify(file)}, "r+");
       for (const at of [0, 700 * 1024 * 1024 + 12345]) fs.writeSync(fd, crypto.randomBytes(3 * 1024 * 1024 + 7), 0, undefined, at);
       fs.fsyncSync(fd);
       fs.closeSync(fd);`,
    );
    const sha256 = async (service: string) => (await inVolumeHost(service, "sha256sum", file)).split(" ")[0];
    const written = await sha256("volume");
    expect(written).toMatch(/^[0-9a-f]{64}$/);
    // Not the SHA-256 of 1 GiB of zeros: the bytes landed.
    expect(written).not.toBe("49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14");

    await asAdmin("VolumesService/RetypeVolume", { id, newType: "migrate-file-b", migrationPolicy: "on-demand" });
    const after = await settled("the retype to finish", (v) => v.status !== "VOLUME_STATUS_RETYPING");
    expect(after).toMatchObject({
      status: "VOLUME_STATUS_AVAILABLE",
      host: "vol2@file-b",
      volumeType: "migrate-file-b",
      migrationStatus: "success",
    });
    expect(await sha256("volume2")).toBe(written);
    // And vol1 removed its copy.
    await until("vol1 to remove its copy", async () => {
      const listing = await inVolumeHost("volume", "ls", "/var/lib/cinderblock/volumes");
      return listing.includes(`volume-${id}.img`) ? undefined : true;
    });
  });

  it("refuses a call without a token, or with a forged one, as UNAUTHENTICATED", async () => {
    const call = ["-d", "{}", `${api}/cinderblock.v1.VolumesService/ListVolumes`];
    expect(await bufCurlError(call, null)).toBe("unauthenticated");
    expect(await bufCurlError(call, "gAAAAABforged-token")).toBe("unauthenticated");
  });

  it("speaks only TLS on the api's port, with a certificate from the stack's CA", async () => {
    const plaintext = execFileAsync(BUF, [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-H",
      `x-auth-token: ${token}`,
      "-d",
      "{}",
      `http://127.0.0.1:${apiPort}/cinderblock.v1.VolumesService/ListVolumes`,
    ]);
    await expect(plaintext).rejects.toThrow();
    // Without the stack's CA the api's certificate is not trusted; with it, it is. (Node's TLS
    // client, since buf curl words a failed handshake as "the server ... is unavailable".)
    const handshake = (ca?: Buffer) =>
      new Promise<string>((resolve) => {
        const socket = connect({ host: "127.0.0.1", port: apiPort, ALPNProtocols: ["h2"], ca }, () => {
          socket.end();
          resolve("trusted");
        });
        socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      });
    expect(await handshake()).toMatch(/CERT|ISSUER|SIGNATURE/);
    expect(await handshake(readFileSync(join(secrets, "ca.crt")))).toBe("trusted");
  });

  it("publishes no port of the volume host, which accepts only the api's client certificate", async () => {
    const ps = await script("compose.sh", "ps");
    const line = ps.split("\n").find((l) => /_volume_\d/.test(l)) ?? "";
    expect(line).toMatch(/Up/);
    expect(line).not.toMatch(/->/);
    // From this machine the container's address is routable (a rootful bridge), so mutual TLS is
    // what keeps callers out: without a client certificate the handshake fails; with the api's it does not.
    const address = (
      await script(
        "compose.sh",
        "exec",
        "-T",
        "volume",
        "node",
        "-p",
        "require('node:os').networkInterfaces().eth0?.[0]?.address ?? ''",
      )
    ).trim();
    expect(address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(await handshake(address, 50052)).not.toBe("ok");
    const apiClient = {
      cert: readFileSync(join(secrets, "api", "host-client.crt")),
      key: readFileSync(join(secrets, "api", "host-client.key")),
    };
    expect(await handshake(address, 50052, apiClient)).toBe("ok");
  });
});

/** JetStream's view from one NATS node (its monitoring port, inside the container): streams and consumers. */
type StreamDetail = {
  name: string;
  config: { num_replicas: number };
  cluster?: { leader?: string; replicas?: Array<{ name: string; current: boolean }> };
  consumer_detail?: Array<{ name: string; config?: { num_replicas?: number }; cluster?: StreamDetail["cluster"] }>;
};
async function jetStreamOf(node: string): Promise<StreamDetail[]> {
  const url = "http://127.0.0.1:8222/jsz?accounts=true&streams=true&consumers=true&config=true";
  const text = await script(
    "compose.sh",
    "exec",
    "-T",
    node,
    "node",
    "-e",
    `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t))`,
  );
  const jsz = JSON.parse(text) as { account_details?: Array<{ stream_detail?: StreamDetail[] }> };
  return (jsz.account_details ?? []).flatMap((a) => a.stream_detail ?? []);
}

/** A volume, then a snapshot of it, both `available`, through the api at `base`. */
async function volumeAndSnapshot(base: string, name: string): Promise<void> {
  type VolumeRes = { volume: { id: string; status: string } };
  type SnapshotRes = { snapshot: { id: string; status: string } };
  const call = async <T>(method: string, body: object): Promise<T> =>
    JSON.parse(await bufCurl(["-d", JSON.stringify(body), `${base}/cinderblock.v1.${method}`])) as T;
  const created = await call<VolumeRes>("VolumesService/CreateVolume", { name, sizeGb: 1 });
  await until(`${name} to be available`, async () => {
    const { volume } = await call<VolumeRes>("VolumesService/GetVolume", { id: created.volume.id });
    expect(volume.status).not.toBe("VOLUME_STATUS_ERROR");
    return volume.status === "VOLUME_STATUS_AVAILABLE" ? volume : undefined;
  });
  const { snapshot } = await call<SnapshotRes>("SnapshotsService/CreateSnapshot", {
    volumeId: created.volume.id,
    name: `${name}-snap`,
  });
  await until(
    `the snapshot of ${name} to be available`,
    async () => {
      const res = await call<SnapshotRes>("SnapshotsService/GetSnapshot", { id: snapshot.id });
      expect(res.snapshot.status).not.toBe("SNAPSHOT_STATUS_ERROR");
      return res.snapshot.status === "SNAPSHOT_STATUS_AVAILABLE" ? res.snapshot : undefined;
    },
    90_000,
  );
}

// deploy/compose.ha.yaml on top (CINDERBLOCK_HA=1): three NATS nodes, a PostgreSQL primary and
// streaming standby, two apis, two schedulers, vol1 and vol3 one cluster. Its own compose project
// and secrets, on the images the suite above built (build.sh finds every layer cached).
describe.skipIf(unavailable !== undefined)("the high-availability compose overlay on podman", () => {
  const STREAMS = ["CINDERBLOCK_CASTS", "CINDERBLOCK_NOTIFICATIONS"];
  const NATS_NODES = ["nats", "nats-2", "nats-3"];
  let apis: string[] = [];
  let haStarted = false;

  beforeAll(async () => {
    const apiPorts = [await freePort(), await freePort()];
    const keystonePort = await freePort();
    secrets = mkdtempSync(join(tmpdir(), "cinderblock-secrets-"));
    env = {
      ...process.env,
      COMPOSE_PROJECT_NAME: `${PROJECT}ha`,
      CINDERBLOCK_HA: "1",
      CINDERBLOCK_API_PORT: String(apiPorts[0]),
      CINDERBLOCK_API2_PORT: String(apiPorts[1]),
      CINDERBLOCK_METRICS_PORT: String(await freePort()),
      CINDERBLOCK_KEYSTONE_PORT: String(keystonePort),
      CINDERBLOCK_REST_PORT: String(await freePort()),
      CINDERBLOCK_SECRETS_DIR: secrets,
    };
    apis = apiPorts.map((port) => `https://127.0.0.1:${port}`);
    keystone = `http://127.0.0.1:${keystonePort}/v3`;
    await script("build.sh");
    haStarted = true;
    await script("up.sh");
    const demo = openrc("demo-openrc");
    token = await login(demo.OS_USERNAME ?? "", demo.OS_PASSWORD ?? "", demo.OS_PROJECT_NAME ?? "");
  }, 900_000);

  afterAll(async () => {
    if (!haStarted) return;
    try {
      if (process.env.CI === "true") console.log(await script("logs.sh"));
    } finally {
      await script("down.sh", "-v");
      rmSync(secrets, { recursive: true, force: true });
    }
  }, 180_000);

  it("replicates both streams and every consumer of the casts on the three NATS nodes, each with a leader", async () => {
    // The schedulers and volume hosts make their consumers when they start, maybe after the api is up.
    const streams = await until("the scheduler's consumer", async () => {
      const found = await jetStreamOf("nats-2");
      const casts = found.find((s) => s.name === "CINDERBLOCK_CASTS");
      return casts?.consumer_detail?.some((c) => c.name === "scheduler") ? found : undefined;
    });
    // `replicas` lists the peers other than the node asked (nats-2): with it, all three.
    const everyNode = (cluster: StreamDetail["cluster"]) =>
      ["nats-2", ...(cluster?.replicas ?? []).map((r) => r.name)].sort();
    for (const name of STREAMS) {
      const stream = streams.find((s) => s.name === name);
      expect(stream?.config.num_replicas, name).toBe(3);
      expect(NATS_NODES, name).toContain(stream?.cluster?.leader);
      expect(everyNode(stream?.cluster), name).toEqual(NATS_NODES);
    }
    const casts = streams.find((s) => s.name === "CINDERBLOCK_CASTS");
    for (const consumer of casts?.consumer_detail ?? []) {
      expect(NATS_NODES, consumer.name).toContain(consumer.cluster?.leader);
      expect(everyNode(consumer.cluster), consumer.name).toEqual(NATS_NODES);
    }
  });

  it("streams the primary's WAL to the standby", async () => {
    const psql = (service: string, sql: string) =>
      script("compose.sh", "exec", "-T", service, "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-Atc", sql);
    const replication = await until("the standby to stream", async () => {
      const rows = (await psql("postgres", "SELECT application_name, state FROM pg_stat_replication")).trim();
      return rows === "standby|streaming" ? rows : undefined;
    });
    expect(replication).toBe("standby|streaming");
    expect((await psql("postgres-standby", "SELECT pg_is_in_recovery()")).trim()).toBe("t");
  });

  it("makes a volume and a snapshot available through each api replica, and pages across them", async () => {
    for (const [i, base] of apis.entries()) await volumeAndSnapshot(base, `through-api-${i + 1}`);
    // The replicas share the page-token key: the first api's token gives the second page at the second.
    type Page = { volumes?: Array<{ id: string }>; nextPageToken?: string };
    const list = async (base: string, body: object) =>
      JSON.parse(
        await bufCurl(["-d", JSON.stringify(body), `${base}/cinderblock.v1.VolumesService/ListVolumes`]),
      ) as Page;
    const first = await list(apis[0] ?? "", { pageSize: 1 });
    expect(first.nextPageToken).toBeTruthy();
    const second = await list(apis[1] ?? "", { pageSize: 1, pageToken: first.nextPageToken });
    expect(second.volumes?.length).toBe(1);
    expect(second.volumes?.[0]?.id).not.toBe(first.volumes?.[0]?.id);
  }, 240_000);

  it("completes a snapshot after the NATS node that leads the casts stream is stopped", async () => {
    const casts = (await jetStreamOf("nats")).find((s) => s.name === "CINDERBLOCK_CASTS");
    const leader = casts?.cluster?.leader ?? "";
    expect(NATS_NODES).toContain(leader);
    // `podman stop`, as a node's crash or maintenance would: restart: unless-stopped leaves it down.
    await execFileAsync(
      "bash",
      ["-c", 'source scripts/containers/env.sh && podman stop -t 5 "$(docker-compose ps -q "$1")"', "stop", leader],
      { env, cwd: REPO_ROOT },
    );
    const survivor = NATS_NODES.find((n) => n !== leader) ?? "";
    const moved = await until("another node to lead the casts stream", async () => {
      const stream = (await jetStreamOf(survivor)).find((s) => s.name === "CINDERBLOCK_CASTS");
      const next = stream?.cluster?.leader;
      return next !== undefined && next !== leader ? next : undefined;
    });
    expect(NATS_NODES.filter((n) => n !== leader)).toContain(moved);
    await volumeAndSnapshot(apis[0] ?? "", "after-a-nats-node-stopped");
  }, 240_000);
});
