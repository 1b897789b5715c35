import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { SnapshotStatus, VolumeStatus } from "@cinderblock/proto";
import {
  backendScripts,
  backendUnavailable,
  mustRunInCI,
  type Stack,
  startStack,
  uniqueName,
} from "@cinderblock/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectApi } from "./project-api.js";

// End to end on real Ceph: api, scheduler and a volume host whose backend is the rbd driver, on
// a single-node cluster that scripts/ceph starts in a temp dir. A CreateSnapshot must end as the
// protected RBD snapshot volume-<id>@snapshot-<id>.

const execFileAsync = promisify(execFile);
const SCRIPTS = backendScripts("ceph");
const POOL = "rbd";

const unavailable = mustRunInCI("the RBD end-to-end test", await backendUnavailable("ceph"));

let root: string;
let clusterDir: string;
let stack: Stack | undefined;

/** The rbd CLI, as an administrator would look at the pool. */
async function rbd(...args: string[]): Promise<string> {
  const auth = ["--conf", join(clusterDir, "ceph.conf"), "--keyring", join(clusterDir, "keyring")];
  const { stdout } = await execFileAsync("rbd", [...args, ...auth], { timeout: 60_000 });
  return stdout;
}

function api(project: string) {
  return projectApi(() => stack, project, "rbd snap");
}

describe.skipIf(unavailable)("CreateSnapshot on an rbd backend (a real Ceph cluster)", { timeout: 120_000 }, () => {
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "cinderblock-rbd-e2e-"));
    clusterDir = join(root, "cluster");
    await execFileAsync(join(SCRIPTS, "up.sh"), [clusterDir], {
      env: { ...process.env, WAIT_HEALTH: "0" },
      timeout: 180_000,
    });
    stack = await startStack({
      env: {
        CINDERBLOCK_VOLUME_DRIVER: "rbd",
        CINDERBLOCK_BACKEND_NAME: "rbd",
        CINDERBLOCK_DRIVER_OPTIONS: JSON.stringify({
          pool: POOL,
          confPath: join(clusterDir, "ceph.conf"),
          keyring: join(clusterDir, "keyring"),
        }),
      },
    });
  }, 300_000);

  afterAll(async () => {
    const codes = await stack?.stop();
    if (root) {
      await execFileAsync(join(SCRIPTS, "down.sh"), [clusterDir], { timeout: 60_000 });
      await rm(root, { recursive: true, force: true });
    }
    expect(codes).toEqual({ api: 0, scheduler: 0, volume: 0 });
  }, 90_000);

  it("flows api → scheduler → volume host and leaves a protected snapshot in `rbd snap ls`", async () => {
    const project = uniqueName("proj-");
    const created = await api(project).createVolume("rbd-e2e");
    const volume = await api(project).settledVolume(created.id);
    expect(volume).toMatchObject({ status: VolumeStatus.VOLUME_STATUS_AVAILABLE, host: `${stack?.host}@rbd` });
    const image = JSON.parse(await rbd("info", "--format", "json", `${POOL}/volume-${volume.id}`)) as { size: number };
    expect(image.size).toBe(1024 ** 3);

    const snapshot = await api(project).createSnapshot(volume.id);
    expect(snapshot.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_CREATING);
    const settled = await api(project).settledSnapshot(snapshot.id);
    expect(settled).toMatchObject({
      status: SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE,
      progress: "100%",
      providerLocation: `${POOL}/volume-${volume.id}@snapshot-${snapshot.id}`,
    });

    const snaps = JSON.parse(await rbd("snap", "ls", "--format", "json", `${POOL}/volume-${volume.id}`)) as Array<{
      name: string;
      size: number;
      protected: string;
    }>;
    expect(snaps).toEqual([
      expect.objectContaining({ name: `snapshot-${snapshot.id}`, size: 1024 ** 3, protected: "true" }),
    ]);
  });

  it("clones a volume through a temporary snapshot: flattened, holding the source's bytes, grown, no snapshot left", async () => {
    const project = uniqueName("proj-");
    const source = await api(project).settledVolume((await api(project).createVolume("rbd-src")).id);
    expect(source.status).toBe(VolumeStatus.VOLUME_STATUS_AVAILABLE);
    // Real bytes in the source: its image replaced by one of the same size holding 4 MiB of noise.
    const auth = `--conf ${join(clusterDir, "ceph.conf")} --keyring ${join(clusterDir, "keyring")}`;
    const shell = async (script: string) =>
      (await execFileAsync("sh", ["-c", script], { timeout: 120_000 })).stdout.trim();
    const file = join(root, "source.img");
    const pattern = await shell(
      `truncate -s 1G ${file} && head -c 4194304 /dev/urandom | dd of=${file} conv=notrunc status=none && ` +
        `rbd rm --no-progress ${POOL}/volume-${source.id} ${auth} && rbd import --no-progress ${file} ${POOL}/volume-${source.id} ${auth} && ` +
        `head -c 4194304 ${file} | sha256sum | cut -c1-16`,
    );

    const clone = await api(project).settledVolume((await api(project).cloneVolume("rbd-clone", source.id, 2)).id);
    expect(clone).toMatchObject({
      status: VolumeStatus.VOLUME_STATUS_AVAILABLE,
      sourceVolumeId: source.id,
      host: source.host,
      sizeGb: 2,
    });
    const info = JSON.parse(await rbd("info", "--format", "json", `${POOL}/volume-${clone.id}`)) as {
      size: number;
      parent?: unknown;
    };
    expect(info.size).toBe(2 * 1024 ** 3);
    expect(info.parent).toBeUndefined();
    expect(JSON.parse(await rbd("snap", "ls", "--format", "json", `${POOL}/volume-${source.id}`))).toEqual([]);
    const copied = await shell(
      `rbd export --no-progress ${POOL}/volume-${clone.id} - ${auth} 2>/dev/null | head -c 4194304 | sha256sum | cut -c1-16`,
    );
    expect(copied).toBe(pattern);
  });

  it("a volume image removed behind the service's back leaves its reason on the snapshot", async () => {
    const project = uniqueName("proj-");
    const created = await api(project).createVolume("rbd-gone");
    const volume = await api(project).settledVolume(created.id);
    await rbd("rm", "--no-progress", `${POOL}/volume-${volume.id}`);
    const snapshot = await api(project).createSnapshot(volume.id);
    const settled = await api(project).settledSnapshot(snapshot.id);
    // The tenant reads what failed; the backend's words (names, pools) are for admins only.
    expect(settled).toMatchObject({
      status: SnapshotStatus.SNAPSHOT_STATUS_ERROR,
      statusReason: "the storage backend failed to create the snapshot",
      statusDetail: "",
    });
    expect((await api(project).snapshotAsAdmin(snapshot.id)).statusDetail).toBe(
      `volume image volume-${volume.id} not found in pool ${POOL}`,
    );
  });
});
