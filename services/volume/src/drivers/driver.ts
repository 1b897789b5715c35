/**
 * The storage driver contract, after Cinder's `VolumeDriver`. One driver instance serves one
 * backend. Every call is idempotent: repeating it for the same volume/snapshot id (a retried
 * operation) does no harm and succeeds if the first attempt already did the work.
 */

/** What a driver needs to know about a volume. */
export interface DriverVolume {
  id: string;
  sizeGb: number;
}

/** What a driver needs to know about a snapshot. */
export interface DriverSnapshot {
  id: string;
  volumeId: string;
  volumeSizeGb: number;
}

/** A snapshot on the backend that no row owns yet (for manage-existing). */
export interface ManageableSnapshot {
  /** The backend's own name for it (e.g. an LV name, an RBD snap name). */
  reference: string;
  /** The volume it belongs to, when the driver can tell. */
  sourceVolumeId?: string;
  sizeGb: number;
  /** False when something prevents managing it (the reason says what). */
  safeToManage: boolean;
  reasonNotSafe?: string;
}

/** How an attaching host reaches a volume (Cinder's connection_info). */
export interface ConnectionInfo {
  /** e.g. "local", "rbd", "iscsi". */
  driverVolumeType: string;
  data: Record<string, string>;
}

/** Fields a driver may ask the manager to store on the snapshot. */
export interface SnapshotModelUpdate {
  providerLocation?: string;
}

/** A volume type as a driver sees it (Cinder hands its drivers the type with its extra specs). */
interface DriverVolumeType {
  id: string;
  name: string;
  extraSpecs: Readonly<Record<string, string>>;
}

/**
 * What a retype changes (Cinder's `volume_types.volume_types_diff`): each extra spec or QoS spec
 * that differs, as [old, new] (undefined where the type has none).
 */
export interface VolumeTypeDiff {
  extraSpecs: Readonly<Record<string, readonly [string | undefined, string | undefined]>>;
  qosSpecs: Readonly<Record<string, readonly [string | undefined, string | undefined]>>;
}

/** One piece of a volume's bytes, at `offset`. */
export interface VolumeChunk {
  offset: number;
  data: Uint8Array;
}

/** Capacity and state a backend reports to the scheduler. */
export interface BackendStats {
  /** Driver name, e.g. "file", "lvm", "rbd". */
  driver: string;
  /**
   * The pool new volumes go to (Cinder's `pool_name`, the `#pool` of `host@backend#pool`): the
   * directory for file, the VG (thick) or thin pool (thin) for LVM, the Ceph pool for RBD.
   */
  poolName: string;
  /** How hosts reach its volumes, Cinder's `storage_protocol` ("file", "iSCSI", "ceph"). */
  storageProtocol: string;
  /** Whether a volume may be attached to several instances at once (Cinder's `multiattach`). */
  multiattach: boolean;
  totalCapacityGb: number;
  freeCapacityGb: number;
  provisionedCapacityGb: number;
  thinProvisioning: boolean;
  maxOverSubscriptionRatio: number;
  reservedPercentage: number;
  totalVolumes: number;
  /** "up" when the backend answers, "down" otherwise. */
  backendState: "up" | "down";
}

/**
 * What a non-retryable driver failure is about, when a caller should be told more than "refused":
 * `not_found` (the object asked for is not on the backend), `invalid` (the input can never name
 * one, e.g. a malformed reference). Unset: the backend refused (a conflict, a wrong state).
 */
export type DriverErrorKind = "not_found" | "invalid";

/**
 * A driver failure. `retryable` tells the manager whether the same call may succeed later
 * (a timeout, a busy backend) or never will (a missing volume, bad input); `kind` says which of
 * the latter it is, for the host's gRPC status.
 */
export class DriverError extends Error {
  readonly retryable: boolean;
  readonly kind: DriverErrorKind | undefined;
  constructor(message: string, options: { retryable: boolean; cause?: unknown; kind?: DriverErrorKind }) {
    super(message, { cause: options.cause });
    this.name = "DriverError";
    this.retryable = options.retryable;
    this.kind = options.kind;
  }
}

/** A snapshot that cannot be deleted while dependants exist; the manager returns it to `available`. */
export class SnapshotBusyError extends DriverError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { retryable: false, cause: options.cause });
    this.name = "SnapshotBusyError";
  }
}

