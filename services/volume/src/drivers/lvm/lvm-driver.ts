import { checkId, downStats, toGb } from "../checks.js";
import {
  type BackendStats,
  DriverError,
  type DriverSnapshot,
  type DriverVolume,
  type ManageableSnapshot,
  SnapshotBusyError,
  type SnapshotModelUpdate,
  type VolumeChunk,
  type VolumeDriver,
} from "../driver.js";
import type { CommandRunner } from "./command-runner.js";
import { classify, createLvm, GIB, gib, isLvName, isVgName, type LogicalVolume, type LvmFailure } from "./lvm.js";
import { readBlocks, writeBlocks } from "./volume-copy.js";

/** Configuration of the `lvm` driver (Cinder's `LVMVolumeDriver` options). */
export interface LvmDriverOptions {
  /** Runs the LVM commands: on this host, or in the test guest. */
  runner: CommandRunner;
  /** The volume group holding every volume and snapshot (Cinder's `volume_group`). */
  volumeGroup: string;
  /** `thick`: plain LVs, copy-on-write snapshots. `thin`: LVs in a thin pool, thin snapshots. Defaults to thick. */
  lvmType?: "thin" | "thick";
  /** The thin pool (created by `initialize()` from all free space when missing). Defaults to `<volumeGroup>-pool`. */
  thinPool?: string;
  /** How far thin provisioned space may exceed the pool's size. Defaults to 20, as in Cinder. */
  maxOverSubscriptionRatio?: number;
  /** Share of capacity the scheduler must keep free, 0-100. Defaults to 0. */
  reservedPercentage?: number;
  /**
   * What to do with a thick LV's blocks before removing it (Cinder's `volume_clear`): `zero`
   * (default) overwrites them so the next LV placed there cannot read them; `none` leaves them.
   * Thin LVs never need it: a thin volume reads zeros wherever it has not written.
   */
  volumeClear?: "zero" | "none";
  /** Deadline of an ordinary command. Defaults to 120 s. */
  commandTimeoutMs?: number;
  /** Deadline of a command that moves data (block copy, clearing, merge). Defaults to 1 h. */
  copyTimeoutMs?: number;
}

const UUID_PART = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const VOLUME_LV = new RegExp(`^volume-(${UUID_PART})$`);
const SNAPSHOT_LV = new RegExp(`^_snapshot-(${UUID_PART})$`);
const MIB = 1024 ** 2;

// Cinder's names: a volume is `volume-<id>`, a snapshot `snapshot-<id>`, which LVM refuses as an LV
// name ("snapshot" is a reserved prefix), hence Cinder's escaped `_snapshot-<id>`.
const volumeLv = (id: string) => `volume-${id}`;
const snapshotLv = (id: string) => `_snapshot-${id}`;
/** Where a thick volume made from a snapshot is filled before it gets its real name. */
const copyingLv = (id: string) => `volume-${id}.copying`;
/**
 * The temporary thick snapshot of a source volume a thick clone copies from (Cinder's
 * `clone-snap-<id>`), named after the clone so that deleting the clone removes a leftover one.
 */
const cloneSnapLv = (id: string) => `volume-${id}.clone-snap`;
/** Marks a volume whose revert to a snapshot has started, so a retry after the merge knows it is done. */
const revertTag = (snapshotId: string) => `cinderblock-revert-${snapshotId}`;

/**
 * A driver keeping each volume as a logical volume of one LVM volume group, after Cinder's LVM
 * driver: thick LVs with copy-on-write snapshots, or thin LVs in a thin pool with thin snapshots.
 * Every command goes through the injected runner as an argument vector; ids are checked before
 * they reach one.
 */
