import { randomUUID } from "node:crypto";
import { loadVolumeConfig } from "@cinderblock/config";
import { loadRbdNative } from "@cinderblock/rbd-native";
import { describe, expect, it } from "vitest";
import { DriverError, SnapshotBusyError } from "../driver.js";
import { createDriver } from "../registry.js";
import { CephError, Errno, toDriverError, tolerate } from "./ceph-error.js";
import type { RbdChild, RbdClient, RbdParent } from "./rbd-client.js";
import { createRbdDriver, type RbdDriver, type RbdDriverOptions } from "./rbd-driver.js";

// Unit tests on an in-memory cluster that answers with librbd's errnos. The same driver runs
// against a real Ceph cluster in rbd-driver.integration.test.ts.

const GIB = 1024 ** 3;

interface FakeImage {
  size: number;
  parent?: RbdParent;
  trash?: boolean;
  snaps: Map<string, { size: number; protected: boolean }>;
}

const fail = (errno: number, what: string) => new CephError(errno, `${what}: errno ${errno}`);

/** An in-memory pool with librbd's rules (v1 clones: a clone needs a protected snapshot). */
class FakeCluster implements RbdClient {
  readonly kind = "cli" as const;
  readonly images = new Map<string, FakeImage>();
  readonly calls: string[] = [];
  /** Injected failures: `op image` → errno. */
  readonly failures = new Map<string, number>();
  flattenDelayMs = 0;
  flattening = 0;
  maxFlattening = 0;
  df: () => Promise<unknown> = async () => ({
    stats: { total_bytes: 100 * GIB },
    pools: [{ name: "rbd", stats: { bytes_used: 10 * GIB, max_avail: 60 * GIB } }],
  });
  poolQuota: () => Promise<unknown> = async () => ({ quota_max_bytes: 0 });
  monDump: () => Promise<unknown> = async () => ({
    mons: [{ addr: "10.0.0.1:6789/0" }, { addr: "[fd00::2]:3300/0" }],
  });

  private check(op: string, image: string): void {
    this.calls.push(`${op} ${image}`);
    const errno = this.failures.get(`${op} ${image}`);
    if (errno !== undefined) throw fail(errno, `${op} ${image}`);
  }
  private image(name: string): FakeImage {
    const image = this.images.get(name);
    if (!image || image.trash) throw fail(Errno.ENOENT, name);
    return image;
  }
  private snap(name: string, snap: string) {
    const found = this.image(name).snaps.get(snap);
    if (!found) throw fail(Errno.ENOENT, `${name}@${snap}`);
    return found;
  }
  private children(name: string, snap: string): RbdChild[] {
    return [...this.images]
      .filter(([, i]) => i.parent?.image === name && i.parent.snapshot === snap)
      .map(([image, i]) => ({ pool: "rbd", namespace: "", image, trash: i.trash === true }));
  }

  async connect() {}
  async close() {}
  async createImage(name: string, size: number) {
    this.check("create", name);
    if (this.images.has(name)) throw fail(Errno.EEXIST, name);
    this.images.set(name, { size, snaps: new Map() });
  }
  async removeImage(name: string) {
    this.check("rm", name);
    if (this.image(name).snaps.size > 0) throw fail(Errno.ENOTEMPTY, name);
    this.images.delete(name);
  }
  async imageInfo(name: string) {
    this.check("info", name);
    const { size, parent } = this.image(name);
    return parent ? { size, parent } : { size };
  }
  async imageSizes(prefix: string) {
    return [...this.images]
      .filter(([n, i]) => n.startsWith(prefix) && !i.trash)
      .map(([name, i]) => ({ name, size: i.size }));
  }
  async listSnapshots(name: string) {
    this.check("snap ls", name);
    return [...this.image(name).snaps].map(([snap, s]) => ({ name: snap, ...s }));
  }
  async createSnapshot(name: string, snap: string) {
    this.check("snap create", name);
    const image = this.image(name);
    if (image.snaps.has(snap)) throw fail(Errno.EEXIST, snap);
    image.snaps.set(snap, { size: image.size, protected: false });
  }
  async protectSnapshot(name: string, snap: string) {
    this.check("snap protect", name);
    const s = this.snap(name, snap);
    if (s.protected) throw fail(Errno.EBUSY, snap);
    s.protected = true;
  }
  async createProtectedSnapshot(name: string, snap: string) {
    await tolerate(this.createSnapshot(name, snap), Errno.EEXIST);
    await tolerate(this.protectSnapshot(name, snap), Errno.EBUSY);
  }
  async unprotectSnapshot(name: string, snap: string) {
    this.check("snap unprotect", name);
    const s = this.snap(name, snap);
    if (!s.protected) throw fail(Errno.EINVAL, snap);
    if (this.children(name, snap).length > 0) throw fail(Errno.EBUSY, snap);
    s.protected = false;
  }
  async removeSnapshot(name: string, snap: string) {
    this.check("snap rm", name);
    if (this.snap(name, snap).protected) throw fail(Errno.EBUSY, snap);
    this.image(name).snaps.delete(snap);
  }
  async renameSnapshot(name: string, snap: string, to: string) {
    this.check("snap rename", name);
    const s = this.snap(name, snap);
    const image = this.image(name);
    if (image.snaps.has(to)) throw fail(Errno.EEXIST, to);
    image.snaps.delete(snap);
    image.snaps.set(to, s);
  }
  async rollbackSnapshot(name: string, snap: string) {
    this.check("snap rollback", name);
    this.image(name).size = this.snap(name, snap).size;
  }
  async listChildren(name: string, snap: string) {
    this.check("children", name);
    this.snap(name, snap);
    return this.children(name, snap);
  }
  async clone(parent: string, snap: string, child: string) {
    this.check("clone", child);
    const s = this.snap(parent, snap);
    if (!s.protected) throw fail(Errno.EINVAL, `${parent}@${snap} not protected`);
    if (this.images.has(child)) throw fail(Errno.EEXIST, child);
    this.images.set(child, {
      size: s.size,
      parent: { pool: "rbd", namespace: "", image: parent, snapshot: snap },
      snaps: new Map(),
    });
  }
  async flatten(target: { image: string }) {
    this.flattening += 1;
    this.maxFlattening = Math.max(this.maxFlattening, this.flattening);
    try {
      await new Promise((r) => setTimeout(r, this.flattenDelayMs));
      this.check("flatten", target.image);
      const image = this.image(target.image);
      if (!image.parent) throw fail(Errno.EINVAL, "no parent");
      delete image.parent;
    } finally {
      this.flattening -= 1;
    }
  }
  async resize(name: string, size: number) {
    this.check("resize", name);
    const image = this.image(name);
    if (size < image.size) throw fail(Errno.EINVAL, "shrink");
    image.size = size;
  }
}

