/**
 * What the rbd driver asks of a cluster, one pool at a time. Two implementations: librbd through
 * the native addon on one persistent connection (native-client.ts), and the rbd/ceph CLIs
 * (cli-client.ts). Every method rejects with a {@link CephError} carrying the errno (or a
 * DriverError when the client itself cannot work, e.g. no `rbd` binary); sizes are bytes.
 */

/** A clone's parent: the image and snapshot it reads through to. */
export interface RbdParent {
  pool: string;
  namespace: string;
  image: string;
  snapshot: string;
}

export interface RbdImageInfo {
  size: number;
  parent?: RbdParent;
}

export interface RbdSnapshot {
  name: string;
  size: number;
  protected: boolean;
}

/** An image cloned from a snapshot. */
export interface RbdChild {
  pool: string;
  namespace: string;
  image: string;
  /** Deleted (moved to the trash) but still linked: it cannot be flattened by name. */
  trash: boolean;
}

export interface RbdClient {
  /** Which path this is, for logs and benchmarks. */
  readonly kind: "librbd" | "cli";
  /** Checks the cluster and pool answer (the native client opens its connection here). */
  connect(): Promise<void>;
  close(): Promise<void>;
  createImage(image: string, size: number): Promise<void>;
  removeImage(image: string): Promise<void>;
  imageInfo(image: string): Promise<RbdImageInfo>;
  /** Names and sizes of the pool's images whose name starts with `prefix`. */
  imageSizes(prefix: string): Promise<Array<{ name: string; size: number }>>;
  listSnapshots(image: string): Promise<RbdSnapshot[]>;
  createSnapshot(image: string, snapshot: string): Promise<void>;
  /** EBUSY when it is protected already. */
  protectSnapshot(image: string, snapshot: string): Promise<void>;
  /**
   * Makes the snapshot (one that exists is kept) and protects it (one protected already is fine):
   * with librbd on one open of the image, where two calls open it twice.
   */
  createProtectedSnapshot(image: string, snapshot: string): Promise<void>;
  /** EINVAL when it is not protected, EBUSY while clones depend on it. */
  unprotectSnapshot(image: string, snapshot: string): Promise<void>;
  removeSnapshot(image: string, snapshot: string): Promise<void>;
  renameSnapshot(image: string, snapshot: string, newName: string): Promise<void>;
  rollbackSnapshot(image: string, snapshot: string): Promise<void>;
  listChildren(image: string, snapshot: string): Promise<RbdChild[]>;
  /** A copy-on-write clone of `parent@snapshot` in the same pool. */
  clone(parent: string, snapshot: string, child: string): Promise<void>;
  /** Copies the parent's data into the image so it no longer depends on it. */
  flatten(image: { pool?: string; namespace?: string; image: string }): Promise<void>;
  /** Grows the image (never shrinks). */
  resize(image: string, size: number): Promise<void>;
  /**
   * Where the image holds data (a clone's parent's included), as sorted, non-overlapping extents;
   * the rest reads as zeros. Absent (with readImage and writeImage) on a client that cannot move
   * an image's bytes: the driver then offers no migration by copy.
   */
  allocatedExtents?(image: string): Promise<Array<{ offset: number; length: number }>>;
  /** `length` bytes of the image from `offset` (holes read as zeros). */
  readImage?(image: string, offset: number, length: number): Promise<Uint8Array>;
  /** Writes each piece at its offset, then flushes. */
  writeImage?(image: string, pieces: ReadonlyArray<{ offset: number; data: Uint8Array }>): Promise<void>;
  /** `ceph df` as JSON. */
  df(): Promise<unknown>;
  /** `ceph osd pool get-quota <pool>` as JSON. */
  poolQuota(): Promise<unknown>;
  /** `ceph mon dump` as JSON (the monitors an attaching host connects to). */
  monDump(): Promise<unknown>;
}
