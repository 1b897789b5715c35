import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** How to reach the cluster; one {@link RbdNativeCluster} serves one pool. */
export interface RbdNativeOptions {
  /** Cluster name (selects `/etc/ceph/<name>.conf` when `confPath` is absent). Defaults to "ceph". */
  clusterName?: string;
  /** Ceph user without the `client.` prefix. Defaults to "admin". */
  user?: string;
  pool: string;
  /** ceph.conf to read; absent: librados's own search ($CEPH_CONF, /etc/ceph/$cluster.conf...). */
  confPath?: string;
  keyring?: string;
  /** Further Ceph settings (`rados_conf_set`), e.g. `{ rados_osd_op_timeout: "30" }`. */
  config?: Record<string, string>;
}

/**
 * The rejection of every call: `errno` is the positive errno librbd/librados returned, `code` its
 * name ("ENOENT", "EBUSY"...), `op` the C function, `target` the image, snapshot or command.
 */
export interface RbdNativeError extends Error {
  errno: number;
  code: string;
  op: string;
  target?: string;
}

/** An image another one links to (a clone's parent, a snapshot's child). */
export interface RbdLinkedImage {
  pool: string;
  namespace: string;
  image: string;
  /** In the trash (a clone v2 child that was deleted but still references its parent). */
  trash: boolean;
}

export interface RbdImageStat {
  size: number;
  parent: (RbdLinkedImage & { snapshot: string }) | null;
}

export interface RbdSnapshotInfo {
  id: number;
  name: string;
  size: number;
  protected: boolean;
}

/**
 * One connection (a rados handle and an io context on the pool), opened by `connect()` and kept
 * until `close()`. Every method runs on the libuv thread pool and returns a promise; names are
 * image and snapshot names in the pool, sizes are bytes. `close()` refuses (EBUSY) while calls are
 * in flight.
 */
export interface RbdNativeCluster {
  readonly connected: boolean;
  connect(): Promise<void>;
  close(): Promise<void>;
  createImage(image: string, size: number): Promise<void>;
  removeImage(image: string): Promise<void>;
  statImage(image: string): Promise<RbdImageStat>;
  listImages(): Promise<string[]>;
  /** Sizes of the images whose name starts with `prefix`, in one thread-pool job. */
  imageSizes(prefix: string): Promise<Array<{ name: string; size: number }>>;
  listSnapshots(image: string): Promise<RbdSnapshotInfo[]>;
  createSnapshot(image: string, snapshot: string): Promise<void>;
  /** Rejects with EBUSY when the snapshot is already protected. */
  protectSnapshot(image: string, snapshot: string): Promise<void>;
  /**
   * Makes the snapshot (one that exists is kept) and protects it (one protected already is fine),
   * on one open of the image.
   */
  createProtectedSnapshot(image: string, snapshot: string): Promise<void>;
  /** Rejects with EINVAL when it is not protected, EBUSY while it has children. */
  unprotectSnapshot(image: string, snapshot: string): Promise<void>;
  removeSnapshot(image: string, snapshot: string): Promise<void>;
  renameSnapshot(image: string, snapshot: string, newName: string): Promise<void>;
  rollbackSnapshot(image: string, snapshot: string): Promise<void>;
  listChildren(image: string, snapshot: string): Promise<RbdLinkedImage[]>;
  clone(parentImage: string, snapshot: string, childImage: string): Promise<void>;
  /** Copies the parent's data into `image`; `pool`/`namespace` name a child outside this pool. */
  flatten(image: string, pool?: string, namespace?: string): Promise<void>;
  /** Grows the image; a smaller size is refused (EINVAL). */
  resize(image: string, size: number): Promise<void>;
  /**
   * Where the image holds data (its parent's included), as a flat list `[offset, length, ...]`
   * of adjacent-merged extents (rbd_diff_iterate2); the rest reads as zeros.
   */
  allocatedExtents(image: string): Promise<number[]>;
  /** `length` bytes (at most 64 MiB) from `offset` (rbd_read2); holes read as zeros. */
  readImage(image: string, offset: number, length: number): Promise<Buffer>;
  /** Writes each piece at its offset (rbd_write2) on one open of the image, then flushes. */
  writeImage(image: string, pieces: ReadonlyArray<{ offset: number; data: Uint8Array }>): Promise<void>;
  /** A monitor command in JSON (`{"prefix":"df","format":"json"}`); resolves with its output. */
  monCommand(command: string): Promise<string>;
}

export interface RbdNativeBinding {
  Cluster: new (options: RbdNativeOptions) => RbdNativeCluster;
  versions(): { librbd: string; librados: string };
}

/** The addon, or why it is not available (not built, or librbd cannot be loaded). */
export type RbdNativeLoad = { binding: RbdNativeBinding; error?: undefined } | { binding?: undefined; error: Error };

const ADDON = new URL("./rbd_native.node", import.meta.url);
let loaded: RbdNativeLoad | undefined;

/** Loads the addon once; never throws. */
export function loadRbdNative(): RbdNativeLoad {
  if (loaded) return loaded;
  if (!existsSync(ADDON)) {
    loaded = {
      error: new Error(
        "the rbd-native addon is not built (librbd-dev and librados-dev were not installed when packages/rbd-native was built)",
      ),
    };
    return loaded;
  }
  try {
    loaded = { binding: createRequire(import.meta.url)(fileURLToPath(ADDON)) as RbdNativeBinding };
  } catch (cause) {
    loaded = { error: new Error(`the rbd-native addon cannot be loaded: ${String(cause)}`, { cause }) };
  }
  return loaded;
}
