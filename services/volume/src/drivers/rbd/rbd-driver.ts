import { loadRbdNative } from "@cinderblock/rbd-native";
import { z } from "zod";
import { checkId, checkSizeBytes, downStats, GIB, toGb } from "../checks.js";
import {
  type BackendStats,
  type ConnectionInfo,
  DriverError,
  type DriverSnapshot,
  type DriverVolume,
  type ManageableSnapshot,
  SnapshotBusyError,
  type SnapshotModelUpdate,
  type VolumeChunk,
  type VolumeDriver,
} from "../driver.js";
import { isAllZero } from "../volume-digest.js";
import { Errno, isErrno, toDriverError, tolerate } from "./ceph-error.js";
import { createCliClient, type RunCommand } from "./cli-client.js";
import { createNativeClient } from "./native-client.js";
import type { RbdChild, RbdClient, RbdImageInfo, RbdSnapshot } from "./rbd-client.js";

/** Configuration of one `rbd` backend (one pool), after Cinder's rbd_* options. */
export interface RbdDriverOptions {
  /** The pool holding the backend's images (Cinder's rbd_pool). */
  pool: string;
  /** Ceph user without `client.` (rbd_user). */
  user: string;
  /** Cluster name (rbd_cluster_name): selects /etc/ceph/<name>.conf when confPath is absent. */
  clusterName: string;
  /** ceph.conf (rbd_ceph_conf); absent: Ceph's own search ($CEPH_CONF, /etc/ceph/<cluster>.conf). */
  confPath?: string;
  /** The user's keyring; absent: the one ceph.conf names. */
  keyring?: string;
  /** The libvirt secret holding the user's key, given to attaching hosts (rbd_secret_uuid). */
  secretUuid?: string;
  /** Clone depth past which a volume made from a snapshot is flattened; 0 always flattens (rbd_max_clone_depth). */
  maxCloneDepth: number;
  /** Flatten every volume made from a snapshot (rbd_flatten_volume_from_snapshot). */
  flattenVolumeFromSnapshot: boolean;
  /** Children flattened at once when a snapshot with clones is deleted. */
  flattenConcurrency: number;
  /** How long connecting to the cluster may take. */
  connectTimeoutSeconds: number;
  /** How long one call may wait on the cluster; getStats reports `down` past it. */
  timeoutSeconds: number;
  /** How long a CLI call that moves data (flatten, rollback, remove, resize) may take. */
  longTimeoutSeconds: number;
  /** `auto`: librbd through the native addon when it loads, the rbd/ceph CLIs otherwise. */
  client: "auto" | "librbd" | "cli";
  reservedPercentage: number;
  maxOverSubscriptionRatio: number;
  /** Total capacity = free + used in the pool, rather than the whole cluster's size (Cinder's default). */
  reportDynamicTotalCapacity: boolean;
}

/** The rbd driver, which also says which path it took to the cluster. */
export interface RbdDriver extends VolumeDriver {
  readonly client: "librbd" | "cli";
  /** Why `auto` fell back to the CLIs (the addon's load error), if it did. */
  readonly fallbackReason: string | undefined;
}

/** Replaces the real cluster clients (unit tests). */
export interface RbdDriverDependencies {
  client?: RbdClient;
  run?: RunCommand;
}

const UUID_SOURCE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const VOLUME_IMAGE = new RegExp(`^volume-(${UUID_SOURCE})$`);
/** An RBD snapshot name we accept from a user: no spec separators or control characters. */
const SNAP_NAME = /^[^@/\s\p{Cc}]{1,255}$/u;
/** Temporary snapshots of a source volume, one per clone being made of it (never a row's). */
const CLONE_SNAP_PREFIX = "clone-snap-";
/** Data one librbd write call of a migration takes at most. */
const WRITE_BATCH_BYTES = 8 * 1024 * 1024;
/** Images listed at once when looking for manageable snapshots. */
const LIST_CONCURRENCY = 4;