const OPTIONS: RbdDriverOptions = {
  pool: "rbd",
  user: "admin",
  clusterName: "ceph",
  maxCloneDepth: 5,
  flattenVolumeFromSnapshot: false,
  flattenConcurrency: 2,
  connectTimeoutSeconds: 1,
  timeoutSeconds: 1,
  longTimeoutSeconds: 10,
  client: "cli",
  reservedPercentage: 0,
  maxOverSubscriptionRatio: 20,
  reportDynamicTotalCapacity: true,
};

function setup(options: Partial<RbdDriverOptions> = {}): { fake: FakeCluster; driver: RbdDriver } {
  const fake = new FakeCluster();
  return { fake, driver: createRbdDriver({ ...OPTIONS, ...options }, { client: fake }) };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail");
}

/** A volume with one protected snapshot; returns their ids. */
async function volumeWithSnapshot(driver: RbdDriver, sizeGb = 1) {
  const volumeId = randomUUID();
  const snapshotId = randomUUID();
  await driver.createVolume({ id: volumeId, sizeGb });
  await driver.createSnapshot({ id: snapshotId, volumeId, volumeSizeGb: sizeGb });
  return { volumeId, snapshotId, snapshot: { id: snapshotId, volumeId, volumeSizeGb: sizeGb } };
}

describe("rbd driver: names and ids", () => {
  it("keeps volume-<id> images and protected snapshot-<id> snapshots, lowercasing ids", async () => {
    const { fake, driver } = setup();
    const volumeId = randomUUID().toUpperCase();
    const snapshotId = randomUUID().toUpperCase();
    await driver.createVolume({ id: volumeId, sizeGb: 2 });
    expect(await driver.createSnapshot({ id: snapshotId, volumeId, volumeSizeGb: 2 })).toEqual({
      providerLocation: `rbd/volume-${volumeId.toLowerCase()}@snapshot-${snapshotId.toLowerCase()}`,
    });
    const image = fake.images.get(`volume-${volumeId.toLowerCase()}`);
    expect(image?.size).toBe(2 * GIB);
    expect(image?.snaps.get(`snapshot-${snapshotId.toLowerCase()}`)).toEqual({ size: 2 * GIB, protected: true });
  });

  it("refuses ids that are not UUIDs before anything reaches Ceph", async () => {
    const { fake, driver } = setup();
    for (const id of ["../x", "volume-1@snap", "", "a b"]) {
      const error = await rejection(driver.createVolume({ id, sizeGb: 1 }));
      expect(error).toBeInstanceOf(DriverError);
      expect((error as DriverError).retryable).toBe(false);
      const snapError = await rejection(driver.createSnapshot({ id, volumeId: randomUUID(), volumeSizeGb: 1 }));
      expect((snapError as DriverError).retryable).toBe(false);
    }
    expect(await rejection(driver.createVolume({ id: randomUUID(), sizeGb: 1.5 }))).toBeInstanceOf(DriverError);
    expect(fake.calls).toEqual([]);
  });
});

