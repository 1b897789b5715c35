import { gauge, histogram, withSpan } from "@cinderblock/telemetry";
import { type BackendStats, SnapshotBusyError, type VolumeDriver } from "./driver.js";

const operationSeconds = histogram({
  name: "cinderblock_volume_driver_operation_seconds",
  help: "Seconds a driver call took, by operation, driver, backend and outcome (success, busy, error); _count counts outcomes",
  labelNames: ["operation", "driver", "backend", "outcome"] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
});

const BACKEND = ["backend", "driver"] as const;
const totalGb = gauge({
  name: "cinderblock_backend_total_capacity_gb",
  help: "Backend capacity in GiB, as last reported by its driver",
  labelNames: BACKEND,
});
const freeGb = gauge({
  name: "cinderblock_backend_free_capacity_gb",
  help: "Free backend capacity in GiB, as last reported by its driver",
  labelNames: BACKEND,
});
const provisionedGb = gauge({
  name: "cinderblock_backend_provisioned_capacity_gb",
  help: "GiB provisioned to volumes on the backend, as last reported by its driver",
  labelNames: BACKEND,
});
const volumes = gauge({
  name: "cinderblock_backend_volumes",
  help: "Volumes on the backend, as last reported by its driver",
  labelNames: BACKEND,
});
const up = gauge({
  name: "cinderblock_backend_up",
  help: "1 when the backend answered its driver's last stats call, else 0",
  labelNames: BACKEND,
});

/** The labels of one backend's metrics. */
export interface DriverLabels {
  /** Driver name (`file`, `lvm`, `rbd`). */
  driver: string;
  /** The backend, `<host>@<backend>`. */
  backend: string;
}

/**
 * The driver, with every call timed (cinderblock_volume_driver_operation_seconds) and run in a span
 * (except `getStats`), and each `getStats` result kept in the backend capacity gauges. Behaviour is unchanged.
 */
export function instrumentDriver(driver: VolumeDriver, labels: DriverLabels): VolumeDriver {
  function timed<A extends unknown[], R>(operation: string, call: (...args: A) => Promise<R>, traced = true) {
    const attributes = { "cinderblock.driver": labels.driver, "cinderblock.backend": labels.backend };
    const run = async (args: A): Promise<R> => {
      const started = performance.now();
      let outcome = "success";
      try {
        return await call(...args);
      } catch (error) {
        outcome = error instanceof SnapshotBusyError ? "busy" : "error";
        throw error;
      } finally {
        operationSeconds.observe({ ...labels, operation, outcome }, (performance.now() - started) / 1000);
      }
    };
    return (...args: A): Promise<R> =>
      traced ? withSpan(`driver ${operation}`, { kind: "internal", attributes }, () => run(args)) : run(args);
  }
  // NOTE: not traced: the heartbeat calls it every few seconds, each call would be a trace of its own.
  const getStats = timed("get_stats", () => driver.getStats(), false);
  return {
    initialize: () => driver.initialize(),
    close: () => driver.close(),
    createVolume: timed("create_volume", (v) => driver.createVolume(v)),
    deleteVolume: timed("delete_volume", (v) => driver.deleteVolume(v)),
    createSnapshot: timed("create_snapshot", (s) => driver.createSnapshot(s)),
    deleteSnapshot: timed("delete_snapshot", (s) => driver.deleteSnapshot(s)),
    createVolumeFromSnapshot: timed("create_volume_from_snapshot", (v, s) => driver.createVolumeFromSnapshot(v, s)),
    createClonedVolume: timed("create_cloned_volume", (v, source) => driver.createClonedVolume(v, source)),
    revertToSnapshot: timed("revert_to_snapshot", (v, s) => driver.revertToSnapshot(v, s)),
    extendVolume: timed("extend_volume", (v, size) => driver.extendVolume(v, size)),
    retype: timed("retype", (v, type, diff) => driver.retype(v, type, diff)),
    // NOTE: the copy's two ends are streams, timed by the migration that uses them, not here.
    ...(driver.readVolume && { readVolume: driver.readVolume.bind(driver) }),
    ...(driver.writeVolume && { writeVolume: timed("write_volume", driver.writeVolume.bind(driver)) }),
    listManageableSnapshots: timed("list_manageable_snapshots", (owned) => driver.listManageableSnapshots(owned)),
    manageExistingSnapshot: timed("manage_existing_snapshot", (s, ref) => driver.manageExistingSnapshot(s, ref)),
    unmanageSnapshot: timed("unmanage_snapshot", (s) => driver.unmanageSnapshot(s)),
    initializeConnection: timed("initialize_connection", (v, c) => driver.initializeConnection(v, c)),
    terminateConnection: timed("terminate_connection", (v, c) => driver.terminateConnection(v, c)),
    async getStats(): Promise<BackendStats> {
      const stats = await getStats();
      totalGb.set(labels, stats.totalCapacityGb);
      freeGb.set(labels, stats.freeCapacityGb);
      provisionedGb.set(labels, stats.provisionedCapacityGb);
      volumes.set(labels, stats.totalVolumes);
      up.set(labels, stats.backendState === "up" ? 1 : 0);
      return stats;
    },
  };
}