const dfSchema = z.object({
  stats: z.object({ total_bytes: z.number() }),
  pools: z.array(z.object({ name: z.string(), stats: z.object({ bytes_used: z.number(), max_avail: z.number() }) })),
});
const quotaSchema = z.object({ quota_max_bytes: z.number() });
const monDumpSchema = z.object({ mons: z.array(z.object({ addr: z.string() })) });

/**
 * A driver that keeps each volume as an RBD image `volume-<id>` in one pool and each snapshot as a
 * protected RBD snapshot `volume-<id>@snapshot-<id>`, after Cinder's RBD driver. Volumes made from
 * a snapshot are copy-on-write clones, flattened past `maxCloneDepth`. Every call is idempotent.
 */
export function createRbdDriver(options: RbdDriverOptions, deps: RbdDriverDependencies = {}): RbdDriver {
  const { client: rbd, fallbackReason } = pickClient(options, deps);

  const volumeName = (id: string) => `volume-${checkId(id, "volume")}`;
  const snapshotName = (id: string) => `snapshot-${checkId(id, "snapshot")}`;
  /** The temporary snapshot of a source volume that the clone `id` is made from. */
  const cloneSnapName = (id: string) => `${CLONE_SNAP_PREFIX}${checkId(id, "volume")}`;

  /** Runs a call; a CephError with one of `tolerated` errnos resolves to `undefined`. */
  async function infoIfExists(image: string): Promise<RbdImageInfo | undefined> {
    return tolerate(rbd.imageInfo(image), Errno.ENOENT);
  }

  /** Parents above `image`, counted up to just past the maximum (that is all a caller needs). */
  async function cloneDepth(image: string): Promise<number> {
    let depth = 0;
    let info = await rbd.imageInfo(image);
    while (info.parent && depth <= options.maxCloneDepth) {
      depth += 1;
      // A parent in another pool or namespace is beyond this client's reach: count it and stop.
      if (info.parent.pool !== options.pool || info.parent.namespace !== "") break;
      const parent = await infoIfExists(info.parent.image);
      if (!parent) break;
      info = parent;
    }
    return depth;
  }

  /** Flattens the clones of `image@snapshot`, a few at a time; returns the first failure, if any. */
  async function flattenChildren(children: RbdChild[]): Promise<unknown> {
    let failure: unknown;
    await mapLimit(
      children.filter((c) => !c.trash),
      options.flattenConcurrency,
      async (child) => {
        try {
          await rbd.flatten({ pool: child.pool, namespace: child.namespace, image: child.image });
        } catch (error) {
          // Already flattened or deleted by someone else: that child no longer depends on it.
          if (!isErrno(error, Errno.ENOENT, Errno.EINVAL)) failure ??= error;
        }
      },
    );
    return failure;
  }

  /**
   * Removes a snapshot, first flattening the clones that depend on it so none loses data. Throws
   * SnapshotBusyError when dependants remain (a flatten failed, a clone is in the trash, a new
   * clone appeared meanwhile).
   */
  async function removeSnapshotFlattening(image: string, snap: RbdSnapshot): Promise<void> {
    const where = `${image}@${snap.name}`;
    const children = (await tolerate(rbd.listChildren(image, snap.name), Errno.ENOENT)) ?? [];
    let failure: unknown;
    if (children.length > 0) failure = await flattenChildren(children);
    const busy = async (cause: unknown) => {
      const left = (await tolerate(rbd.listChildren(image, snap.name), Errno.ENOENT)) ?? [];
      const names = left.map((c) => `${c.pool}/${c.image}${c.trash ? " (in trash)" : ""}`).join(", ");
      const why = failure ? `; flattening failed: ${toDriverError(failure, "flatten").message}` : "";
      return new SnapshotBusyError(
        `snapshot ${where} is still in use by ${left.length || "some"} clone(s)${names ? `: ${names}` : ""}${why}`,
        { cause: failure ?? cause },
      );
    };
    if (snap.protected) {
      try {
        await rbd.unprotectSnapshot(image, snap.name);
      } catch (error) {
        // EINVAL: not protected (any more).
        if (isErrno(error, Errno.EBUSY)) throw await busy(error);
        if (!isErrno(error, Errno.EINVAL, Errno.ENOENT)) throw toDriverError(error, `cannot unprotect ${where}`);
      }
    }
    try {
      await rbd.removeSnapshot(image, snap.name);
    } catch (error) {
      if (isErrno(error, Errno.EBUSY)) throw await busy(error);
      if (!isErrno(error, Errno.ENOENT)) throw toDriverError(error, `cannot remove ${where}`);
    }
  }

  /** Protects a snapshot, which a clone of it needs; EBUSY means it already is. */
  async function protect(image: string, snapshot: string): Promise<void> {
    await tolerate(rbd.protectSnapshot(image, snapshot), Errno.EBUSY);
  }

  /** The image `name` of a volume of `sizeBytes`, for a migration's read or write. */
  async function imageForCopy(name: string, sizeBytes: number): Promise<void> {
    let info: RbdImageInfo;
    try {
      info = await rbd.imageInfo(name);
    } catch (error) {
      if (isErrno(error, Errno.ENOENT)) {
        throw new DriverError(`volume image ${name} not found in pool ${options.pool}`, {
          retryable: false,
          kind: "not_found",
        });
      }
      throw toDriverError(error, `cannot inspect ${name}`);
    }
    if (info.size < sizeBytes) {
      throw new DriverError(`${name} has ${info.size} bytes, less than the volume's ${sizeBytes}`, {
        retryable: false,
      });
    }
  }

  const { allocatedExtents, readImage, writeImage } = rbd;
  /**
   * Host-assisted migration through librbd (the CLI client cannot: no copy methods, no
   * capability). Reads only the chunks that hold allocated extents (rbd_diff_iterate2; a fresh
   * image reads zeros, so the stream is sparse) and yields those that are not all zeros; writes batches of up to 8 MiB per call, leaving
   * the gaps as the fresh image has them: zeros.
   */
  const copy: Pick<VolumeDriver, "readVolume" | "writeVolume"> =
    allocatedExtents && readImage && writeImage
      ? {
          async *readVolume(volume: DriverVolume, chunkBytes: number): AsyncIterable<VolumeChunk> {
            const name = volumeName(volume.id);
            const sizeBytes = checkSizeBytes(volume.sizeGb);
            if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0 || chunkBytes > 64 * 1024 * 1024) {
              throw new DriverError(`chunkBytes must be a whole number of bytes up to 64 MiB, got ${chunkBytes}`, {
                retryable: false,
                kind: "invalid",
              });
            }
            await imageForCopy(name, sizeBytes);
            const extents = await allocatedExtents.call(rbd, name).catch((error: unknown) => {
              throw toDriverError(error, `cannot list the allocated extents of ${name}`);
            });
            let next = 0;
            for (const extent of extents) {
              const last = Math.min(extent.offset + extent.length, sizeBytes);
              let offset = Math.max(next, Math.floor(extent.offset / chunkBytes) * chunkBytes);
              while (offset < last) {
                const length = Math.min(chunkBytes, sizeBytes - offset);
                const data = await readImage.call(rbd, name, offset, length).catch((error: unknown) => {
                  throw toDriverError(error, `cannot read ${name} at ${offset}`);
                });
                if (data.byteLength !== length) {
                  throw new DriverError(`reading ${name} at ${offset} returned ${data.byteLength} of ${length} bytes`, {
                    retryable: true,
                  });
                }
                // NOTE: librbd may report a whole object's range where only part of it was
                // written; chunks of zeros from such an object are left out too.
                if (!isAllZero(data)) yield { offset, data };
                offset += length;
              }
              next = Math.max(next, offset);
            }
          },

          async writeVolume(volume: DriverVolume, chunks: AsyncIterable<VolumeChunk>) {
            const name = volumeName(volume.id);
            const sizeBytes = checkSizeBytes(volume.sizeGb);
            await imageForCopy(name, sizeBytes);
            let batch: VolumeChunk[] = [];
            let batchBytes = 0;
            let position = 0;
            const flush = async () => {
              if (batch.length === 0) return;
              const pieces = batch;
              batch = [];
              batchBytes = 0;
              await writeImage.call(rbd, name, pieces).catch((error: unknown) => {
                throw toDriverError(error, `cannot write ${name} at ${pieces[0]?.offset ?? 0}`);
              });
            };
            for await (const chunk of chunks) {
              const end = chunk.offset + chunk.data.byteLength;
              if (!Number.isSafeInteger(chunk.offset) || chunk.offset < position || end > sizeBytes) {
                throw new DriverError(
                  `a chunk of ${chunk.data.byteLength} bytes at offset ${chunk.offset} cannot be written into ${name} ` +
                    `(${sizeBytes} bytes, next offset ${position}): chunks must come in order, without overlap, inside the volume`,
                  { retryable: false, kind: "invalid" },
                );
              }
              position = end;
              // A fresh image reads zeros: what no chunk covers stays as it is.
              if (chunk.data.byteLength === 0) continue;
              batch.push(chunk);
              batchBytes += chunk.data.byteLength;
              if (batchBytes >= WRITE_BATCH_BYTES) await flush();
            }
            await flush();
          },
        }
      : {};

  return {
    client: rbd.kind,
    fallbackReason,
    ...copy,

    async initialize() {
      try {
        await rbd.connect();
      } catch (error) {
        const mapped = toDriverError(error, `cannot reach pool ${options.pool} on Ceph cluster ${options.clusterName}`);
        // A cluster that is down for now is no reason to stop: stats say `down` and calls reconnect.
        // A missing pool, conf or key, refused caps or a missing CLI will not fix themselves.
        if (!mapped.retryable) throw mapped;
      }
    },

    async createVolume(volume: DriverVolume) {
      const name = volumeName(volume.id);
      const size = checkSizeBytes(volume.sizeGb);
      try {
        await rbd.createImage(name, size);
      } catch (error) {
        if (!isErrno(error, Errno.EEXIST)) throw toDriverError(error, `cannot create ${name}`);
        // A retry: the image is ours if it has the size asked for.
        const existing = await rbd.imageInfo(name).catch((e: unknown) => {
          throw toDriverError(e, `cannot inspect ${name}`);
        });
        if (existing.size !== size) {
          throw new DriverError(`${name} already exists with size ${existing.size} bytes, not ${volume.sizeGb} GiB`, {
            retryable: false,
          });
        }
      }
    },

    async deleteVolume(volume: DriverVolume) {
      const name = volumeName(volume.id);
      try {
        const snaps = await tolerate(rbd.listSnapshots(name), Errno.ENOENT);
        if (!snaps) return; // gone already
        // NOTE: the api deletes (or unmanages) a volume's snapshots before the volume, so what is
        // left here is no row's. Clones made from them are other volumes: they are flattened
        // first and keep their data.
        for (const snap of snaps) await removeSnapshotFlattening(name, snap);
        await tolerate(rbd.removeImage(name), Errno.ENOENT);
      } catch (error) {
        if (error instanceof SnapshotBusyError) {
          throw new DriverError(`cannot delete ${name}: ${error.message}`, { retryable: false, cause: error });
        }
        throw toDriverError(error, `cannot delete ${name}`);
      }
    },

    async createSnapshot(snapshot: DriverSnapshot): Promise<SnapshotModelUpdate> {
      const image = volumeName(snapshot.volumeId);
      const snap = snapshotName(snapshot.id);
      try {
        // A retry finds it made and keeps it: the volume may have changed since.
        await rbd.createProtectedSnapshot(image, snap);
      } catch (error) {
        if (isErrno(error, Errno.ENOENT)) {
          throw new DriverError(`volume image ${image} not found in pool ${options.pool}`, { retryable: false });
        }
        throw toDriverError(error, `cannot snapshot ${image} as ${snap}`);
      }
      return { providerLocation: `${options.pool}/${image}@${snap}` };
    },

    async deleteSnapshot(snapshot: DriverSnapshot) {
      const image = volumeName(snapshot.volumeId);
      const snap = snapshotName(snapshot.id);
      try {
        const snaps = await tolerate(rbd.listSnapshots(image), Errno.ENOENT);
        const found = snaps?.find((s) => s.name === snap);
        if (!found) return; // gone already, or gone with its volume
        await removeSnapshotFlattening(image, found);
      } catch (error) {
        throw toDriverError(error, `cannot delete ${image}@${snap}`);
      }
    },

    async createVolumeFromSnapshot(volume: DriverVolume, snapshot: DriverSnapshot) {
      const child = volumeName(volume.id);
      const parent = volumeName(snapshot.volumeId);
      const snap = snapshotName(snapshot.id);
      const size = checkSizeBytes(volume.sizeGb);
      const source = `${parent}@${snap}`;
      try {
        const parentDepth = await tolerate(cloneDepth(parent), Errno.ENOENT);
        let info = await infoIfExists(child);
        if (info?.parent && (info.parent.image !== parent || info.parent.snapshot !== snap)) {
          throw new DriverError(
            `${child} already exists as a clone of ${info.parent.image}@${info.parent.snapshot}, not ${source}`,
            { retryable: false },
          );
        }
        if (!info) {
          if (parentDepth === undefined) {
            throw new DriverError(`source volume image ${parent} not found in pool ${options.pool}`, {
              retryable: false,
            });
          }
          try {
            await protect(parent, snap);
            await tolerate(rbd.clone(parent, snap, child), Errno.EEXIST);
          } catch (error) {
            if (isErrno(error, Errno.ENOENT)) {
              throw new DriverError(`snapshot ${source} not found in pool ${options.pool}`, { retryable: false });
            }
            throw error;
          }
          info = await rbd.imageInfo(child);
        }
        if (info.size > size) {
          throw new DriverError(`${source} holds ${info.size} bytes, more than the ${volume.sizeGb} GiB asked for`, {
            retryable: false,
          });
        }
        if (info.size < size) await rbd.resize(child, size);
        // A retry after a completed flatten finds no parent: nothing left to do.
        const tooDeep = (parentDepth ?? 0) + 1 > options.maxCloneDepth;
        if (info.parent && (options.flattenVolumeFromSnapshot || tooDeep)) await rbd.flatten({ image: child });
      } catch (error) {
        throw toDriverError(error, `cannot create ${child} from ${source}`);
      }
    },

    async createClonedVolume(volume: DriverVolume, sourceVolume: DriverVolume) {
      const child = volumeName(volume.id);
      const parent = volumeName(sourceVolume.id);
      const snap = cloneSnapName(volume.id);
      const size = checkSizeBytes(volume.sizeGb);
      const source = `${parent}@${snap}`;
      // As Cinder's create_cloned_volume: a temporary snapshot of the source (one point in time of
      // a volume that may be in use), protected, cloned copy-on-write. NOTE: the clone is then
      // always flattened and the snapshot removed (Cinder keeps the chain below
      // rbd_max_clone_depth): the source never carries a hidden snapshot, so deleting it or
      // managing its snapshots sees only what rows own.
      try {
        let info = await infoIfExists(child);
        if (!info) {
          try {
            await rbd.createProtectedSnapshot(parent, snap);
            await tolerate(rbd.clone(parent, snap, child), Errno.EEXIST);
          } catch (error) {
            if (isErrno(error, Errno.ENOENT)) {
              throw new DriverError(`source volume image ${parent} not found in pool ${options.pool}`, {
                retryable: false,
              });
            }
            throw error;
          }
          info = await rbd.imageInfo(child);
        }
        if (info.parent && (info.parent.image !== parent || info.parent.snapshot !== snap)) {
          throw new DriverError(
            `${child} already exists as a clone of ${info.parent.image}@${info.parent.snapshot}, not ${source}`,
            { retryable: false },
          );
        }
        if (info.size > size) {
          throw new DriverError(`${parent} holds ${info.size} bytes, more than the ${volume.sizeGb} GiB asked for`, {
            retryable: false,
          });
        }
        if (info.size < size) await rbd.resize(child, size);
        // A retry after a completed flatten finds no parent: nothing left to do but the snapshot.
        if (info.parent) await rbd.flatten({ image: child });
        const left = (await tolerate(rbd.listSnapshots(parent), Errno.ENOENT))?.find((s) => s.name === snap);
        if (left) await removeSnapshotFlattening(parent, left);
      } catch (error) {
        throw toDriverError(error, `cannot clone ${parent} as ${child}`);
      }
    },

    async revertToSnapshot(volume: DriverVolume, snapshot: DriverSnapshot) {
      const image = volumeName(volume.id);
      const snap = snapshotName(snapshot.id);
      const size = checkSizeBytes(volume.sizeGb);
      if (snapshot.volumeId.toLowerCase() !== volume.id.toLowerCase()) {
        throw new DriverError(`snapshot ${snapshot.id} belongs to volume ${snapshot.volumeId}, not ${volume.id}`, {
          retryable: false,
        });
      }
      try {
        await rbd.rollbackSnapshot(image, snap);
        // Rollback also restores the snapshot's size; the volume keeps its own (as in Cinder).
        const info = await rbd.imageInfo(image);
        if (info.size < size) await rbd.resize(image, size);
      } catch (error) {
        if (isErrno(error, Errno.ENOENT)) {
          throw new DriverError(`${image}@${snap} not found in pool ${options.pool}`, { retryable: false });
        }
        throw toDriverError(error, `cannot revert ${image} to ${snap}`);
      }
    },

    // NOTE: nothing on an RBD backend: the image stays in its pool with its features; a type that needs another backend is migrated instead.
    async retype() {
      return true;
    },

    async extendVolume(volume: DriverVolume, newSizeGb: number) {
      const name = volumeName(volume.id);
      const size = checkSizeBytes(newSizeGb);
      try {
        const info = await rbd.imageInfo(name);
        // Already this size or larger: a retry, or nothing to do. Never shrinks.
        if (info.size >= size) return;
        await rbd.resize(name, size);
      } catch (error) {
        if (isErrno(error, Errno.ENOENT)) {
          throw new DriverError(`volume image ${name} not found in pool ${options.pool}`, { retryable: false });
        }
        throw toDriverError(error, `cannot extend ${name} to ${newSizeGb} GiB`);
      }
    },

    async listManageableSnapshots(ownedSnapshotIds: ReadonlySet<string>): Promise<ManageableSnapshot[]> {
      const owned = new Set([...ownedSnapshotIds].map((id) => `snapshot-${id.toLowerCase()}`));
      try {
        const images = (await rbd.imageSizes("volume-")).filter((i) => VOLUME_IMAGE.test(i.name));
        const perImage = await mapLimit(images, LIST_CONCURRENCY, async ({ name }) => {
          const snaps = (await tolerate(rbd.listSnapshots(name), Errno.ENOENT)) ?? [];
          const sourceVolumeId = VOLUME_IMAGE.exec(name)?.[1];
          return snaps
            .filter((s) => !owned.has(s.name) && !s.name.startsWith(CLONE_SNAP_PREFIX))
            .map((s): ManageableSnapshot => {
              const safe = SNAP_NAME.test(s.name);
              return {
                reference: s.name,
                ...(sourceVolumeId ? { sourceVolumeId } : {}),
                sizeGb: Math.ceil(s.size / GIB),
                safeToManage: safe,
                ...(safe ? {} : { reasonNotSafe: "name has characters an RBD snapshot spec cannot carry" }),
              };
            });
        });
        return perImage.flat();
      } catch (error) {
        throw toDriverError(error, `cannot list snapshots in pool ${options.pool}`);
      }
    },

    async manageExistingSnapshot(snapshot: DriverSnapshot, reference: string) {
      const image = volumeName(snapshot.volumeId);
      const target = snapshotName(snapshot.id);
      const from = parseReference(reference, image);
      try {
        const snaps = await rbd.listSnapshots(image);
        let found = snaps.find((s) => s.name === target);
        if (!found) {
          if (!snaps.some((s) => s.name === from)) {
            throw new DriverError(`snapshot ${from} not found on ${image}`, { retryable: false, kind: "not_found" });
          }
          // EEXIST/ENOENT: a concurrent retry renamed it first; the lookup below tells.
          await tolerate(rbd.renameSnapshot(image, from, target), Errno.EEXIST, Errno.ENOENT);
          found = (await rbd.listSnapshots(image)).find((s) => s.name === target);
          if (!found) throw new DriverError(`${image}@${from} vanished while being renamed`, { retryable: true });
        }
        if (!found.protected) await protect(image, target);
        return { sizeGb: Math.ceil(found.size / GIB) };
      } catch (error) {
        if (isErrno(error, Errno.ENOENT)) {
          throw new DriverError(`volume image ${image} not found in pool ${options.pool}`, {
            retryable: false,
            kind: "not_found",
          });
        }
        throw toDriverError(error, `cannot manage ${image}@${from}`);
      }
    },

    async unmanageSnapshot(snapshot: DriverSnapshot) {
      const image = volumeName(snapshot.volumeId);
      const snap = snapshotName(snapshot.id);
      try {
        const found = (await tolerate(rbd.listSnapshots(image), Errno.ENOENT))?.find((s) => s.name === snap);
        if (!found?.protected) return;
        // As Cinder: the snapshot stays; unprotected unless clones still need it.
        const children = await rbd.listChildren(image, snap);
        if (children.length === 0) await tolerate(rbd.unprotectSnapshot(image, snap), Errno.EINVAL, Errno.EBUSY);
      } catch (error) {
        throw toDriverError(error, `cannot unmanage ${image}@${snap}`);
      }
    },

    /**
     * As Cinder: an attaching host opens the image itself through librbd (QEMU, krbd), so there is
     * no export to set up; this checks the image exists and says which monitors to ask.
     */
    async initializeConnection(volume: DriverVolume): Promise<ConnectionInfo> {
      const name = volumeName(volume.id);
      try {
        await rbd.imageInfo(name);
        const monitors = monDumpSchema.parse(await rbd.monDump()).mons.map((m) => monitorAddress(m.addr));
        return {
          driverVolumeType: "rbd",
          data: {
            name: `${options.pool}/${name}`,
            hosts: monitors.map((m) => m.host).join(","),
            ports: monitors.map((m) => m.port).join(","),
            cluster_name: options.clusterName,
            auth_enabled: String(options.secretUuid !== undefined),
            auth_username: options.user,
            ...(options.secretUuid ? { secret_type: "ceph", secret_uuid: options.secretUuid } : {}),
            volume_id: name.slice("volume-".length),
            discard: "true",
          },
        };
      } catch (error) {
        if (isErrno(error, Errno.ENOENT)) {
          throw new DriverError(`volume image ${name} not found in pool ${options.pool}`, {
            retryable: false,
            kind: "not_found",
          });
        }
        throw toDriverError(error, `cannot connect ${name}`);
      }
    },

    async terminateConnection(volume: DriverVolume) {
      // Nothing was exported for the host (see initializeConnection).
      volumeName(volume.id);
    },

    async getStats(): Promise<BackendStats> {
      const common = {
        driver: "rbd",
        poolName: options.pool,
        storageProtocol: "ceph",
        multiattach: true,
        thinProvisioning: true,
        maxOverSubscriptionRatio: options.maxOverSubscriptionRatio,
        reservedPercentage: options.reservedPercentage,
      } as const;
      try {
        const [df, quota, images] = await withTimeout(
          Promise.all([rbd.df(), rbd.poolQuota(), rbd.imageSizes("volume-")]),
          options.timeoutSeconds * 1000,
        );
        const capacity = poolCapacity(dfSchema.parse(df), quotaSchema.parse(quota), options);
        const volumes = images.filter((i) => VOLUME_IMAGE.test(i.name));
        return {
          ...common,
          totalCapacityGb: toGb(capacity.totalBytes),
          freeCapacityGb: toGb(capacity.freeBytes),
          provisionedCapacityGb: toGb(volumes.reduce((sum, v) => sum + v.size, 0)),
          totalVolumes: volumes.length,
          backendState: "up",
        };
      } catch {
        // The scheduler only needs to know not to place volumes here.
        return downStats(common);
      }
    },

    async close() {
      await rbd.close();
    },
  };
}