describe("rbd driver: volumes", () => {
  it("creates idempotently, and refuses an existing image of another size", async () => {
    const { fake, driver } = setup();
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 1 });
    await driver.createVolume({ id, sizeGb: 1 });
    expect(fake.images.size).toBe(1);
    const error = (await rejection(driver.createVolume({ id, sizeGb: 3 }))) as DriverError;
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/already exists with size 1073741824 bytes, not 3 GiB/);
  });

  it("deletes, and a missing image counts as deleted", async () => {
    const { fake, driver } = setup();
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 1 });
    await driver.deleteVolume({ id, sizeGb: 1 });
    await driver.deleteVolume({ id, sizeGb: 1 });
    expect(fake.images.size).toBe(0);
  });

  it("flattens the clones of a deleted volume's leftover snapshots, so they keep their data", async () => {
    const { fake, driver } = setup();
    const { volumeId, snapshot } = await volumeWithSnapshot(driver);
    const cloneId = randomUUID();
    await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 1 }, snapshot);
    await driver.deleteVolume({ id: volumeId, sizeGb: 1 });
    expect(fake.images.has(`volume-${volumeId}`)).toBe(false);
    expect(fake.images.get(`volume-${cloneId}`)?.parent).toBeUndefined();
  });

  it("extends, never shrinks, and a retry is a no-op", async () => {
    const { fake, driver } = setup();
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 1 });
    await driver.extendVolume({ id, sizeGb: 1 }, 4);
    await driver.extendVolume({ id, sizeGb: 1 }, 4);
    await driver.extendVolume({ id, sizeGb: 4 }, 2);
    expect(fake.images.get(`volume-${id}`)?.size).toBe(4 * GIB);
    expect(fake.calls.filter((c) => c.startsWith("resize"))).toHaveLength(1);
    const missing = (await rejection(driver.extendVolume({ id: randomUUID(), sizeGb: 1 }, 2))) as DriverError;
    expect(missing.retryable).toBe(false);
  });
});

describe("rbd driver: snapshots", () => {
  it("snapshots idempotently and fails terminally when the volume image is missing", async () => {
    const { fake, driver } = setup();
    const { snapshot } = await volumeWithSnapshot(driver);
    await driver.createSnapshot(snapshot);
    expect(fake.images.get(`volume-${snapshot.volumeId}`)?.snaps.size).toBe(1);
    const error = (await rejection(
      driver.createSnapshot({ id: randomUUID(), volumeId: randomUUID(), volumeSizeGb: 1 }),
    )) as DriverError;
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/not found/);
  });

  it("maps a timeout to a retryable error", async () => {
    const { fake, driver } = setup();
    const volumeId = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    fake.failures.set(`snap create volume-${volumeId}`, Errno.ETIMEDOUT);
    const error = (await rejection(
      driver.createSnapshot({ id: randomUUID(), volumeId, volumeSizeGb: 1 }),
    )) as DriverError;
    expect(error).toBeInstanceOf(DriverError);
    expect(error.retryable).toBe(true);
  });

  it("deletes a snapshot (unprotect + remove); a missing one counts as deleted", async () => {
    const { fake, driver } = setup();
    const { volumeId, snapshot } = await volumeWithSnapshot(driver);
    await driver.deleteSnapshot(snapshot);
    await driver.deleteSnapshot(snapshot);
    await driver.deleteSnapshot({ ...snapshot, volumeId: randomUUID() });
    expect(fake.images.get(`volume-${volumeId}`)?.snaps.size).toBe(0);
  });

  it("flattens the snapshot's clones, a bounded number at a time, then deletes it", async () => {
    const { fake, driver } = setup({ flattenConcurrency: 2 });
    const { volumeId, snapshot } = await volumeWithSnapshot(driver);
    const clones = Array.from({ length: 5 }, () => randomUUID());
    for (const id of clones) await driver.createVolumeFromSnapshot({ id, sizeGb: 1 }, snapshot);
    fake.flattenDelayMs = 20;
    await driver.deleteSnapshot(snapshot);
    expect(fake.maxFlattening).toBe(2);
    expect(fake.images.get(`volume-${volumeId}`)?.snaps.size).toBe(0);
    for (const id of clones) expect(fake.images.get(`volume-${id}`)?.parent).toBeUndefined();
  });

  it("reports busy when a clone cannot be flattened, and keeps the snapshot protected", async () => {
    const { fake, driver } = setup();
    const { volumeId, snapshot } = await volumeWithSnapshot(driver);
    const cloneId = randomUUID();
    await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 1 }, snapshot);
    fake.failures.set(`flatten volume-${cloneId}`, Errno.EIO);
    const error = await rejection(driver.deleteSnapshot(snapshot));
    expect(error).toBeInstanceOf(SnapshotBusyError);
    expect((error as Error).message).toMatch(new RegExp(`still in use by 1 clone\\(s\\): rbd/volume-${cloneId}`));
    expect((error as Error).message).toMatch(/flattening failed/);
    expect(fake.images.get(`volume-${volumeId}`)?.snaps.get(`snapshot-${snapshot.id}`)?.protected).toBe(true);
  });

  it("reports busy for a clone in the trash, which cannot be flattened by name", async () => {
    const { fake, driver } = setup();
    const { snapshot } = await volumeWithSnapshot(driver);
    const cloneId = randomUUID();
    await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 1 }, snapshot);
    const clone = fake.images.get(`volume-${cloneId}`);
    if (clone) clone.trash = true;
    const error = await rejection(driver.deleteSnapshot(snapshot));
    expect(error).toBeInstanceOf(SnapshotBusyError);
    expect((error as Error).message).toMatch(/\(in trash\)/);
    expect(fake.calls.some((c) => c.startsWith("flatten"))).toBe(false);
  });

  it("reverts with a rollback and keeps the volume's own size", async () => {
    const { fake, driver } = setup();
    const { volumeId, snapshot } = await volumeWithSnapshot(driver);
    await driver.extendVolume({ id: volumeId, sizeGb: 1 }, 3);
    await driver.revertToSnapshot({ id: volumeId, sizeGb: 3 }, snapshot);
    expect(fake.calls).toContain(`snap rollback volume-${volumeId}`);
    expect(fake.images.get(`volume-${volumeId}`)?.size).toBe(3 * GIB);
    const foreign = (await rejection(
      driver.revertToSnapshot({ id: randomUUID(), sizeGb: 1 }, snapshot),
    )) as DriverError;
    expect(foreign.retryable).toBe(false);
  });
});

