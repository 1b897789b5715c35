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

/** Fields a driver may ask the manager to store on the snapshot. */
export interface SnapshotModelUpdate {
  providerLocation?: string;
}

/** Capacity and state a backend reports to the scheduler. */
export interface BackendStats {
  /** Driver name, e.g. "file", "lvm", "rbd". */
  driver: string;
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
 * A driver failure. `retryable` tells the manager whether the same call may succeed later
 * (a timeout, a busy backend) or never will (a missing volume, bad input).
 */
export class DriverError extends Error {
  readonly retryable: boolean;
  constructor(message: string, options: { retryable: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = "DriverError";
    this.retryable = options.retryable;
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
  /** Removing a snapshot that is already gone succeeds. */
  deleteSnapshot(snapshot: DriverSnapshot): Promise<void>;
  getStats(): Promise<BackendStats>;
  /** Release resources (connections, timers). */
  close(): Promise<void>;
}
