import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { backendScripts, backendUnavailable, freePort, mustRunInCI, REPO_ROOT } from "@cinderblock/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The deployment for real: builds the images (deploy/Dockerfile, the local PostgreSQL and NATS
// images) with podman, starts deploy/compose.yaml through podman's API socket with docker-compose,
// calls the api from outside the containers with `buf curl` through server reflection, then tears
// it all down (containers, named volumes, the health-check loop and podman's API service).
// In CI it must run; elsewhere, without root or podman, it says why and skips.

const execFileAsync = promisify(execFile);
const SCRIPTS = backendScripts("containers");
const BUF = join(REPO_ROOT, "node_modules", ".bin", "buf");
const PROJECT = "cinderblocktest";

const unavailable = mustRunInCI("the container test", await backendUnavailable("containers"));

let env: NodeJS.ProcessEnv;
let api: string;
let metrics: string;
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

/** `buf curl` from outside the containers, as a user would (reflection, no .proto files). */
async function bufCurl(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
    cwd: REPO_ROOT,
  });
  return stdout;
}

const H = ["-H", "x-project-id:containers", "-H", "x-user-id:alice"];
async function rpc<T>(method: string, body: object): Promise<T> {
  return JSON.parse(await bufCurl([...H, "-d", JSON.stringify(body), `${api}/cinderblock.v1.${method}`])) as T;
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

describe.skipIf(unavailable !== undefined)("the compose deployment on podman", () => {
  beforeAll(async () => {
    const port = await freePort();
    const metricsPort = await freePort();
    env = {
      ...process.env,
      COMPOSE_PROJECT_NAME: PROJECT,
      CINDERBLOCK_API_PORT: String(port),
      CINDERBLOCK_METRICS_PORT: String(metricsPort),
    };
    api = `http://127.0.0.1:${port}`;
    metrics = `http://127.0.0.1:${metricsPort}/metrics`;
    await script("build.sh");
    started = true;
    await script("up.sh");
  }, 900_000);

  afterAll(async () => {
    if (!started) return;
    try {
      if (process.env.CI === "true") console.log(await script("logs.sh"));
    } finally {
      await script("down.sh", "-v");
    }
  }, 120_000);

  it("lists the public services through reflection", async () => {
    const services = (await bufCurl(["--list-services", api])).split("\n");
    expect(services).toEqual(
      expect.arrayContaining([
        "cinderblock.v1.VolumesService",
        "cinderblock.v1.SnapshotsService",
        "grpc.health.v1.Health",
      ]),
    );
  });

  it("creates a volume and a snapshot that ends available", async () => {
    type VolumeRes = { volume: { id: string; status: string } };
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
});