describe("rbd driver: volumes from snapshots", () => {
  it("clones copy-on-write and grows the clone to the size asked for", async () => {
    const { fake, driver } = setup();
    const { volumeId, snapshot } = await volumeWithSnapshot(driver);
    const cloneId = randomUUID();
    await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 3 }, snapshot);
    const clone = fake.images.get(`volume-${cloneId}`);
    expect(clone?.size).toBe(3 * GIB);
    expect(clone?.parent).toEqual({
      pool: "rbd",
      namespace: "",
      image: `volume-${volumeId}`,
      snapshot: `snapshot-${snapshot.id}`,
    });
  });

  it("flattens once the chain would pass maxCloneDepth", async () => {
    const { fake, driver } = setup({ maxCloneDepth: 2 });
    let { volumeId, snapshot } = await volumeWithSnapshot(driver);
    const parents: Array<boolean> = [];
    for (let depth = 1; depth <= 3; depth++) {
      const cloneId = randomUUID();
      await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 1 }, snapshot);
      parents.push(fake.images.get(`volume-${cloneId}`)?.parent !== undefined);
      volumeId = cloneId;
      snapshot = { id: randomUUID(), volumeId, volumeSizeGb: 1 };
      await driver.createSnapshot(snapshot);
    }
    // Depth 1 and 2 stay clones; depth 3 > 2 is flattened.
    expect(parents).toEqual([true, true, false]);
  });

  it("flattens every clone when configured, or when maxCloneDepth is 0", async () => {
    for (const options of [{ flattenVolumeFromSnapshot: true }, { maxCloneDepth: 0 }]) {
      const { fake, driver } = setup(options);
      const { snapshot } = await volumeWithSnapshot(driver);
      const cloneId = randomUUID();
      await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 1 }, snapshot);
      expect(fake.images.get(`volume-${cloneId}`)?.parent).toBeUndefined();
    }
  });

  it("finishes an interrupted clone on retry (resize and flatten not yet done)", async () => {
    const { fake, driver } = setup({ flattenVolumeFromSnapshot: true });
    const { snapshot } = await volumeWithSnapshot(driver);
    const cloneId = randomUUID();
    fake.failures.set(`resize volume-${cloneId}`, Errno.ETIMEDOUT);
    const first = (await rejection(
      driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 2 }, snapshot),
    )) as DriverError;
    expect(first.retryable).toBe(true);
    fake.failures.clear();
    await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 2 }, snapshot);
    await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 2 }, snapshot);
    const clone = fake.images.get(`volume-${cloneId}`);
    expect(clone?.size).toBe(2 * GIB);
    expect(clone?.parent).toBeUndefined();
  });

  it("fails terminally for a missing snapshot or a clone of something else", async () => {
    const { driver } = setup();
    const { snapshot } = await volumeWithSnapshot(driver);
    const missing = (await rejection(
      driver.createVolumeFromSnapshot({ id: randomUUID(), sizeGb: 1 }, { ...snapshot, id: randomUUID() }),
    )) as DriverError;
    expect(missing.retryable).toBe(false);
    expect(missing.message).toMatch(/not found/);
    const other = await volumeWithSnapshot(driver);
    const cloneId = randomUUID();
    await driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 1 }, other.snapshot);
    const clash = (await rejection(
      driver.createVolumeFromSnapshot({ id: cloneId, sizeGb: 1 }, snapshot),
    )) as DriverError;
    expect(clash.retryable).toBe(false);
    expect(clash.message).toMatch(/already exists as a clone of/);
  });
});

