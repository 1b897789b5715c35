import { randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { copyFile, link, lstat, mkdir, open, readdir, rename, stat, statfs, unlink } from "node:fs/promises";
import { basename, isAbsolute, join } from "node:path";
import { type FsNativeBinding, loadFsNative } from "@cinderblock/fs-native";
import { readChunks, writeChunks } from "../byte-copy.js";
import { checkId, checkSizeBytes, downStats, GIB, toGb } from "../checks.js";
import {
  type BackendStats,
  type ConnectionInfo,
  DriverError,
  type DriverSnapshot,
  type DriverVolume,
  type ManageableSnapshot,
  type SnapshotModelUpdate,
  type VolumeChunk,
  type VolumeDriver,
} from "../driver.js";
import { copySparse } from "./sparse-copy.js";
import { createSpawnPool, type SpawnPool } from "./spawn-pool.js";

/** Configuration of the `file` driver. */
export interface FileDriverOptions {
  /** Absolute directory holding the volume and snapshot images; created by `initialize()`. */
  dataDir: string;
  /** Share of capacity the scheduler must keep free, 0-100. Defaults to 0. */
  reservedPercentage?: number;
  /** How far provisioned space may exceed real capacity (thin provisioning). Defaults to 20, as in Cinder. */
  maxOverSubscriptionRatio?: number;
  /**
   * This host's own name when it is one member of an active-active cluster on a shared directory
   * (CINDERBLOCK_HOST beside CINDERBLOCK_CLUSTER): its temp files carry it, so that at start it
   * removes its own leftovers only, never another live member's work in progress.
   */
  member?: string | undefined;
  /**
   * Tests only (fault injection): every new blank volume's create fails, for good, as a backend
   * that cannot create would (the scheduler's retry on another backend is tested with it).
   */
  testFailCreate?: boolean;
}

/** Longest a `cp` of one volume may take. */
const COPY_TIMEOUT_MS = 30 * 60_000;
const VOLUME_FILE = /^volume-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.img$/;
const SNAPSHOT_FILE = /^snapshot-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.img$/;

/** Errors with which `copyFile(..., COPYFILE_FICLONE_FORCE)` says "this file system cannot reflink". */
const REFLINK_UNSUPPORTED = new Set(["ENOTSUP", "EOPNOTSUPP", "EXDEV", "EINVAL", "ENOSYS", "ENOTTY"]);

/** File-system errors that repeating the same call will not cure. */
const PERMANENT = new Set([
  "EACCES",
  "EPERM",
  "EROFS",
  "EISDIR",
  "ENOTDIR",
  "EINVAL",
  "EFBIG",
  "ENAMETOOLONG",
  "ELOOP",
]);

/**
 * A driver that keeps each volume as a sparse image file and each snapshot as a full copy of it
 * (a reflink where the file system supports one). Meant for development and single-node setups.
 * `deps.fsNative` replaces the copy addon (tests); `null` copies as where it is not built.
 */
export function createFileDriver(
  options: FileDriverOptions,
  deps: { fsNative?: FsNativeBinding | null } = {},
): VolumeDriver {
  const { dataDir } = options;
  const reservedPercentage = options.reservedPercentage ?? 0;
  const maxOverSubscriptionRatio = options.maxOverSubscriptionRatio ?? 20;
  // providerLocation is stored and read by other processes, so it must not depend on a cwd.
  if (!isAbsolute(dataDir)) {
    throw new TypeError(`dataDir must be an absolute path, got ${JSON.stringify(dataDir)}`);
  }
  if (!(reservedPercentage >= 0 && reservedPercentage <= 100)) {
    throw new RangeError(`reservedPercentage must be within 0-100, got ${reservedPercentage}`);
  }
  if (!(maxOverSubscriptionRatio >= 1 && Number.isFinite(maxOverSubscriptionRatio))) {
    throw new RangeError(`maxOverSubscriptionRatio must be a finite number >= 1, got ${maxOverSubscriptionRatio}`);
  }

  const copier: Copier = {
    reflink: true,
    native: deps.fsNative === undefined ? loadFsNative().binding : (deps.fsNative ?? undefined),
    // `cp` runs from worker threads: a spawn blocks its thread until the child has exec'd.
    spawner: createSpawnPool(),
  };
  const volumePath = (id: string) => join(dataDir, `volume-${id}.img`);
  const snapshotPath = (id: string) => join(dataDir, `snapshot-${id}.img`);
  // A leading dot keeps temp files out of the volume count; the random part keeps concurrent
  // retries of the same call from writing into each other's file.
  const tempTag = options.member ? `${options.member}-` : "";
  const tempPath = (name: string) => join(dataDir, `.${name}.tmp-${tempTag}${randomBytes(8).toString("hex")}`);
  const ownLeftover = new RegExp(`^\\..+\\.tmp-${tempTag}[0-9a-f]{16}$`);

  /** Make a finished temp file visible under its real name and report whether it won. */
  async function publish(tmp: string, final: string): Promise<boolean> {
    let published = true;
    try {
      // link, unlike rename, never replaces an existing file: a slow duplicate call must not
      // overwrite a volume holding data or a snapshot already reported as taken.
      await link(tmp, final);
    } catch (err) {
      if (errorCode(err) !== "EEXIST") throw err;
      published = false;
    }
    await unlink(tmp);
    await syncDir(dataDir);
    return published;
  }

  /**
   * Makes `volume` (not yet existing) a copy of the image at `source`, grown to the volume's size:
   * built under a temp name and published only when complete. A retry after success does not look
   * at the source again: it may be gone by now.
   */
  async function createFrom(volume: DriverVolume, source: string, sourceName: string): Promise<void> {
    const id = checkId(volume.id, "volume");
    const bytes = checkSizeBytes(volume.sizeGb);
    const name = `volume-${id}.img`;
    const path = volumePath(id);

    const existing = await statIfExists(path, name);
    if (existing) return checkExistingSize(name, existing.size, volume.sizeGb);

    const missingSource = () => new DriverError(`${sourceName} not found on backend`, { retryable: false });
    const sourceInfo = await statIfExists(source, sourceName);
    if (!sourceInfo) throw missingSource();
    if (sourceInfo.size > bytes) {
      throw new DriverError(
        `cannot create ${name} of ${volume.sizeGb} GiB from ${sourceName} of ${sourceInfo.size} bytes: the volume must be at least as large as its source`,
        { retryable: false },
      );
    }

    const tmp = tempPath(name);
    try {
      await cloneOrCopy(source, tmp, copier, { sync: false });
      await growAndSync(tmp, bytes);
      if (await publish(tmp, path)) return;
    } catch (err) {
      // The source may have been deleted between the check above and the copy.
      if (!(await statIfExists(source, sourceName))) throw missingSource();
      throw fsError(`cannot create ${name} from ${sourceName}`, err);
    } finally {
      await removeQuietly(tmp);
    }
    // Another call for the same id got there first.
    const winner = await statIfExists(path, name);
    if (!winner) {
      throw new DriverError(`${name} vanished while being created`, { retryable: true });
    }
    checkExistingSize(name, winner.size, volume.sizeGb);
  }

  return {
    async initialize() {
      try {
        await mkdir(dataDir, { recursive: true });
      } catch (err) {
        throw fsError(`cannot create data directory ${dataDir}`, err);
      }
      // A host killed in the middle of a create or a copy left its temp file; nothing of this
      // process is in flight yet, and the redelivered call writes a new one. NOTE: a directory is
      // one host's, or one cluster's whose members name their temp files (`member`); otherwise
      // this would remove another live host's work.
      const leftovers = (await readdir(dataDir)).filter((f) => ownLeftover.test(f));
      await Promise.all(leftovers.map((f) => removeQuietly(join(dataDir, f))));
      if (leftovers.length > 0) await syncDir(dataDir);
    },

    async createVolume(volume: DriverVolume) {
      const id = checkId(volume.id, "volume");
      if (options.testFailCreate) {
        throw new DriverError(`cannot create volume-${id}.img: failure injected (testFailCreate)`, {
          retryable: false,
        });
      }
      const bytes = checkSizeBytes(volume.sizeGb);
      const name = `volume-${id}.img`;
      const path = volumePath(id);

      const existing = await statIfExists(path, name);
      if (existing) return checkExistingSize(name, existing.size, volume.sizeGb);

      // Built under a temp name so a crash between create and truncate never leaves a short
      // file under the real name, which a retry would then refuse as "wrong size".
      const tmp = tempPath(name);
      try {
        const handle = await open(tmp, "wx");
        try {
          await handle.truncate(bytes);
          await handle.sync();
        } finally {
          await handle.close();
        }
        if (await publish(tmp, path)) return;
      } catch (err) {
        throw fsError(`cannot create ${name}`, err);
      } finally {
        await removeQuietly(tmp);
      }
      // Another call for the same id got there first.
      const winner = await statIfExists(path, name);
      if (!winner) {
        throw new DriverError(`${name} vanished while being created`, { retryable: true });
      }
      checkExistingSize(name, winner.size, volume.sizeGb);
    },

    async deleteVolume(volume: DriverVolume) {
      const id = checkId(volume.id, "volume");
      await removeFile(volumePath(id), `volume-${id}.img`);
    },

    async createSnapshot(snapshot: DriverSnapshot): Promise<SnapshotModelUpdate> {
      const id = checkId(snapshot.id, "snapshot");
      const volumeId = checkId(snapshot.volumeId, "volume");
      const name = `snapshot-${id}.img`;
      const volumeName = `volume-${volumeId}.img`;
      const path = snapshotPath(id);
      const source = volumePath(volumeId);
      const result = { providerLocation: path };

      // A retry must not re-copy: the volume may have changed since the first attempt.
      if (await statIfExists(path, name)) return result;

      // NOTE: the volume file is not looked at before the copy: a missing one fails the copy, and
      // the failure is then told apart (a stat and a failed unlink fewer per snapshot).
      const tmp = tempPath(name);
      let published = false;
      try {
        await cloneOrCopy(source, tmp, copier, { sync: true });
        await publish(tmp, path);
        published = true; // publish removed the temp name
        return result;
      } catch (err) {
        if (!(await statIfExists(source, volumeName))) {
          throw new DriverError(`volume file ${volumeName} not found on backend`, { retryable: false });
        }
        throw fsError(`cannot create ${name} from ${volumeName}`, err);
      } finally {
        if (!published) await removeQuietly(tmp);
      }
    },

    async deleteSnapshot(snapshot: DriverSnapshot) {
      // Never throws SnapshotBusyError: every snapshot is a full, independent copy (or a reflink,
      // which the file system unshares on write), and a volume made from it or reverted to it is
      // another independent copy, so no file ever depends on another. A copy still reading the
      // snapshot keeps its open descriptor, which outlives the unlink.
      const id = checkId(snapshot.id, "snapshot");
      await removeFile(snapshotPath(id), `snapshot-${id}.img`);
    },

    async createVolumeFromSnapshot(volume: DriverVolume, snapshot: DriverSnapshot) {
      const snapshotId = checkId(snapshot.id, "snapshot");
      await createFrom(volume, snapshotPath(snapshotId), `snapshot file snapshot-${snapshotId}.img`);
    },

    async createClonedVolume(volume: DriverVolume, source: DriverVolume) {
      // A reflink of the source where the file system has one (instant, blocks shared until
      // written), else the same hole-preserving copy a snapshot gets.
      const sourceId = checkId(source.id, "volume");
      await createFrom(volume, volumePath(sourceId), `volume file volume-${sourceId}.img`);
    },

    async revertToSnapshot(volume: DriverVolume, snapshot: DriverSnapshot) {
      const id = checkId(volume.id, "volume");
      const snapshotId = checkId(snapshot.id, "snapshot");
      const name = `volume-${id}.img`;
      const snapshotName = `snapshot-${snapshotId}.img`;
      if (checkId(snapshot.volumeId, "volume") !== id) {
        throw new DriverError(`cannot revert ${name} to ${snapshotName}: the snapshot belongs to another volume`, {
          retryable: false,
        });
      }
      const path = volumePath(id);
      const source = snapshotPath(snapshotId);

      const missingVolume = () => new DriverError(`volume file ${name} not found on backend`, { retryable: false });
      const missingSnapshot = () =>
        new DriverError(`snapshot file ${snapshotName} not found on backend`, { retryable: false });
      const volumeInfo = await statIfExists(path, name);
      if (!volumeInfo) throw missingVolume();
      const snapshotInfo = await statIfExists(source, snapshotName);
      if (!snapshotInfo) throw missingSnapshot();
      // Volumes only grow, so this only happens with a snapshot managed from elsewhere; going on
      // would leave the volume larger than its row says.
      if (snapshotInfo.size > volumeInfo.size) {
        throw new DriverError(
          `cannot revert ${name} (${volumeInfo.size} bytes) to ${snapshotName}: the snapshot is larger (${snapshotInfo.size} bytes)`,
          { retryable: false },
        );
      }

      // The new content is built beside the volume and renamed over it, so the volume holds
      // either all of its old bytes or all of the snapshot's, never a mix; repeating the call
      // rebuilds the same content. rename, unlike publish's link, is meant to replace here.
      const tmp = tempPath(name);
      try {
        await cloneOrCopy(source, tmp, copier, { sync: false });
        // A volume extended since the snapshot keeps its size; the extra tail reads as zeros.
        await growAndSync(tmp, volumeInfo.size, volumeInfo.mode);
        // Narrows (cannot close) the window in which a concurrent delete would be undone.
        if (!(await statIfExists(path, name))) throw missingVolume();
        await rename(tmp, path);
        await syncDir(dataDir);
      } catch (err) {
        if (err instanceof DriverError) throw err;
        if (!(await statIfExists(source, snapshotName))) throw missingSnapshot();
        throw fsError(`cannot revert ${name} to ${snapshotName}`, err);
      } finally {
        await removeQuietly(tmp);
      }
    },

    async extendVolume(volume: DriverVolume, newSizeGb: number) {
      const id = checkId(volume.id, "volume");
      const bytes = checkSizeBytes(newSizeGb);
      const name = `volume-${id}.img`;
      const path = volumePath(id);

      const info = await statIfExists(path, name);
      if (!info) throw new DriverError(`volume file ${name} not found on backend`, { retryable: false });
      // Equal: a retry of a call that already succeeded.
      if (info.size === bytes) return;
      if (info.size > bytes) {
        throw new DriverError(`cannot shrink ${name} from ${info.size} bytes to ${newSizeGb} GiB`, {
          retryable: false,
        });
      }
      try {
        await growAndSync(path, bytes);
      } catch (err) {
        throw fsError(`cannot extend ${name}`, err);
      }
    },

    // NOTE: a file backend has nothing a type could change (no QoS, no provisioning choice).
    async retype() {
      return true;
    },

    async *readVolume(volume: DriverVolume, chunkBytes: number): AsyncIterable<VolumeChunk> {
      const id = checkId(volume.id, "volume");
      const name = `volume-${id}.img`;
      const info = await statIfExists(volumePath(id), name);
      if (!info)
        throw new DriverError(`volume file ${name} not found on backend`, { retryable: false, kind: "not_found" });
      try {
        yield* readChunks(volumePath(id), info.size, chunkBytes);
      } catch (err) {
        throw fsError(`cannot read ${name}`, err);
      }
    },

    async writeVolume(volume: DriverVolume, chunks: AsyncIterable<VolumeChunk>) {
      const id = checkId(volume.id, "volume");
      const name = `volume-${id}.img`;
      const info = await statIfExists(volumePath(id), name);
      if (!info) throw new DriverError(`volume file ${name} not found on backend`, { retryable: false });
      // A fresh volume file is sparse: what no chunk covers reads as zeros.
      try {
        await writeChunks(volumePath(id), info.size, chunks);
      } catch (err) {
        throw fsError(`cannot write ${name}`, err);
      }
    },

    async listManageableSnapshots(ownedSnapshotIds: ReadonlySet<string>): Promise<ManageableSnapshot[]> {
      const owned = new Set([...ownedSnapshotIds].map((id) => id.toLowerCase()));
      let entries: string[];
      try {
        entries = await readdir(dataDir);
      } catch (err) {
        throw fsError(`cannot list ${dataDir}`, err);
      }
      const found: ManageableSnapshot[] = [];
      for (const entry of entries) {
        // Hidden names are our temp files; volumes are never snapshots.
        if (!entry.endsWith(".img") || entry.startsWith(".") || entry.startsWith("volume-")) continue;
        const ownId = SNAPSHOT_FILE.exec(entry)?.[1];
        if (ownId !== undefined && owned.has(ownId)) continue;
        const info = await lstatIfExists(join(dataDir, entry), entry);
        // Deleted since readdir.
        if (!info) continue;
        const reason = referenceProblem(entry) ?? fileProblem(info);
        found.push({
          reference: entry,
          sizeGb: info.isFile() ? Math.ceil(info.size / GIB) : 0,
          safeToManage: reason === undefined,
          ...(reason === undefined ? {} : { reasonNotSafe: reason }),
        });
      }
      return found.sort((a, b) => (a.reference < b.reference ? -1 : a.reference > b.reference ? 1 : 0));
    },

    async manageExistingSnapshot(snapshot: DriverSnapshot, reference: string): Promise<{ sizeGb: number }> {
      const id = checkId(snapshot.id, "snapshot");
      const name = `snapshot-${id}.img`;
      const path = snapshotPath(id);
      const badReference = referenceProblem(reference);
      if (badReference !== undefined) {
        const shown = typeof reference === "string" ? JSON.stringify(reference.slice(0, 300)) : typeof reference;
        throw new DriverError(`cannot manage ${shown}: ${badReference}`, { retryable: false, kind: "invalid" });
      }
      const source = join(dataDir, reference);
      const sizeOf = (info: Stats) => ({ sizeGb: Math.ceil(info.size / GIB) });

      const sourceInfo = await lstatIfExists(source, reference);
      if (!sourceInfo) {
        // A retry of a call that already renamed it.
        const done = await lstatIfExists(path, name);
        if (done?.isFile()) return sizeOf(done);
        throw new DriverError(`${reference} not found on backend`, { retryable: false, kind: "not_found" });
      }
      // reference === name: an unowned `snapshot-<id>.img` (the list offers those) managed under
      // its own id is already in place.
      const targetInfo = reference === name ? undefined : await lstatIfExists(path, name);
      // Left by a call that linked but crashed before unlinking: finish its job.
      const halfDone = targetInfo !== undefined && sameFile(sourceInfo, targetInfo);
      const badFile = fileProblem(sourceInfo, halfDone ? 2 : 1);
      if (badFile !== undefined) {
        throw new DriverError(`cannot manage ${reference}: ${badFile}`, { retryable: false });
      }
      if (reference === name) return sizeOf(sourceInfo);
      if (targetInfo && !halfDone) {
        throw new DriverError(`cannot manage ${reference}: ${name} already exists`, { retryable: false });
      }

      try {
        await moveWithoutReplacing(source, path, dataDir);
      } catch (err) {
        // Another file took the name since the check above.
        if (errorCode(err) === "EEXIST") {
          throw new DriverError(`cannot manage ${reference}: ${name} already exists`, { retryable: false, cause: err });
        }
        throw fsError(`cannot rename ${reference} to ${name}`, err);
      }
      const moved = await statIfExists(path, name);
      if (!moved) throw new DriverError(`${name} vanished while being managed`, { retryable: true });
      return sizeOf(moved);
    },

    async unmanageSnapshot(snapshot: DriverSnapshot) {
      const id = checkId(snapshot.id, "snapshot");
      const name = `snapshot-${id}.img`;
      const unmanagedName = `unmanaged-${name}`;
      // The new name is not ours, so a later listManageableSnapshots offers it again. Missing
      // (already unmanaged, or never on this backend): there is nothing to let go of.
      try {
        await moveWithoutReplacing(snapshotPath(id), join(dataDir, unmanagedName), dataDir);
      } catch (err) {
        if (errorCode(err) === "EEXIST") {
          throw new DriverError(`cannot unmanage ${name}: ${unmanagedName} already exists and is another file`, {
            retryable: false,
            cause: err,
          });
        }
        throw fsError(`cannot rename ${name} to ${unmanagedName}`, err);
      }
    },

    /**
     * The image file is the device: a host on the same machine opens it (or loop-mounts it).
     * There is no export to set up, so this only checks the volume exists.
     */
    async initializeConnection(volume: DriverVolume): Promise<ConnectionInfo> {
      const id = checkId(volume.id, "volume");
      const name = `volume-${id}.img`;
      if (!(await statIfExists(volumePath(id), name))) {
        throw new DriverError(`volume file ${name} not found on backend`, { retryable: false, kind: "not_found" });
      }
      return { driverVolumeType: "local", data: { device_path: volumePath(id) } };
    },

    async terminateConnection(volume: DriverVolume): Promise<void> {
      checkId(volume.id, "volume");
    },

    async getStats(): Promise<BackendStats> {
      const common = {
        driver: "file",
        poolName: basename(dataDir),
        storageProtocol: "file",
        multiattach: true,
        thinProvisioning: true,
        maxOverSubscriptionRatio,
        reservedPercentage,
      } as const;
      try {
        const fsStats = await statfs(dataDir);
        let provisionedBytes = 0;
        let totalVolumes = 0;
        for (const entry of await readdir(dataDir)) {
          if (!VOLUME_FILE.test(entry)) continue;
          const info = await statIfExists(join(dataDir, entry), entry);
          // Deleted since readdir: it no longer counts.
          if (!info) continue;
          provisionedBytes += info.size;
          totalVolumes += 1;
        }
        return {
          ...common,
          totalCapacityGb: toGb(fsStats.blocks * fsStats.bsize),
          // bavail, not bfree: blocks reserved for root are not usable by this service.
          freeCapacityGb: toGb(fsStats.bavail * fsStats.bsize),
          provisionedCapacityGb: toGb(provisionedBytes),
          totalVolumes,
          backendState: "up",
        };
      } catch {
        // The scheduler only needs to know not to place volumes here.
        return downStats(common);
      }
    },

    async close() {
      // Every call opens and closes its own files; only the spawn workers outlive a call.
      await copier.spawner.close();
    },
  };
}

/** An existing image may only be reused by a retry asking for the same size. */
function checkExistingSize(name: string, actualBytes: number, sizeGb: number): void {
  if (actualBytes !== sizeGb * GIB) {
    throw new DriverError(`${name} already exists with size ${actualBytes} bytes, not ${sizeGb} GiB`, {
      retryable: false,
    });
  }
}

/** How one driver copies images, and what it learned about its file system. */
interface Copier {
  /** False once the file system answered that it cannot reflink: not asked again in this process. */
  reflink: boolean;
  /** The fs-native addon, where it was built. */
  native: FsNativeBinding | undefined;
  /** Runs `cp` where the addon is missing. */
  spawner: SpawnPool;
}

/**
 * Reflink where the file system can (instant, shares blocks); otherwise a hole-preserving copy of
 * the data extents, fsynced when `sync` is set.
 * NOTE: the copy finds the data extents with SEEK_DATA/SEEK_HOLE, so a mostly empty 10 GiB volume
 * copies in milliseconds, where reading it (copySparse) takes about 20 s here. The fs-native addon
 * does that on the libuv thread pool; forking `cp --sparse=always` from this process cost about as
 * much CPU as the rest of a snapshot, so `cp` is only the fallback where the addon is not built,
 * and copySparse the one for images without coreutils.
 */
async function cloneOrCopy(
  source: string,
  destination: string,
  copier: Copier,
  { sync }: { sync: boolean },
): Promise<void> {
  if (copier.reflink && (await reflink(source, destination, copier))) {
    if (sync) await syncFile(destination);
    return;
  }
  if (copier.native) {
    // The fsync runs in the same thread-pool job as the copy.
    await copier.native.copySparse(source, destination, { fsync: sync });
    return;
  }
  try {
    await copier.spawner.execFile("cp", ["--sparse=always", "--no-dereference", "--", source, destination], {
      timeout: COPY_TIMEOUT_MS,
    });
  } catch (err) {
    const spawnFailed = errorCode(err) === "ENOENT" && (err as { path?: unknown }).path === "cp";
    if (!spawnFailed) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? "").trim();
      throw new Error(`cp failed: ${stderr || String(err)}`, { cause: err });
    }
    await copySparse(source, destination);
  }
  if (sync) await syncFile(destination);
}