export function createLvmDriver(options: LvmDriverOptions): VolumeDriver {
  const vg = options.volumeGroup;
  const thin = (options.lvmType ?? "thick") === "thin";
  const pool = options.thinPool ?? `${vg}-pool`;
  const reservedPercentage = options.reservedPercentage ?? 0;
  const maxOverSubscriptionRatio = options.maxOverSubscriptionRatio ?? 20;
  const clearThick = (options.volumeClear ?? "zero") === "zero";
  const copyTimeoutMs = options.copyTimeoutMs ?? 60 * 60_000;
  if (!isVgName(vg)) throw new TypeError(`volumeGroup ${JSON.stringify(vg)} is not a valid volume group name`);
  if (!isLvName(pool)) throw new TypeError(`thinPool ${JSON.stringify(pool)} is not a valid logical volume name`);
  if (!(reservedPercentage >= 0 && reservedPercentage <= 100)) {
    throw new RangeError(`reservedPercentage must be within 0-100, got ${reservedPercentage}`);
  }
  if (!(maxOverSubscriptionRatio >= 1 && Number.isFinite(maxOverSubscriptionRatio))) {
    throw new RangeError(`maxOverSubscriptionRatio must be a finite number >= 1, got ${maxOverSubscriptionRatio}`);
  }
  const lvm = createLvm({ runner: options.runner, vg, timeoutMs: options.commandTimeoutMs ?? 120_000 });

  async function find(name: string): Promise<LogicalVolume | undefined> {
    return (await lvm.lvs()).find((lv) => lv.name === name);
  }

  /** Turns a failed command into the reason a user should read; `notFound` names what was missing. */
  async function explain(error: unknown, context: { notFound?: string; neededBytes?: number } = {}) {
    const failure: LvmFailure = classify(error);
    if (failure.kind === "vg-not-found") {
      return new DriverError(`volume group ${vg} not found on this host`, { retryable: false, cause: error });
    }
    if (failure.kind === "lv-not-found" && context.notFound) {
      return new DriverError(`${context.notFound} not found in volume group ${vg}`, {
        retryable: false,
        cause: error,
        kind: "not_found",
      });
    }
    if (failure.kind === "no-space") {
      try {
        const group = await lvm.vgs();
        const needed = failure.requiredExtents
          ? failure.requiredExtents * group.extentBytes
          : (context.neededBytes ?? 0);
        return new DriverError(
          `volume group ${vg} has ${gib(group.freeBytes, "down")} free, ${gib(needed, "up")} needed`,
          {
            retryable: false,
            cause: error,
          },
        );
      } catch {
        // Fall through to LVM's own words.
      }
    }
    return error instanceof DriverError ? error : new DriverError(String(error), { retryable: true, cause: error });
  }

  async function remove(name: string, busy: (message: string) => DriverError) {
    try {
      await lvm.exec(["lvremove", "-q", "-y", lvm.path(name)]);
    } catch (error) {
      const failure = classify(error);
      if (failure.kind === "lv-not-found") return;
      if (failure.kind === "in-use") throw busy(`${name} is in use (its device is open)`);
      throw await explain(error);
    }
  }

  /** Overwrites a thick LV's blocks (a snapshot's copy-on-write store) with zeros before removal. */
  async function clear(lv: LogicalVolume) {
    if (!lv.active) await lvm.exec(["lvchange", "-ay", "-K", lvm.path(lv.name)]);
    const isSnapshot = lv.attr.startsWith("s");
    // dm names double every '-' of the VG and LV names; `-cow` is the snapshot's exception store.
    const device = isSnapshot
      ? `/dev/mapper/${vg.replaceAll("-", "--")}-${lv.name.replaceAll("-", "--")}-cow`
      : lvm.device(lv.name);
    await lvm.exec(
      [
        "dd",
        "if=/dev/zero",
        `of=${device}`,
        "bs=1M",
        `count=${Math.floor(lv.sizeBytes / MIB)}`,
        "oflag=direct",
        "conv=fsync",
        "status=none",
      ],
      { timeoutMs: copyTimeoutMs },
    );
  }

  /** Grows an LV to `sizeGb` GiB; a thick origin with snapshots is grown while inactive, as LVM requires. */
  async function grow(lv: LogicalVolume, sizeGb: number) {
    const argv = ["lvextend", "-q", "-L", `${sizeGb}g`, lvm.path(lv.name)];
    const neededBytes = sizeGb * GIB - lv.sizeBytes;
    if (!lv.attr.startsWith("o")) {
      try {
        await lvm.exec(argv);
      } catch (error) {
        throw await explain(error, { neededBytes });
      }
      return;
    }
    if (lv.open) {
      throw new DriverError(
        `${lv.name} has snapshots and is in use: LVM grows a thick snapshot origin only while it is inactive`,
        { retryable: false },
      );
    }
    await lvm.exec(["lvchange", "-an", lvm.path(lv.name)]);
    try {
      await lvm.exec(argv);
    } catch (error) {
      throw await explain(error, { neededBytes });
    } finally {
      await lvm.exec(["lvchange", "-ay", lvm.path(lv.name)]);
    }
  }

  /** Takes `name`, a snapshot of the LV `origin` (thin, or thick with a full-size store); a retry keeps the first. */
  async function snapshotOf(name: string, origin: string): Promise<void> {
    // Thick: a copy-on-write store that holds a full overwrite of the origin, so it never fills.
    // NOTE: not `-l 100%ORIGIN`: LVM takes a percentage as an upper limit and quietly makes a
    // smaller store when the group lacks room.
    let size: string[] = [];
    if (!thin) {
      const source = await find(origin);
      if (!source) throw new DriverError(`volume ${origin} not found in volume group ${vg}`, { retryable: false });
      size = ["-c", `${COW_CHUNK_BYTES / 1024}k`, "-L", `${cowBytes(source.sizeBytes)}b`];
    }
    try {
      await lvm.exec(["lvcreate", "-q", "-y", "-s", "-n", name, ...size, lvm.path(origin)]);
    } catch (error) {
      if (classify(error).kind !== "exists") throw await explain(error, { notFound: `volume ${origin}` });
      // A retry: the snapshot taken by the first attempt stands (the volume may have changed since).
      const existing = await find(name);
      if (existing?.origin !== origin) {
        throw new DriverError(`${name} already exists in ${vg} but is not a snapshot of ${origin}`, {
          retryable: false,
        });
      }
    }
  }

  async function createSnapshot(snapshot: DriverSnapshot): Promise<SnapshotModelUpdate> {
    const name = snapshotLv(checkId(snapshot.id, "snapshot"));
    await snapshotOf(name, volumeLv(checkId(snapshot.volumeId, "volume")));
    return { providerLocation: lvm.path(name) };
  }

  /**
   * Thin: the new volume `name` is a writable thin snapshot of `source` (a snapshot or a volume),
   * activated like any volume (-kn: no activation skip), then grown to `sizeGb`.
   */
  async function thinCopy(name: string, source: string, sizeGb: number, what: string): Promise<void> {
    try {
      await lvm.exec(["lvcreate", "-q", "-y", "-s", "-kn", "-n", name, lvm.path(source)]);
    } catch (error) {
      if (classify(error).kind !== "exists") throw await explain(error, { notFound: what });
    }
    const made = await find(name);
    // Its origin is the source, or nothing once the source has been deleted.
    if (!made?.attr.startsWith("V") || (made.origin !== source && made.origin !== "")) {
      throw new DriverError(`${name} already exists in ${vg} and was not made from ${source}`, {
        retryable: false,
      });
    }
    if (made.sizeBytes > sizeGb * GIB) {
      throw new DriverError(`${name} already exists in ${vg} and is larger than ${sizeGb} GiB`, {
        retryable: false,
      });
    }
    if (!made.active) await lvm.exec(["lvchange", "-ay", lvm.path(name)]);
    if (made.sizeBytes < sizeGb * GIB) await grow(made, sizeGb);
  }

  /**
   * Thick: a new LV and a block copy of the LV `source` (a snapshot, which does not change under
   * the copy), made under a temporary name so that a volume under the real name is always a
   * complete one. False when the volume was there already (a retry after success).
   */
  async function thickCopy(id: string, source: string, sizeGb: number, what: string): Promise<boolean> {
    const name = volumeLv(id);
    const lvs = await lvm.lvs();
    const done = lvs.find((lv) => lv.name === name);
    if (done) {
      if (done.sizeBytes === sizeGb * GIB) return false;
      throw new DriverError(`${name} already exists in ${vg} with ${done.sizeBytes} bytes, not ${sizeGb} GiB`, {
        retryable: false,
      });
    }
    const snap = lvs.find((lv) => lv.name === source);
    if (!snap) throw new DriverError(`${what} not found in volume group ${vg}`, { retryable: false });
    const temp = copyingLv(id);
    if (lvs.some((lv) => lv.name === temp)) await remove(temp, (m) => new DriverError(m, { retryable: true }));
    try {
      await lvm.exec(["lvcreate", "-q", "-y", "-n", temp, "-L", `${sizeGb}g`, vg]);
    } catch (error) {
      throw await explain(error, { neededBytes: sizeGb * GIB });
    }
    if (!snap.active) await lvm.exec(["lvchange", "-ay", "-K", lvm.path(source)]);
    // dd stops at the end of the source; past it a larger volume holds what any new thick LV
    // holds (zeros, where deleted LVs were cleared: see volumeClear).
    await lvm.exec(
      [
        "dd",
        `if=${lvm.device(source)}`,
        `of=${lvm.device(temp)}`,
        "bs=1M",
        "iflag=direct",
        "oflag=direct",
        "conv=fsync",
        "status=none",
      ],
      { timeoutMs: copyTimeoutMs },
    );
    try {
      await lvm.exec(["lvrename", "-q", vg, temp, name]);
    } catch (error) {
      if (classify(error).kind !== "exists") throw await explain(error);
      // Another attempt finished first: its copy stands.
      await remove(temp, (m) => new DriverError(m, { retryable: true }));
    }
    return true;
  }

  /** The volume LV `name`, active, of at least `sizeBytes` (for a migration's read or write). */
  async function activeLv(name: string, sizeBytes: number): Promise<LogicalVolume> {
    const lv = await find(name);
    if (!lv) {
      throw new DriverError(`volume ${name} not found in volume group ${vg}`, { retryable: false, kind: "not_found" });
    }
    if (lv.sizeBytes < sizeBytes) {
      throw new DriverError(`${name} has ${lv.sizeBytes} bytes, less than the volume's ${sizeBytes}`, {
        retryable: false,
      });
    }
    if (!lv.active) await lvm.exec(["lvchange", "-ay", "-K", lvm.path(name)]);
    return lv;
  }

  /** Removes a thick clone's temporary snapshot of its source, cleared like any thick snapshot. */
  async function removeCloneSnap(id: string): Promise<void> {
    const lv = await find(cloneSnapLv(id));
    if (!lv) return;
    if (clearThick && lv.attr.startsWith("s")) await clear(lv);
    await remove(lv.name, (m) => new DriverError(m, { retryable: true }));
  }

  return {
    async initialize() {
      try {
        await lvm.vgs();
      } catch (error) {
        throw await explain(error);
      }
      if (!thin) return;
      const existing = await find(pool);
      if (existing) {
        if (!existing.attr.startsWith("t")) {
          throw new DriverError(`${lvm.path(pool)} exists but is not a thin pool`, { retryable: false });
        }
        if (!existing.active) await lvm.exec(["lvchange", "-ay", lvm.path(pool)]);
        return;
      }
      try {
        // All of the group's free space; LVM keeps room for the pool's metadata and its spare.
        await lvm.exec(["lvcreate", "-q", "-y", "--type", "thin-pool", "-l", "100%FREE", "-n", pool, vg]);
      } catch (error) {
        if (classify(error).kind !== "exists") throw await explain(error);
      }
    },

    async createVolume(volume: DriverVolume) {
      const name = volumeLv(checkId(volume.id, "volume"));
      const sizeGb = checkSize(volume.sizeGb);
      const argv = thin
        ? ["lvcreate", "-q", "-y", "-n", name, "-V", `${sizeGb}g`, "-T", lvm.path(pool)]
        : ["lvcreate", "-q", "-y", "-n", name, "-L", `${sizeGb}g`, vg];
      try {
        await lvm.exec(argv);
      } catch (error) {
        if (classify(error).kind !== "exists") {
          throw await explain(error, { notFound: `thin pool ${pool}`, neededBytes: sizeGb * GIB });
        }
        const existing = await find(name);
        if (existing?.sizeBytes !== sizeGb * GIB) {
          throw new DriverError(
            `${name} already exists in ${vg} with ${existing?.sizeBytes ?? "unknown"} bytes, not ${sizeGb} GiB`,
            { retryable: false },
          );
        }
      }
    },

    async deleteVolume(volume: DriverVolume) {
      const id = checkId(volume.id, "volume");
      const name = volumeLv(id);
      const lvs = await lvm.lvs();
      const busy = (message: string) => new DriverError(message, { retryable: false });
      // What an interrupted thick copy left behind goes too.
      if (lvs.some((lv) => lv.name === copyingLv(id))) await remove(copyingLv(id), busy);
      if (lvs.some((lv) => lv.name === cloneSnapLv(id))) await removeCloneSnap(id);
      const lv = lvs.find((l) => l.name === name);
      if (!lv) return;
      // A thin volume cloned from this one has it as its origin but does not depend on it.
      const snapshots = lvs.filter((l) => l.origin === name && !VOLUME_LV.test(l.name)).map((l) => l.name);
      if (snapshots.length > 0) {
        throw busy(`${name} has snapshots (${snapshots.join(", ")}): delete them first`);
      }
      if (lv.open) throw busy(`${name} is in use (its device is open)`);
      if (clearThick && lv.pool === "") await clear(lv);
      await remove(name, busy);
    },

    createSnapshot,

    async deleteSnapshot(snapshot: DriverSnapshot) {
      const name = snapshotLv(checkId(snapshot.id, "snapshot"));
      const lv = await find(name);
      if (!lv) return;
      if (lv.attr.startsWith("S")) {
        throw new SnapshotBusyError(`${name} is being merged into ${lv.origin} (a revert is in progress)`);
      }
      if (lv.open) throw new SnapshotBusyError(`${name} is in use (its device is open)`);
      if (clearThick && lv.attr.startsWith("s")) await clear(lv);
      await remove(name, (message) => new SnapshotBusyError(message));
    },

    async createVolumeFromSnapshot(volume: DriverVolume, snapshot: DriverSnapshot) {
      const id = checkId(volume.id, "volume");
      const source = snapshotLv(checkId(snapshot.id, "snapshot"));
      const sizeGb = checkSize(volume.sizeGb);
      if (sizeGb < snapshot.volumeSizeGb) {
        throw new DriverError(`a ${sizeGb} GiB volume cannot hold a snapshot of ${snapshot.volumeSizeGb} GiB`, {
          retryable: false,
        });
      }
      if (thin) await thinCopy(volumeLv(id), source, sizeGb, `snapshot ${source}`);
      else await thickCopy(id, source, sizeGb, `snapshot ${source}`);
    },

    async createClonedVolume(volume: DriverVolume, sourceVolume: DriverVolume) {
      const id = checkId(volume.id, "volume");
      const origin = volumeLv(checkId(sourceVolume.id, "volume"));
      const sizeGb = checkSize(volume.sizeGb);
      if (sizeGb < sourceVolume.sizeGb) {
        throw new DriverError(`a ${sizeGb} GiB volume cannot hold a clone of ${sourceVolume.sizeGb} GiB`, {
          retryable: false,
        });
      }
      // Thin: a thin snapshot of the source is the clone (blocks shared until written).
      if (thin) return thinCopy(volumeLv(id), origin, sizeGb, `volume ${origin}`);
      // Thick, as Cinder's LVM driver: a temporary snapshot gives one point in time of a source
      // that may be attached and written to; it is copied, then removed.
      const temp = cloneSnapLv(id);
      if (!(await find(volumeLv(id)))) await snapshotOf(temp, origin);
      try {
        await thickCopy(id, temp, sizeGb, `temporary snapshot ${temp} of ${origin}`);
      } finally {
        await removeCloneSnap(id);
      }
    },

    async revertToSnapshot(volume: DriverVolume, snapshot: DriverSnapshot) {
      const name = volumeLv(checkId(volume.id, "volume"));
      const source = snapshotLv(checkId(snapshot.id, "snapshot"));
      const sizeGb = checkSize(volume.sizeGb);
      const tag = revertTag(snapshot.id.toLowerCase());
      let lvs = await lvm.lvs();
      const vol = lvs.find((lv) => lv.name === name);
      let snap = lvs.find((lv) => lv.name === source);
      if (!vol) throw new DriverError(`volume ${name} not found in volume group ${vg}`, { retryable: false });
      if (snap && snap.origin !== name) {
        throw new DriverError(`${source} is not a snapshot of ${name}`, { retryable: false });
      }
      // No snapshot and no tag: nothing to revert to. No snapshot but the tag: an earlier attempt
      // merged it and stopped before taking it again.
      if (!snap && !vol.tags.includes(tag)) {
        throw new DriverError(`snapshot ${source} not found in volume group ${vg}`, { retryable: false });
      }
      if (snap && !snap.attr.startsWith("S")) {
        // LVM would only schedule the merge for the volume's next activation.
        if (vol.open) {
          throw new DriverError(`${name} is in use (its device is open): detach it before reverting`, {
            retryable: false,
          });
        }
        if (!vol.tags.includes(tag)) await lvm.exec(["lvchange", "--addtag", tag, lvm.path(name)]);
        if (thin && snap.active) await lvm.exec(["lvchange", "-an", lvm.path(source)]);
        await lvm.exec(["lvconvert", "-q", "-i", "1", "--merge", lvm.path(source)], { timeoutMs: copyTimeoutMs });
        lvs = await lvm.lvs();
        snap = lvs.find((lv) => lv.name === source);
      }
      if (snap) {
        // A merge LVM delayed (the volume was open) starts when the volume is next activated.
        await lvm.exec(["lvchange", "-an", lvm.path(name)]);
        await lvm.exec(["lvchange", "-ay", lvm.path(name)]);
        if (!thin) {
          await lvm.exec(["lvconvert", "-q", "-i", "1", "--merge", lvm.path(source)], { timeoutMs: copyTimeoutMs });
        }
        lvs = await lvm.lvs();
        if (lvs.some((lv) => lv.name === source)) {
          throw new DriverError(`the merge of ${source} into ${name} has not finished yet`, { retryable: true });
        }
      }
      // As Cinder does: the snapshot exists again afterwards, as it was; then the volume gets back
      // the size it had (a merge leaves it at the snapshot's size).
      await createSnapshot(snapshot);
      const merged = await find(name);
      if (!merged) throw new DriverError(`${name} vanished during the revert`, { retryable: false });
      if (merged.sizeBytes < sizeGb * GIB) await grow(merged, sizeGb);
      if (merged.tags.includes(tag)) await lvm.exec(["lvchange", "--deltag", tag, lvm.path(name)]);
    },

    // NOTE: nothing on an LVM backend: a volume keeps its LV and VG (thin or thick is the pool's, not the type's); a type that needs another backend is migrated instead.
    async retype() {
      return true;
    },

    async extendVolume(volume: DriverVolume, newSizeGb: number) {
      const name = volumeLv(checkId(volume.id, "volume"));
      const sizeGb = checkSize(newSizeGb);
      const lv = await find(name);
      if (!lv) throw new DriverError(`volume ${name} not found in volume group ${vg}`, { retryable: false });
      // Never shrinks: an LV already this large (a retry) is done.
      if (lv.sizeBytes >= sizeGb * GIB) return;
      await grow(lv, sizeGb);
    },

    async *readVolume(volume: DriverVolume, chunkBytes: number): AsyncIterable<VolumeChunk> {
      const name = volumeLv(checkId(volume.id, "volume"));
      const sizeBytes = checkSize(volume.sizeGb) * GIB;
      const lv = await activeLv(name, sizeBytes);
      yield* readBlocks(lvm, lvm.device(lv.name), sizeBytes, chunkBytes, copyTimeoutMs);
    },

    async writeVolume(volume: DriverVolume, chunks: AsyncIterable<VolumeChunk>) {
      const name = volumeLv(checkId(volume.id, "volume"));
      const sizeBytes = checkSize(volume.sizeGb) * GIB;
      const lv = await activeLv(name, sizeBytes);
      // A new thin LV reads zeros where it was never written; a thick LV holds whatever its
      // extents held before, so what no chunk covers is zeroed there.
      await writeBlocks(lvm, lvm.device(lv.name), sizeBytes, chunks, {
        zeroGaps: lv.pool === "",
        timeoutMs: copyTimeoutMs,
      });
    },

    async listManageableSnapshots(ownedSnapshotIds: ReadonlySet<string>): Promise<ManageableSnapshot[]> {
      const owned = new Set([...ownedSnapshotIds].map((id) => id.toLowerCase()));
      const lvs = await lvm.lvs();
      return lvs
        .filter(
          (lv) =>
            !lv.hidden &&
            lv.origin !== "" &&
            !VOLUME_LV.test(lv.name) &&
            !lv.name.endsWith(".copying") &&
            !lv.name.endsWith(".clone-snap"),
        )
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((lv) => {
          const sourceVolumeId = VOLUME_LV.exec(lv.origin)?.[1];
          const ownId = SNAPSHOT_LV.exec(lv.name)?.[1];
          const reasonNotSafe =
            ownId !== undefined && owned.has(ownId)
              ? "already managed"
              : sourceVolumeId === undefined
                ? `its origin ${lv.origin} is not a volume of this backend`
                : lv.open
                  ? `${lv.name} is in use (its device is open)`
                  : undefined;
          return {
            reference: lv.name,
            ...(sourceVolumeId === undefined ? {} : { sourceVolumeId }),
            sizeGb: snapshotSizeGb(lv),
            safeToManage: reasonNotSafe === undefined,
            ...(reasonNotSafe === undefined ? {} : { reasonNotSafe }),
          };
        });
    },

    async manageExistingSnapshot(snapshot: DriverSnapshot, reference: string) {
      const target = snapshotLv(checkId(snapshot.id, "snapshot"));
      const origin = volumeLv(checkId(snapshot.volumeId, "volume"));
      if (!isLvName(reference)) {
        const shown = JSON.stringify(String(reference).slice(0, 128));
        throw new DriverError(`invalid reference ${shown}: expected a logical volume name in ${vg}`, {
          retryable: false,
          kind: "invalid",
        });
      }
      const lvs = await lvm.lvs();
      const ref = lvs.find((lv) => lv.name === reference && !lv.hidden);
      const existing = lvs.find((lv) => lv.name === target);
      if (existing && (reference === target || !ref)) {
        // Renamed already (a retry), or managed under its own name.
        if (existing.origin !== origin) {
          throw new DriverError(`${target} is a snapshot of ${existing.origin || "nothing"}, not of ${origin}`, {
            retryable: false,
          });
        }
        return { sizeGb: snapshotSizeGb(existing) };
      }
      if (!ref)
        throw new DriverError(`logical volume ${reference} not found in volume group ${vg}`, {
          retryable: false,
          kind: "not_found",
        });
      if (ref.origin === "" || VOLUME_LV.test(ref.name)) {
        throw new DriverError(`${reference} is not a snapshot`, { retryable: false });
      }
      if (ref.origin !== origin) {
        throw new DriverError(`${reference} is a snapshot of ${ref.origin}, not of ${origin}`, { retryable: false });
      }
      if (existing) throw new DriverError(`${target} already exists in volume group ${vg}`, { retryable: false });
      try {
        await lvm.exec(["lvrename", "-q", vg, reference, target]);
      } catch (error) {
        throw await explain(error, { notFound: `logical volume ${reference}` });
      }
      return { sizeGb: snapshotSizeGb(ref) };
    },

    async unmanageSnapshot(snapshot: DriverSnapshot) {
      // As Cinder's LVM driver: the LV stays as it is; listManageableSnapshots offers it again.
      checkId(snapshot.id, "snapshot");
    },

    /**
     * On the storage host itself the LV's device node is the volume (Cinder's LVM driver exports
     * it over iSCSI for remote hosts; that target helper is not built yet).
     */
    async initializeConnection(volume: DriverVolume) {
      const name = volumeLv(checkId(volume.id, "volume"));
      if (!(await find(name)))
        throw new DriverError(`volume ${name} not found in volume group ${vg}`, {
          retryable: false,
          kind: "not_found",
        });
      return { driverVolumeType: "local", data: { device_path: lvm.device(name) } };
    },

    async terminateConnection(volume: DriverVolume) {
      checkId(volume.id, "volume");
    },

    async getStats(): Promise<BackendStats> {
      const common = {
        driver: "lvm",
        poolName: thin ? pool : vg,
        storageProtocol: "iSCSI",
        multiattach: true,
        thinProvisioning: thin,
        maxOverSubscriptionRatio: thin ? maxOverSubscriptionRatio : 1,
        reservedPercentage,
      } as const;
      try {
        const [group, lvs] = await Promise.all([lvm.vgs(), lvm.lvs()]);
        const visible = lvs.filter((lv) => !lv.hidden);
        const totalVolumes = visible.filter((lv) => VOLUME_LV.test(lv.name)).length;
        if (thin) {
          const thinPool = lvs.find((lv) => lv.name === pool);
          if (!thinPool) throw new Error(`thin pool ${pool} not found`);
          const provisioned = visible.filter((lv) => lv.pool === pool).reduce((sum, lv) => sum + lv.sizeBytes, 0);
          return {
            ...common,
            totalCapacityGb: toGb(thinPool.sizeBytes),
            freeCapacityGb: toGb(thinPool.sizeBytes * (1 - thinPool.dataPercent / 100)),
            provisionedCapacityGb: toGb(provisioned),
            totalVolumes,
            backendState: "up",
          };
        }
        const provisioned = visible
          .filter((lv) => lv.pool === "" && !lv.attr.startsWith("t"))
          .reduce((sum, lv) => sum + lv.sizeBytes, 0);
        return {
          ...common,
          totalCapacityGb: toGb(group.sizeBytes),
          freeCapacityGb: toGb(group.freeBytes),
          provisionedCapacityGb: toGb(provisioned),
          totalVolumes,
          backendState: "up",
        };
      } catch {
        // The scheduler only needs to know not to place volumes here.
        return downStats(common);
      }
    },

    async close() {
      // Each command is its own process or connection; nothing is held between calls.
    },
  };
}