describe("rbd driver: clones of volumes", () => {
  it("clones through a temporary protected snapshot, flattens, removes the snapshot and grows the clone", async () => {
    const { fake, driver } = setup();
    const { volumeId, snapshotId } = await volumeWithSnapshot(driver, 2);
    const cloneId = randomUUID();
    await driver.createClonedVolume({ id: cloneId, sizeGb: 3 }, { id: volumeId, sizeGb: 2 });

    const temp = `clone-snap-${cloneId}`;
    expect(fake.calls).toEqual(
      expect.arrayContaining([
        `snap create volume-${volumeId}`,
        `snap protect volume-${volumeId}`,
        `clone volume-${cloneId}`,
        `resize volume-${cloneId}`,
        `flatten volume-${cloneId}`,
        `snap unprotect volume-${volumeId}`,
        `snap rm volume-${volumeId}`,
      ]),
    );
    expect(fake.calls.indexOf(`flatten volume-${cloneId}`)).toBeLessThan(
      fake.calls.indexOf(`snap rm volume-${volumeId}`),
    );
    const clone = fake.images.get(`volume-${cloneId}`);
    expect(clone?.size).toBe(3 * GIB);
    expect(clone?.parent).toBeUndefined();
    // The source keeps only the snapshots rows own: the temporary one is gone.
    expect([...(fake.images.get(`volume-${volumeId}`)?.snaps.keys() ?? [])]).toEqual([`snapshot-${snapshotId}`]);
    expect(fake.images.get(`volume-${volumeId}`)?.snaps.has(temp)).toBe(false);
  });

  it("finishes an interrupted clone on retry, and a retry after success changes nothing", async () => {
    const { fake, driver } = setup();
    const volumeId = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 1 });
    const cloneId = randomUUID();
    fake.failures.set(`flatten volume-${cloneId}`, Errno.ETIMEDOUT);
    const first = (await rejection(
      driver.createClonedVolume({ id: cloneId, sizeGb: 1 }, { id: volumeId, sizeGb: 1 }),
    )) as DriverError;
    expect(first.retryable).toBe(true);
    // Listing manageable snapshots never offers the temporary one.
    expect(await driver.listManageableSnapshots(new Set())).toEqual([]);
    fake.failures.clear();
    await driver.createClonedVolume({ id: cloneId, sizeGb: 1 }, { id: volumeId, sizeGb: 1 });
    await driver.createClonedVolume({ id: cloneId, sizeGb: 1 }, { id: volumeId, sizeGb: 1 });
    expect(fake.images.get(`volume-${cloneId}`)?.parent).toBeUndefined();
    expect(fake.images.get(`volume-${volumeId}`)?.snaps.size).toBe(0);
  });

  it("fails terminally for a missing source, and refuses a clone smaller than the source image", async () => {
    const { driver } = setup();
    const missing = (await rejection(
      driver.createClonedVolume({ id: randomUUID(), sizeGb: 1 }, { id: randomUUID(), sizeGb: 1 }),
    )) as DriverError;
    expect(missing.retryable).toBe(false);
    expect(missing.message).toMatch(/source volume image volume-.* not found in pool rbd/);
    const volumeId = randomUUID();
    await driver.createVolume({ id: volumeId, sizeGb: 2 });
    const small = (await rejection(
      driver.createClonedVolume({ id: randomUUID(), sizeGb: 1 }, { id: volumeId, sizeGb: 2 }),
    )) as DriverError;
    expect(small.retryable).toBe(false);
    expect(small.message).toMatch(/more than the 1 GiB asked for/);
  });
});

