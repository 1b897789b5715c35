import { type Db, getVolumeElevated } from "@cinderblock/db";
import { CinderblockError } from "@cinderblock/domain";
import { type VolumeHostServiceServer, VolumeHostServiceService } from "@cinderblock/proto";
import { type ErrorReporter, Server, unary } from "@cinderblock/rpc";
import { DriverError, type VolumeDriver } from "./drivers/driver.js";

/** Options for {@link createHostServer}. */
export interface HostServerOptions {
  db: Db;
  hostName: string;
  drivers: ReadonlyMap<string, VolumeDriver>;
  report: ErrorReporter;
}

/**
 * A driver failure as the api's caller should see it: the driver's words, and a fitting code
 * (retryable: UNAVAILABLE; not found: NOT_FOUND; bad input: INVALID_ARGUMENT; any other refusal:
 * FAILED_PRECONDITION). Anything else goes on to the boundary (INTERNAL, logged here).
 */
function asCallError(error: unknown): unknown {
  if (!(error instanceof DriverError)) return error;
  const code = error.retryable
    ? "UNAVAILABLE"
    : error.kind === "not_found"
      ? "NOT_FOUND"
      : error.kind === "invalid"
        ? "INVALID_ARGUMENT"
        : "FAILED_PRECONDITION";
  return new CinderblockError(code, error.message, { cause: error });
}

/**
 * The volume host's internal gRPC server: calls the api needs answered at once (connection info
 * for an attach). It serves only volumes whose backend lives on this host.
 */
export function createHostServer(options: HostServerOptions): Server {
  const { db } = options;

  async function driverAndVolume(volumeId: string) {
    const volume = await getVolumeElevated(db, volumeId);
    if (!volume) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
    const [hostName, backend] = (volume.host ?? "").split("@");
    const driver = options.drivers.get(backend ?? "");
    if (hostName !== options.hostName || !driver) {
      throw new CinderblockError("FAILED_PRECONDITION", `volume ${volumeId} is not on host ${options.hostName}`);
    }
    return { driver, volume: { id: volume.id, sizeGb: volume.sizeGb } };
  }

  const service: VolumeHostServiceServer = {
    initializeConnection: unary("InitializeConnection", options.report, async (req) => {
      const { driver, volume } = await driverAndVolume(req.volumeId);
      const info = await driver.initializeConnection(volume, req.connector).catch((e: unknown) => {
        throw asCallError(e);
      });
      return { driverVolumeType: info.driverVolumeType, data: info.data };
    }),
    hostListManageableSnapshots: unary("HostListManageableSnapshots", options.report, async (req) => {
      const [hostName, backend] = req.backend.split("@");
      const driver = options.drivers.get(backend ?? "");
      if (hostName !== options.hostName || !driver) {
        throw new CinderblockError("NOT_FOUND", `backend ${req.backend} is not on host ${options.hostName}`);
      }
      const found = await driver.listManageableSnapshots(new Set(req.ownedSnapshotIds)).catch((e: unknown) => {
        throw asCallError(e);
      });
      return {
        snapshots: found.map((m) => ({
          reference: m.reference,
          sourceVolumeId: m.sourceVolumeId ?? "",
          sizeGb: m.sizeGb,
          safeToManage: m.safeToManage,
          reasonNotSafe: m.reasonNotSafe ?? "",
        })),
      };
    }),
    hostManageSnapshot: unary("HostManageSnapshot", options.report, async (req) => {
      const { driver, volume } = await driverAndVolume(req.volumeId);
      const { sizeGb } = await driver
        .manageExistingSnapshot({ id: req.snapshotId, volumeId: volume.id, volumeSizeGb: volume.sizeGb }, req.reference)
        .catch((e: unknown) => {
          throw asCallError(e);
        });
      return { sizeGb };
    }),
    hostUnmanageSnapshot: unary("HostUnmanageSnapshot", options.report, async (req) => {
      const { driver, volume } = await driverAndVolume(req.volumeId);
      await driver
        .unmanageSnapshot({ id: req.snapshotId, volumeId: volume.id, volumeSizeGb: volume.sizeGb })
        .catch((e: unknown) => {
          throw asCallError(e);
        });
      return {};
    }),
    terminateConnection: unary("TerminateConnection", options.report, async (req) => {
      const { driver, volume } = await driverAndVolume(req.volumeId);
      await driver.terminateConnection(volume, req.connector).catch((e: unknown) => {
        throw asCallError(e);
      });
      return {};
    }),
  };
  const server = new Server();
  server.addService(VolumeHostServiceService, service);
  return server;
}
