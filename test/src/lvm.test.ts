import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { SnapshotStatus, VolumeStatus } from "@cinderblock/proto";
import {
  backendScripts,
  backendUnavailable,
  freePort,
  mustRunInCI,
  type Stack,
  startStack,
  uniqueName,
} from "@cinderblock/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectApi } from "./project-api.js";

// End to end on real LVM: api, scheduler and a volume host whose backend is the lvm driver (thin),
// its commands running in the project's LVM test guest (scripts/lvm-guest) through the guest's
// command agent. A CreateSnapshot must end as the real LV `_snapshot-<id>`.

const execFileAsync = promisify(execFile);
const SCRIPTS = backendScripts("lvm-guest");
const VG = "cinder-volumes";

const unavailable = mustRunInCI("the LVM end-to-end test", await backendUnavailable("lvm-guest"));

let runDir: string;
let stack: Stack | undefined;

/** Runs a shell script in the guest, as an administrator would look at the storage. */
async function guest(script: string): Promise<string> {
  const { stdout } = await execFileAsync(join(SCRIPTS, "run.sh"), [runDir, "sh", "-c", script]);
  return stdout.trim();
}

async function lvs(): Promise<Array<{ lv_name: string; origin: string; lv_size: string }>> {
  const out = await guest(`lvs --reportformat json --units b --nosuffix -o lv_name,origin,lv_size ${VG}`);
  return (
    (JSON.parse(out) as { report: Array<{ lv: Array<{ lv_name: string; origin: string; lv_size: string }> }> })
      .report[0]?.lv ?? []
  );
}

function api(project: string) {
  return projectApi(() => stack, project, "lvm snap");
}