describe("rbd driver: manage and unmanage", () => {
  it("lists snapshots no row owns, renames one to our name and protects it", async () => {
    const { fake, driver } = setup();
    const { volumeId, snapshotId } = await volumeWithSnapshot(driver, 2);
    await fake.createSnapshot(`volume-${volumeId}`, "nightly-1");
    fake.images.set("other-image", { size: GIB, snaps: new Map([["x", { size: GIB, protected: false }]]) });

    const manageable = await driver.listManageableSnapshots(new Set([snapshotId.toUpperCase()]));
    expect(manageable).toEqual([{ reference: "nightly-1", sourceVolumeId: volumeId, sizeGb: 2, safeToManage: true }]);

    const id = randomUUID();
    const snapshot = { id, volumeId, volumeSizeGb: 2 };
    expect(await driver.manageExistingSnapshot(snapshot, "nightly-1")).toEqual({ sizeGb: 2 });
    expect(await driver.manageExistingSnapshot(snapshot, "nightly-1")).toEqual({ sizeGb: 2 });
    const snaps = fake.images.get(`volume-${volumeId}`)?.snaps;
    expect(snaps?.get(`snapshot-${id}`)).toEqual({ size: 2 * GIB, protected: true });
    expect(snaps?.has("nightly-1")).toBe(false);
  });

  it("refuses references that are missing, malformed or on another image", async () => {
    const { driver } = setup();
    const { volumeId } = await volumeWithSnapshot(driver);
    const snapshot = { id: randomUUID(), volumeId, volumeSizeGb: 1 };
    for (const reference of ["nope", "a/b", "", `volume-${randomUUID()}@x`]) {
      const error = (await rejection(driver.manageExistingSnapshot(snapshot, reference))) as DriverError;
      expect(error).toBeInstanceOf(DriverError);
      expect(error.retryable).toBe(false);
    }
  });

  it("unmanages by unprotecting when no clone needs it; the snapshot stays", async () => {
    const { fake, driver } = setup();
    const { volumeId, snapshot } = await volumeWithSnapshot(driver);
    await driver.unmanageSnapshot(snapshot);
    expect(fake.images.get(`volume-${volumeId}`)?.snaps.get(`snapshot-${snapshot.id}`)?.protected).toBe(false);

    const other = await volumeWithSnapshot(driver);
    await driver.createVolumeFromSnapshot({ id: randomUUID(), sizeGb: 1 }, other.snapshot);
    await driver.unmanageSnapshot(other.snapshot);
    expect(fake.images.get(`volume-${other.volumeId}`)?.snaps.get(`snapshot-${other.snapshotId}`)?.protected).toBe(
      true,
    );
  });
});

describe("rbd driver: connections", () => {
  it("tells an attaching host the image and the monitors, as Cinder's connection_info", async () => {
    const secretUuid = randomUUID();
    const { driver } = setup({ secretUuid });
    const id = randomUUID();
    await driver.createVolume({ id, sizeGb: 1 });
    expect(await driver.initializeConnection({ id, sizeGb: 1 }, { host: "compute1" })).toEqual({
      driverVolumeType: "rbd",
      data: {
        name: `rbd/volume-${id}`,
        hosts: "10.0.0.1,fd00::2",
        ports: "6789,3300",
        cluster_name: "ceph",
        auth_enabled: "true",
        auth_username: "admin",
        secret_type: "ceph",
        secret_uuid: secretUuid,
        volume_id: id,
        discard: "true",
      },
    });
    await driver.terminateConnection({ id, sizeGb: 1 }, { host: "compute1" });
    const missing = (await rejection(driver.initializeConnection({ id: randomUUID(), sizeGb: 1 }, {}))) as DriverError;
    expect(missing.retryable).toBe(false);
    expect(missing.message).toMatch(/not found in pool rbd/);
  });
});

describe("rbd driver: stats", () => {
  it("reports Cinder's capacity: dynamic total, provisioned = sum of volume sizes", async () => {
    const { driver } = setup();
    await driver.createVolume({ id: randomUUID(), sizeGb: 3 });
    await driver.createVolume({ id: randomUUID(), sizeGb: 2 });
    expect(await driver.getStats()).toEqual({
      driver: "rbd",
      // Its pool is the Ceph pool.
      poolName: "rbd",
      storageProtocol: "ceph",
      multiattach: true,
      thinProvisioning: true,
      maxOverSubscriptionRatio: 20,
      reservedPercentage: 0,
      totalCapacityGb: 70,
      freeCapacityGb: 60,
      provisionedCapacityGb: 5,
      totalVolumes: 2,
      backendState: "up",
    });
  });

  it("uses the pool quota when one is set, and the cluster size when not dynamic", async () => {
    const quota = setup({ reportDynamicTotalCapacity: false });
    quota.fake.poolQuota = async () => ({ quota_max_bytes: 25 * GIB });
    expect(await quota.driver.getStats()).toMatchObject({ totalCapacityGb: 25, freeCapacityGb: 15 });
    const plain = setup({ reportDynamicTotalCapacity: false });
    expect(await plain.driver.getStats()).toMatchObject({ totalCapacityGb: 100, freeCapacityGb: 60 });
  });

  it("is down when the cluster fails or does not answer in time", async () => {
    const failing = setup();
    failing.fake.df = async () => {
      throw new CephError(Errno.ETIMEDOUT, "df timed out");
    };
    expect(await failing.driver.getStats()).toMatchObject({ backendState: "down", totalCapacityGb: 0 });
    const silent = setup({ timeoutSeconds: 1 });
    silent.fake.df = () => new Promise(() => {});
    const started = performance.now();
    expect(await silent.driver.getStats()).toMatchObject({ backendState: "down" });
    expect(performance.now() - started).toBeLessThan(3000);
  });
});

