import { basename } from "node:path";
import * as proto from "@cinderblock/proto";
import {
  call,
  checkInvariants,
  createBackendType,
  createSettledVolume,
  identity,
  type Stack,
  startStack,
  uniqueName,
} from "@cinderblock/testing";
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Several volume hosts at once (issue 15), each its own process with its own file backend:
//   vol1@file-a in az1; vol2@file-b in az2;
//   vol3@file-c in az1, the roomiest (over-subscription 1000: the capacity weigher picks it first),
//     whose driver fails every create (the file driver's test-only `testFailCreate`);
//   vol4@file-d in az3, full (reservedPercentage 100: less than 1 GiB is available to the scheduler).
// Zones and types pick the backend; a failed create is retried on another backend of its zone;
// a full backend is skipped with its reason; every volume ends available or error.

let stack: Stack;
let types: proto.VolumeTypesServiceClient;
const project = uniqueName("mb-");
// Admins read a volume's host and status_detail; their volumes are the project's like anyone's.
const admin = identity(project, "root", "admin");

const backendType = (backend: string) => createBackendType(types, admin, backend);

const volumeIn = (availabilityZone: string, volumeType = "") =>
  createSettledVolume(stack.volumes, admin, { availabilityZone, volumeType }, { timeoutMs: 60_000 });

beforeAll(async () => {
  stack = await startStack({
    env: { CINDERBLOCK_REPORT_INTERVAL: "2" },
    serviceEnv: { volume: { CINDERBLOCK_BACKEND_NAME: "file-a", CINDERBLOCK_AVAILABILITY_ZONE: "az1" } },
    volumeHosts: [
      { host: "vol2", backend: "file-b", availabilityZone: "az2" },
      {
        host: "vol3",
        backend: "file-c",
        availabilityZone: "az1",
        env: { CINDERBLOCK_DRIVER_OPTIONS: JSON.stringify({ testFailCreate: true, maxOverSubscriptionRatio: 1000 }) },
      },
      {
        host: "vol4",
        backend: "file-d",
        availabilityZone: "az3",
        // NOTE: Cinder reserves floor(total × 100%): the fraction of a GiB left, without over-subscription.
        env: { CINDERBLOCK_DRIVER_OPTIONS: JSON.stringify({ reservedPercentage: 100, maxOverSubscriptionRatio: 1 }) },
      },
    ],
  });
  types = new proto.VolumeTypesServiceClient(stack.address, credentials.createInsecure());
}, 120_000);

afterAll(async () => {
  types?.close();
  await stack?.stop();
});

/** Log lines of a process whose msg is `msg` and whose volume_id is `volumeId`. */
const logged = (lines: readonly string[], msg: string, volumeId: string) =>
  lines
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    })
    .filter((l) => l?.msg === msg && l.volume_id === volumeId);

const HANDED_BACK = "volume create failed on this backend; handed back to the scheduler to retry on another";
const RETRYING = "volume create failed on its backend; scheduling it again";

describe("several volume hosts", () => {
  it("places a volume in az2 on the az2 host", async () => {
    const volume = await volumeIn("az2");
    expect(volume).toMatchObject({
      status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE,
      host: "vol2@file-b",
      // Its pool: the file backend's directory, as Cinder's `vol2@file-b#<dir>`.
      pool: basename(stack.volumeHosts.get("vol2")?.dataDir ?? "?"),
    });
  });

  it("places a volume of a type with volume_backend_name on that backend, never trying another", async () => {
    const volume = await volumeIn("az1", await backendType("file-a"));
    expect(volume).toMatchObject({ status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE, host: "vol1@file-a" });
    const vol3 = stack.volumeHosts.get("vol3");
    expect(logged(vol3?.process.lines ?? [], HANDED_BACK, volume.id)).toEqual([]);
  });

  it("retries a create the roomiest backend failed on the other backend of the zone", async () => {
    const volume = await volumeIn("az1");
    expect(volume).toMatchObject({ status: proto.VolumeStatus.VOLUME_STATUS_AVAILABLE, host: "vol1@file-a" });
    // The failing host was tried first, said why, and handed the volume back; the scheduler logged the retry.
    const vol3 = stack.volumeHosts.get("vol3");
    const [handedBack] = logged(vol3?.process.lines ?? [], HANDED_BACK, volume.id);
    expect(handedBack).toMatchObject({ host: "vol3@file-c", attempt: 1, reason: expect.any(String) });
    expect(String(handedBack?.detail)).toContain("failure injected");
    const [retry] = logged(stack.scheduler.lines, RETRYING, volume.id);
    expect(retry).toMatchObject({ attempt: 2, last_host: "vol3@file-c" });
    expect(String(retry?.error)).toContain("failure injected");
  });

  it("fails a create no other backend can take, the detail naming the failed attempt and each pool", async () => {
    const volume = await volumeIn("az1", await backendType("file-c"));
    expect(volume).toMatchObject({
      status: proto.VolumeStatus.VOLUME_STATUS_ERROR,
      statusReason: "no valid backend was found",
    });
    expect(volume.statusDetail).toMatch(
      /^no valid backend was found: attempt 1 on vol3@file-c failed: .*failure injected/,
    );
    expect(volume.statusDetail).toContain("vol3@file-c#");
    expect(volume.statusDetail).toContain("already tried for this volume");
    expect(volume.statusDetail).toMatch(/vol1@file-a#\S+: reports volume_backend_name="file-a"/);
    // Tenants read the reason, never the backends.
    const member = identity(project);
    const seen = await call<proto.GetVolumeResponse>((done) =>
      stack.volumes.getVolume({ id: volume.id }, member, done),
    );
    expect(seen.volume).toMatchObject({ statusReason: "no valid backend was found", statusDetail: "" });
  });

  it("skips a full backend, its reason in the admin's detail when nothing else fits", async () => {
    const volume = await volumeIn("az3");
    expect(volume).toMatchObject({
      status: proto.VolumeStatus.VOLUME_STATUS_ERROR,
      statusReason: "no valid backend was found",
    });
    expect(volume.statusDetail).toMatch(/vol4@file-d#\S+: (would pass its over-subscription ratio|has .* free)/);
    // The other zones' backends are named too, each with its zone.
    expect(volume.statusDetail).toContain("in availability zone az1, not az3");
  });

  it("leaves nothing creating, no operation pending and the quota exact", async () => {
    const report = await checkInvariants({
      databaseUrl: stack.database.url,
      dataDir: stack.dataDir,
      projects: [project],
    });
    expect({
      transitional: report.transitional,
      pendingOperations: report.pendingOperations,
      quota: report.quota,
    }).toEqual({ transitional: [], pendingOperations: [], quota: [] });
  });
});