/** The chunk size of thick snapshots (LVM's default). */
const COW_CHUNK_BYTES = 4096;

/**
 * The copy-on-write store a thick snapshot needs to survive a full overwrite of its origin: a
 * header chunk, one data chunk per origin chunk, and one metadata chunk per 256 data chunks plus a
 * terminator (LVM's `cow_max_extents`, which is what `-l 100%ORIGIN` asks for).
 */
export function cowBytes(originBytes: number): number {
  const chunks = Math.ceil(originBytes / COW_CHUNK_BYTES);
  const perMetadataChunk = COW_CHUNK_BYTES / 16;
  const metadataChunks = Math.floor((chunks + perMetadataChunk) / perMetadataChunk);
  return (1 + chunks + metadataChunks) * COW_CHUNK_BYTES;
}

/** A snapshot's size as a user sees it: its origin's size at snapshot time, in whole GiB. */
function snapshotSizeGb(lv: LogicalVolume): number {
  // A thick snapshot's own size is its copy-on-write store; its origin's is what it shows.
  const bytes = lv.attr.startsWith("s") ? lv.originSizeBytes : lv.sizeBytes;
  return Math.max(1, Math.ceil(bytes / GIB));
}

/** Sizes are whole GiB, as in Cinder. */
function checkSize(sizeGb: unknown): number {
  if (typeof sizeGb !== "number" || !Number.isSafeInteger(sizeGb) || sizeGb <= 0 || sizeGb > 1024 ** 2) {
    throw new DriverError(`invalid volume size ${String(sizeGb)}: expected a positive whole number of GiB`, {
      retryable: false,
    });
  }
  return sizeGb;
}