describe("rbd driver: errors and clients", () => {
  it("tells retryable errnos from terminal ones", () => {
    const retryable = (errno: number) => toDriverError(new CephError(errno, "x"), "doing").retryable;
    for (const errno of [Errno.ETIMEDOUT, Errno.ESHUTDOWN, Errno.EBUSY, Errno.EAGAIN, Errno.ECONNREFUSED]) {
      expect(retryable(errno)).toBe(true);
    }
    for (const errno of [Errno.ENOENT, Errno.EEXIST, Errno.EINVAL, Errno.EACCES, Errno.ENOSPC, Errno.EDQUOT]) {
      expect(retryable(errno)).toBe(false);
    }
  });

  it("starts even when the cluster is down for now, but not when the pool or keys are wrong", async () => {
    const down = setup();
    down.fake.connect = async () => {
      throw new CephError(Errno.ETIMEDOUT, "connect timed out");
    };
    await down.driver.initialize();
    const wrong = setup();
    wrong.fake.connect = async () => {
      throw new CephError(Errno.ENOENT, "rados_ioctx_create: no such pool");
    };
    const error = (await rejection(wrong.driver.initialize())) as DriverError;
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/cannot reach pool rbd/);
  });

  it("uses librbd under `auto` when the addon loads, and says why it fell back otherwise", () => {
    const native = loadRbdNative();
    const driver = createRbdDriver({ ...OPTIONS, client: "auto" });
    if (native.binding) {
      expect(driver.client).toBe("librbd");
      expect(driver.fallbackReason).toBeUndefined();
    } else {
      expect(driver.client).toBe("cli");
      expect(driver.fallbackReason).toMatch(/not built|cannot be loaded/);
      expect(() => createRbdDriver({ ...OPTIONS, client: "librbd" })).toThrow(DriverError);
    }
    expect(createRbdDriver({ ...OPTIONS, client: "cli" }).client).toBe("cli");
  });
});

describe("rbd driver: options (CINDERBLOCK_DRIVER_OPTIONS)", () => {
  const config = (options: unknown) =>
    loadVolumeConfig({ CINDERBLOCK_VOLUME_DRIVER: "rbd", CINDERBLOCK_DRIVER_OPTIONS: JSON.stringify(options) });

  it("builds an rbd driver from defaults and Cinder-like options", () => {
    const driver = createDriver(config({ pool: "volumes", user: "cinder", client: "cli", maxCloneDepth: 0 }));
    expect((driver as RbdDriver).client).toBe("cli");
  });

  it("names every bad option", () => {
    expect(() => createDriver(config({ pool: "a/b", maxCloneDepth: -1, colour: "red" }))).toThrow(
      /CINDERBLOCK_DRIVER_OPTIONS\.pool: .*\n.*CINDERBLOCK_DRIVER_OPTIONS\.maxCloneDepth: .*\n.*colour/s,
    );
  });
});

/** A cluster whose images hold bytes: sparse (only written extents are allocated), as librbd. */
class FakeDataCluster extends FakeCluster {
  readonly data = new Map<string, Map<number, Uint8Array>>();
  readonly writes: Array<Array<{ offset: number; length: number }>> = [];
  readonly reads: Array<{ offset: number; length: number }> = [];
  shortRead = false;
  failWrite: CephError | undefined;
  async allocatedExtents(image: string) {
    await this.imageInfo(image);
    return [...(this.data.get(image) ?? new Map<number, Uint8Array>())]
      .sort(([a], [b]) => a - b)
      .map(([offset, bytes]) => ({ offset, length: bytes.byteLength }));
  }
  async readImage(image: string, offset: number, length: number) {
    this.reads.push({ offset, length });
    const out = new Uint8Array(this.shortRead ? length - 1 : length);
    for (const [at, bytes] of this.data.get(image) ?? []) {
      for (let i = 0; i < bytes.byteLength; i++) {
        const p = at + i - offset;
        if (p >= 0 && p < out.byteLength) out[p] = bytes[i] ?? 0;
      }
    }
    return out;
  }
  async writeImage(image: string, pieces: ReadonlyArray<{ offset: number; data: Uint8Array }>) {
    await this.imageInfo(image);
    if (this.failWrite) throw this.failWrite;
    this.writes.push(pieces.map((p) => ({ offset: p.offset, length: p.data.byteLength })));
    const stored = this.data.get(image) ?? new Map<number, Uint8Array>();
    for (const p of pieces) stored.set(p.offset, Uint8Array.from(p.data));
    this.data.set(image, stored);
  }
}

/** The driver's copy methods, which a test expects to be there. */
function reader(driver: RbdDriver): NonNullable<RbdDriver["readVolume"]> {
  if (!driver.readVolume) throw new Error("the driver offers no readVolume");
  return driver.readVolume.bind(driver);
}
function writer(driver: RbdDriver): NonNullable<RbdDriver["writeVolume"]> {
  if (!driver.writeVolume) throw new Error("the driver offers no writeVolume");
  return driver.writeVolume.bind(driver);
}