function pickClient(
  options: RbdDriverOptions,
  deps: RbdDriverDependencies,
): { client: RbdClient; fallbackReason: string | undefined } {
  if (deps.client) return { client: deps.client, fallbackReason: undefined };
  const cli = () =>
    createCliClient({
      pool: options.pool,
      user: options.user,
      clusterName: options.clusterName,
      confPath: options.confPath,
      keyring: options.keyring,
      connectTimeoutMs: options.connectTimeoutSeconds * 1000,
      timeoutMs: options.timeoutSeconds * 1000,
      longTimeoutMs: options.longTimeoutSeconds * 1000,
      run: deps.run,
    });
  if (options.client === "cli") return { client: cli(), fallbackReason: undefined };
  const native = loadRbdNative();
  if (native.binding) {
    return {
      client: createNativeClient(native.binding, {
        pool: options.pool,
        user: options.user,
        clusterName: options.clusterName,
        confPath: options.confPath,
        keyring: options.keyring,
        connectTimeoutSeconds: options.connectTimeoutSeconds,
        timeoutSeconds: options.timeoutSeconds,
      }),
      fallbackReason: undefined,
    };
  }
  if (options.client === "librbd") {
    throw new DriverError(`rbd driver: client "librbd" asked for, but ${native.error.message}`, { retryable: false });
  }
  return { client: cli(), fallbackReason: native.error.message };
}