describe.skipIf(unavailable)(
  "CreateSnapshot on an lvm backend (real LVM in the test guest)",
  { timeout: 120_000 },
  () => {
    beforeAll(async () => {
      runDir = await mkdtemp(join(tmpdir(), "cinderblock-lvm-e2e-"));
      let port = 0;
      for (let attempt = 1; ; attempt++) {
        port = await freePort();
        try {
          await execFileAsync(join(SCRIPTS, "up.sh"), [runDir, String(port), VG], {
            timeout: 240_000,
            env: { ...process.env, LVM_GUEST_OWNER_PID: String(process.pid) },
          });
          break;
        } catch (error) {
          if (attempt === 3) throw error;
        }
      }
      stack = await startStack({
        env: {
          CINDERBLOCK_VOLUME_DRIVER: "lvm",
          CINDERBLOCK_BACKEND_NAME: "lvm",
          CINDERBLOCK_DRIVER_OPTIONS: JSON.stringify({
            volumeGroup: VG,
            lvmType: "thin",
            runner: { kind: "agent", host: "127.0.0.1", port },
          }),
        },
      });
    }, 300_000);

    afterAll(async () => {
      const codes = await stack?.stop();
      if (runDir) {
        await execFileAsync(join(SCRIPTS, "down.sh"), [runDir]);
        await rm(runDir, { recursive: true, force: true });
      }
      expect(codes).toEqual({ api: 0, scheduler: 0, volume: 0 });
    });

    it("flows api → scheduler → volume host and leaves the LV _snapshot-<id> holding the volume's data", async () => {
      const project = uniqueName("proj-");
      const created = await api(project).createVolume("lvm-e2e");
      const volume = await api(project).settledVolume(created.id);
      expect(volume).toMatchObject({ status: VolumeStatus.VOLUME_STATUS_AVAILABLE, host: `${stack?.host}@lvm` });
      expect((await lvs()).find((lv) => lv.lv_name === `volume-${volume.id}`)?.lv_size).toBe(String(1024 ** 3));

      // Real bytes: what the volume holds at snapshot time is what the snapshot holds.
      const pattern = await guest(
        `head -c 4194304 /dev/urandom > /tmp/p && dd if=/tmp/p of=/dev/${VG}/volume-${volume.id} bs=1M oflag=direct conv=fsync status=none && sha256sum /tmp/p | cut -c1-16`,
      );

      const snapshot = await api(project).createSnapshot(volume.id);
      expect(snapshot.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_CREATING);
      const settled = await api(project).settledSnapshot(snapshot.id);
      expect(settled).toMatchObject({
        status: SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE,
        progress: "100%",
        providerLocation: `${VG}/_snapshot-${snapshot.id}`,
      });

      const lv = (await lvs()).find((l) => l.lv_name === `_snapshot-${snapshot.id}`);
      expect(lv).toEqual({
        lv_name: `_snapshot-${snapshot.id}`,
        origin: `volume-${volume.id}`,
        lv_size: String(1024 ** 3),
      });
      await guest(
        `dd if=/dev/zero of=/dev/${VG}/volume-${volume.id} bs=1M count=4 oflag=direct conv=fsync status=none`,
      );
      const kept = await guest(
        `lvchange -ay -K ${VG}/_snapshot-${snapshot.id} && dd if=/dev/${VG}/_snapshot-${snapshot.id} bs=1M count=4 iflag=direct status=none | sha256sum | cut -c1-16`,
      );
      expect(kept).toBe(pattern);
    });

    it("clones a volume as a thin snapshot of it: the clone holds the source's bytes, grown to its size", async () => {
      const project = uniqueName("proj-");
      const source = await api(project).settledVolume((await api(project).createVolume("lvm-src")).id);
      expect(source.status).toBe(VolumeStatus.VOLUME_STATUS_AVAILABLE);
      const pattern = await guest(
        `head -c 4194304 /dev/urandom > /tmp/c && dd if=/tmp/c of=/dev/${VG}/volume-${source.id} bs=1M oflag=direct conv=fsync status=none && sha256sum /tmp/c | cut -c1-16`,
      );
      const clone = await api(project).settledVolume((await api(project).cloneVolume("lvm-clone", source.id, 2)).id);
      expect(clone).toMatchObject({
        status: VolumeStatus.VOLUME_STATUS_AVAILABLE,
        sourceVolumeId: source.id,
        host: source.host,
        sizeGb: 2,
      });
      const lv = (await lvs()).find((l) => l.lv_name === `volume-${clone.id}`);
      expect(lv).toEqual({
        lv_name: `volume-${clone.id}`,
        origin: `volume-${source.id}`,
        lv_size: String(2 * 1024 ** 3),
      });
      // Overwriting the source afterwards leaves the clone's bytes alone.
      await guest(
        `dd if=/dev/zero of=/dev/${VG}/volume-${source.id} bs=1M count=4 oflag=direct conv=fsync status=none`,
      );
      const copied = await guest(
        `dd if=/dev/${VG}/volume-${clone.id} bs=1M count=4 iflag=direct status=none | sha256sum | cut -c1-16`,
      );
      expect(copied).toBe(pattern);
    });

    it("a failing LVM command leaves its reason on the snapshot", async () => {
      const project = uniqueName("proj-");
      const created = await api(project).createVolume("lvm-gone");
      const volume = await api(project).settledVolume(created.id);
      // The LV disappears behind the service's back (a real storage failure).
      await guest(`lvremove -q -y ${VG}/volume-${volume.id}`);
      const snapshot = await api(project).createSnapshot(volume.id);
      const settled = await api(project).settledSnapshot(snapshot.id);
      // The tenant reads what failed; the backend's words (names, pools) are for admins only.
      expect(settled).toMatchObject({
        status: SnapshotStatus.SNAPSHOT_STATUS_ERROR,
        statusReason: "the storage backend failed to create the snapshot",
        statusDetail: "",
      });
      expect((await api(project).snapshotAsAdmin(snapshot.id)).statusDetail).toBe(
        `volume volume-${volume.id} not found in volume group ${VG}`,
      );
      expect((await lvs()).some((l) => l.lv_name === `_snapshot-${snapshot.id}`)).toBe(false);
    });
  },
);