describe("rbd driver: migration by copy (readVolume/writeVolume)", () => {
  const MIB = 1024 * 1024;
  const volume = { id: randomUUID(), sizeGb: 1 };
  const image = `volume-${volume.id}`;
  const setupData = () => {
    const fake = new FakeDataCluster();
    return { fake, driver: createRbdDriver(OPTIONS, { client: fake }) };
  };
  async function collect(chunks: AsyncIterable<{ offset: number; data: Uint8Array }>) {
    const out: Array<{ offset: number; data: Uint8Array }> = [];
    for await (const chunk of chunks) out.push(chunk);
    return out;
  }
  async function* from(chunks: Array<{ offset: number; data: Uint8Array }>) {
    yield* chunks;
  }

  it("is offered only by a client that can move bytes (not by the CLI client)", () => {
    const { driver } = setup();
    expect(driver.readVolume).toBeUndefined();
    expect(driver.writeVolume).toBeUndefined();
    const { driver: withData } = setupData();
    expect(withData.readVolume).toBeTypeOf("function");
    expect(withData.writeVolume).toBeTypeOf("function");
  });

  it("reads only the chunks that hold allocated extents, the last MiB included", async () => {
    const { fake, driver } = setupData();
    await driver.createVolume(volume);
    // 10 bytes straddling the boundary of chunks 2 and 3, and the volume's last byte.
    fake.data.set(
      image,
      new Map([
        [3 * MIB - 5, new Uint8Array(10).fill(7)],
        [GIB - 1, new Uint8Array([9])],
      ]),
    );
    const chunks = await collect(reader(driver)(volume, MIB));
    expect(chunks.map((c) => [c.offset / MIB, c.data.byteLength])).toEqual([
      [2, MIB],
      [3, MIB],
      [1023, MIB],
    ]);
    expect(chunks[2]?.data[MIB - 1]).toBe(9);
    expect(fake.reads).toHaveLength(3);
  });

  it("leaves out chunks of an allocated extent that read as zeros", async () => {
    const { fake, driver } = setupData();
    await driver.createVolume(volume);
    // librbd may report a whole object where only part of it was written.
    fake.data.set(image, new Map([[0, new Uint8Array(4 * MIB)]]));
    fake.data
      .get(image)
      ?.get(0)
      ?.fill(1, 3 * MIB, 3 * MIB + 1);
    const chunks = await collect(reader(driver)(volume, MIB));
    expect(chunks.map((c) => c.offset / MIB)).toEqual([3]);
    expect(fake.reads).toHaveLength(4);
  });

  it("writes the chunks in batches of up to 8 MiB and ships nothing for the gaps", async () => {
    const { fake, driver } = setupData();
    await driver.createVolume(volume);
    const chunks = Array.from({ length: 10 }, (_, i) => ({
      offset: i * 2 * MIB,
      data: new Uint8Array(MIB).fill(i + 1),
    }));
    await writer(driver)(volume, from(chunks));
    expect(fake.writes.map((batch) => batch.length)).toEqual([8, 2]);
    expect(fake.writes.flat().reduce((sum, w) => sum + w.length, 0)).toBe(10 * MIB);
  });

  it("refuses a chunk outside the volume or out of order, before writing it", async () => {
    const { fake, driver } = setupData();
    await driver.createVolume(volume);
    const outside = await rejection(writer(driver)(volume, from([{ offset: GIB - 1, data: new Uint8Array(2) }])));
    expect(outside).toBeInstanceOf(DriverError);
    expect((outside as DriverError).retryable).toBe(false);
    expect((outside as DriverError).message).toMatch(/outside|inside the volume/);
    const backwards = await rejection(
      writer(driver)(
        volume,
        from([
          { offset: 4 * MIB, data: new Uint8Array(MIB).fill(1) },
          { offset: 0, data: new Uint8Array(MIB).fill(1) },
        ]),
      ),
    );
    expect((backwards as DriverError).message).toMatch(/in order/);
    expect(fake.writes).toEqual([]);
  });

  it("turns a short read, a failed write and a missing image into DriverErrors", async () => {
    const { fake, driver } = setupData();
    await driver.createVolume(volume);
    fake.data.set(image, new Map([[0, new Uint8Array(1).fill(1)]]));
    fake.shortRead = true;
    const short = await rejection(collect(reader(driver)(volume, MIB)));
    expect(short).toBeInstanceOf(DriverError);
    expect((short as DriverError).message).toMatch(/returned 1048575 of 1048576 bytes/);

    fake.failWrite = new CephError(Errno.ETIMEDOUT, "rbd_write2: timed out");
    const write = await rejection(writer(driver)(volume, from([{ offset: 0, data: new Uint8Array(MIB) }])));
    expect(write).toBeInstanceOf(DriverError);
    expect((write as DriverError).retryable).toBe(true);
    expect((write as DriverError).message).toMatch(/cannot write volume-.* at 0/);

    const missing = { id: randomUUID(), sizeGb: 1 };
    const gone = await rejection(collect(reader(driver)(missing, MIB)));
    expect((gone as DriverError).kind).toBe("not_found");
  });
});