/**
 * Cinder's RBD capacity: with a pool quota, total is the quota and free what is left of it (never
 * more than the pool can still take); without one, free is what the pool can still take and total
 * the cluster's size, or (dynamic) free + used.
 */
function poolCapacity(
  df: z.infer<typeof dfSchema>,
  quota: z.infer<typeof quotaSchema>,
  options: Pick<RbdDriverOptions, "pool" | "reportDynamicTotalCapacity">,
): { totalBytes: number; freeBytes: number } {
  const pool = df.pools.find((p) => p.name === options.pool);
  if (!pool) throw new Error(`pool ${options.pool} not in ceph df`);
  const { bytes_used: used, max_avail: maxAvail } = pool.stats;
  let totalBytes: number;
  let freeBytes: number;
  if (quota.quota_max_bytes > 0) {
    totalBytes = quota.quota_max_bytes;
    freeBytes = Math.max(Math.min(totalBytes - used, maxAvail), 0);
  } else {
    totalBytes = df.stats.total_bytes;
    freeBytes = maxAvail;
  }
  if (options.reportDynamicTotalCapacity) totalBytes = freeBytes + used;
  return { totalBytes, freeBytes };
}

/** A monitor's `addr` from `mon dump` ("127.0.0.1:6789/0", "[::1]:3300/0") as host and port. */
function monitorAddress(addr: string): { host: string; port: string } {
  const withoutNonce = addr.replace(/\/\d+$/, "");
  const colon = withoutNonce.lastIndexOf(":");
  return { host: withoutNonce.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port: withoutNonce.slice(colon + 1) };
}

/** A manage reference: the snapshot's name on the volume's image, or `<image>@<name>` naming that image. */
function parseReference(reference: unknown, image: string): string {
  const bad = (why: string) =>
    new DriverError(`invalid snapshot reference: ${why}`, { retryable: false, kind: "invalid" });
  if (typeof reference !== "string") throw bad("expected a string");
  const at = reference.indexOf("@");
  const name = at === -1 ? reference : reference.slice(at + 1);
  if (at !== -1 && reference.slice(0, at) !== image) {
    throw bad(`${JSON.stringify(reference.slice(0, 300))} is not a snapshot of ${image}`);
  }
  if (!SNAP_NAME.test(name)) {
    throw bad(`${JSON.stringify(name.slice(0, 300))} is not an RBD snapshot name (1-255 characters, no '@' or '/')`);
  }
  return name;
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the items' order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return results;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