/** Clone `source` to a new `destination`; false (remembered in `copier`) where the file system cannot. */
async function reflink(source: string, destination: string, copier: Copier): Promise<boolean> {
  try {
    await copyFile(source, destination, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
    return true;
  } catch (err) {
    const code = errorCode(err);
    if (code === undefined || !REFLINK_UNSUPPORTED.has(code)) throw err;
  }
  // Source and destination are always in dataDir, so the answer holds for every later copy.
  copier.reflink = false;
  // libuv removes a destination it created before the clone failed; this guards older versions.
  await removeQuietly(destination);
  return false;
}

/** Extend a file with a hole to `bytes` if it is shorter, optionally set its mode, and fsync it. */
async function growAndSync(path: string, bytes: number, mode?: number): Promise<void> {
  const handle = await open(path, "r+");
  try {
    if ((await handle.stat()).size < bytes) await handle.truncate(bytes);
    if (mode !== undefined) await handle.chmod(mode & 0o7777);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Rename `from` to `to` without ever replacing `to`: link, then unlink. When `to` already is
 * the same file (a call that crashed between the two steps) the move is finished; when it is
 * another file the call fails with EEXIST. A missing `from` is not an error (already moved).
 */
async function moveWithoutReplacing(from: string, to: string, dir: string): Promise<void> {
  try {
    await link(from, to);
  } catch (err) {
    const code = errorCode(err);
    if (code === "ENOENT") return;
    if (code !== "EEXIST") throw err;
    const fromInfo = await lstatIfExists(from, from);
    // A concurrent retry finished the move between our link and this look.
    if (!fromInfo) return;
    if (!sameFile(fromInfo, await lstat(to))) throw err;
  }
  try {
    await unlink(from);
  } catch (err) {
    // A concurrent retry unlinked it first.
    if (errorCode(err) !== "ENOENT") throw err;
  }
  await syncDir(dir);
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * Why a name given as a manage-existing reference cannot be used, or undefined when it can: it
 * must be a plain `*.img` file name in the data directory, and not one of our volumes.
 */
function referenceProblem(reference: unknown): string | undefined {
  if (typeof reference !== "string" || reference === "") return "the reference must be a file name";
  if (reference.includes("/")) return "the reference must be a file name, not a path";
  if (reference.includes("..")) return 'the name contains ".."';
  if (reference.startsWith(".")) return "hidden files are not snapshots";
  if (!reference.endsWith(".img")) return "only .img files can be managed";
  if (reference.startsWith("volume-")) return "the file is a volume image";
  if (Buffer.byteLength(reference) > 255) return "the name is too long";
  for (const char of reference) {
    const code = char.codePointAt(0) ?? 0;
    // U+FFFD: the name was not valid UTF-8, so this string does not name the file.
    if (code < 0x20 || code === 0x7f || code === 0xfffd) {
      return "the name contains control or undecodable characters";
    }
  }
  return undefined;
}

/** Why a directory entry cannot become a snapshot, or undefined when it can. */
function fileProblem(info: Stats, expectedLinks = 1): string | undefined {
  if (info.isSymbolicLink()) return "it is a symbolic link";
  if (info.isDirectory()) return "it is a directory";
  if (!info.isFile()) return "it is not a regular file";
  if (info.size === 0) return "the file is empty";
  // Another name could change the snapshot's bytes behind our back (this is also what a manage
  // or create that crashed between link and unlink leaves).
  if (info.nlink > expectedLinks) return `the file has ${info.nlink} hard links`;
  return undefined;
}

async function removeFile(path: string, name: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (errorCode(err) === "ENOENT") return;
    throw fsError(`cannot delete ${name}`, err);
  }
}

async function removeQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    // Best effort cleanup of a temp file that usually no longer exists.
  }
}

async function statIfExists(path: string, name: string) {
  try {
    return await stat(path);
  } catch (err) {
    if (errorCode(err) === "ENOENT") return undefined;
    throw fsError(`cannot inspect ${name}`, err);
  }
}

async function lstatIfExists(path: string, name: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if (errorCode(err) === "ENOENT") return undefined;
    throw fsError(`cannot inspect ${name}`, err);
  }
}

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync a directory so a link or unlink in it survives a crash. */
async function syncDir(path: string): Promise<void> {
  await syncFile(path);
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null || !("code" in err)) return undefined;
  return typeof err.code === "string" ? err.code : undefined;
}

function fsError(message: string, err: unknown): DriverError {
  if (err instanceof DriverError) return err;
  const code = errorCode(err);
  const detail = code ?? (err instanceof Error ? err.message : undefined);
  return new DriverError(detail ? `${message}: ${detail}` : message, {
    retryable: code === undefined || !PERMANENT.has(code),
    cause: err,
  });
}