export interface VolumeDriver {
  /** Prepare the backend (create directories, open connections). Called once before any other call. */
  initialize(): Promise<void>;
  createVolume(volume: DriverVolume): Promise<void>;
  /** Removing a volume that is already gone succeeds. */
  deleteVolume(volume: DriverVolume): Promise<void>;
  /** Take a point-in-time copy of the snapshot's volume. May return fields to store on the snapshot. */
  createSnapshot(snapshot: DriverSnapshot): Promise<SnapshotModelUpdate | undefined>;
  /**
   * Removing a snapshot that is already gone succeeds. Throws {@link SnapshotBusyError} when
   * dependants (clones, volumes made from it) keep it from being deleted.
   */
  deleteSnapshot(snapshot: DriverSnapshot): Promise<void>;
  /** Makes `volume` (not yet existing) with the snapshot's content; `volume.sizeGb` ≥ the snapshot's. */
  createVolumeFromSnapshot(volume: DriverVolume, snapshot: DriverSnapshot): Promise<void>;
  /**
   * Makes `volume` (not yet existing) a copy of `source`'s content as of now (Cinder's
   * `create_cloned_volume`); `volume.sizeGb` ≥ the source's, the extra reads as zeros. The source
   * may be attached and in use: the copy is of one point in time where the backend can take one.
   */
  createClonedVolume(volume: DriverVolume, source: DriverVolume): Promise<void>;
  /** Rolls `volume` back to `snapshot` (its latest); the snapshot still exists afterwards. */
  revertToSnapshot(volume: DriverVolume, snapshot: DriverSnapshot): Promise<void>;
  /** Grows the volume to `newSizeGb` (never shrinks). */
  extendVolume(volume: DriverVolume, newSizeGb: number): Promise<void>;
  /**
   * Cinder's `driver.retype`: make the volume what `newType` asks of this backend, in place.
   * True when done (or nothing on the backend had to change); false when this backend cannot do
   * it in place (the manager then fails the retype, or it is migrated).
   */
  retype(volume: DriverVolume, newType: DriverVolumeType, diff: VolumeTypeDiff): Promise<boolean>;
  /**
   * Host-assisted migration, source side: the volume's bytes in increasing offset order, in
   * chunks of at most `chunkBytes` that never overlap, read as the consumer asks for them
   * (backpressure: a driver reads at most one bounded batch, a few MiB, ahead of the consumer).
   * The stream may be sparse: a driver may leave out any region that reads as zeros (an
   * unallocated extent, a block it found all zeros on the storage side), including the volume's
   * tail. Every consumer treats a gap, and the end up to the volume's size (`sizeGb` GiB), as
   * zeros: a digest hashes them as zero bytes (see volume-digest.ts).
   * Absent: this backend's volumes cannot be migrated by copy.
   */
  readVolume?(volume: DriverVolume, chunkBytes: number): AsyncIterable<VolumeChunk>;
  /**
   * Host-assisted migration, target side: writes `chunks` (as readVolume yields them: increasing
   * offsets, no overlap, inside the volume; a driver may refuse others) into `volume` (created by
   * createVolume, of the same size). What no chunk covers must read as zeros afterwards, whatever
   * the backend's fresh volumes hold (a driver zeroes those regions on the storage side; no
   * bytes are shipped for them). Absent: this backend cannot receive a migrated volume.
   */
  writeVolume?(volume: DriverVolume, chunks: AsyncIterable<VolumeChunk>): Promise<void>;
  /** Snapshots on the backend that no row owns: `ownedSnapshotIds` are the ones we already manage. */
  listManageableSnapshots(ownedSnapshotIds: ReadonlySet<string>): Promise<ManageableSnapshot[]>;
  /** Takes over an existing snapshot found by `reference`, renaming it to our naming; returns its size. */
  manageExistingSnapshot(snapshot: DriverSnapshot, reference: string): Promise<{ sizeGb: number }>;
  /** Stops managing a snapshot: the storage stays, only our bookkeeping lets go (may rename it back). */
  unmanageSnapshot(snapshot: DriverSnapshot): Promise<void>;
  /** Exports the volume to the attaching host described by `connector`; returns how to reach it. */
  initializeConnection(volume: DriverVolume, connector: Record<string, string>): Promise<ConnectionInfo>;
  /** Ends the export made for `connector`; an export already gone counts as success. */
  terminateConnection(volume: DriverVolume, connector: Record<string, string>): Promise<void>;
  getStats(): Promise<BackendStats>;
  /** Release resources (connections, timers). */
  close(): Promise<void>;
}
