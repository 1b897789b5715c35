import { type Db, getSnapshotElevated, getVolumeElevated } from "@cinderblock/db";
import { CinderblockError, isAdmin, type RequestContext, SNAPSHOT_OPERATIONS } from "@cinderblock/domain";
import { type VolumeHostServiceServer, VolumeHostServiceService } from "@cinderblock/proto";
import { createPeerAuthenticator, type ErrorReporter, Server, statedIdentityGuard, unary } from "@cinderblock/rpc";
import { DriverError, type VolumeDriver } from "./drivers/driver.js";

/** Options for {@link createHostServer}. */
export interface HostServerOptions {
  db: Db;
  hostName: string;
  drivers: ReadonlyMap<string, VolumeDriver>;
  report: ErrorReporter;
  /** Names (SAN DNS, or CN) a caller's client certificate must carry: the api's. */
  allowedClients: readonly string[];
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
 * for an attach). Bind it with mutual TLS (serverTls with a client CA): only a caller whose
 * certificate names one of `allowedClients` gets through, and the project, user and roles it
 * states in metadata are those of the api's caller. Even so the host checks again what the api
 * checked: it serves only volumes on this host, of the stated project (any project for an admin),
 * and the admin-only calls (manage, unmanage, listing) only for an admin.
 */
export function createHostServer(options: HostServerOptions): Server {
  const { db } = options;
  // NOTE: the caller's certificate is checked before any handler runs; health (not behind the guard)
  // is left open to anyone the TLS handshake let in (a certificate from the client CA).
  const guard = statedIdentityGuard(createPeerAuthenticator({ allowedClients: options.allowedClients }));
  const guarded = <Req, Res>(method: string, handler: (request: Req, ctx: RequestContext) => Promise<Res>) =>
    unary(method, options.report, handler, guard);

  async function driverAndVolume(ctx: RequestContext, volumeId: string) {
    const volume = await getVolumeElevated(db, volumeId);
    // NOTE: another project's volume is "not found", as the api would say.
    if (!volume || (!isAdmin(ctx) && volume.projectId !== ctx.projectId)) {
      throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
    }
    const [hostName, backend] = (volume.host ?? "").split("@");
    const driver = options.drivers.get(backend ?? "");
    if (hostName !== options.hostName || !driver) {
      throw new CinderblockError("FAILED_PRECONDITION", `volume ${volumeId} is not on host ${options.hostName}`);
    }
    return { driver, volume: { id: volume.id, sizeGb: volume.sizeGb } };
  }

  function requireAdmin(ctx: RequestContext, what: string): void {
    if (!isAdmin(ctx)) throw new CinderblockError("PERMISSION_DENIED", `${what} requires the admin role`);
  }

  /**
   * The snapshot row a manage or unmanage is about: of this volume, and in the status the api put
   * it in before calling (so the backend is never touched for a snapshot nobody is managing).
   */
  async function snapshotInFlight(ctx: RequestContext, snapshotId: string, volumeId: string, status: string) {
    const snapshot = await getSnapshotElevated(db, snapshotId);
    if (!snapshot || snapshot.volumeId !== volumeId || (!isAdmin(ctx) && snapshot.projectId !== ctx.projectId)) {
      throw new CinderblockError("NOT_FOUND", `snapshot ${snapshotId} of volume ${volumeId} not found`);
    }
    if (snapshot.status !== status) {
      throw new CinderblockError(
        "FAILED_PRECONDITION",
        `snapshot ${snapshotId} status must be ${status}, but is ${snapshot.status}`,
      );
    }
  }

  const service: VolumeHostServiceServer = {
    initializeConnection: guarded("InitializeConnection", async (req, ctx) => {
      const { driver, volume } = await driverAndVolume(ctx, req.volumeId);
      const info = await driver.initializeConnection(volume, req.connector).catch((e: unknown) => {
        throw asCallError(e);
      });
      return { driverVolumeType: info.driverVolumeType, data: info.data };
    }),
    hostListManageableSnapshots: guarded("HostListManageableSnapshots", async (req, ctx) => {
      requireAdmin(ctx, "listing manageable snapshots");
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
    hostManageSnapshot: guarded("HostManageSnapshot", async (req, ctx) => {
      requireAdmin(ctx, "managing a snapshot");
      const { driver, volume } = await driverAndVolume(ctx, req.volumeId);
      await snapshotInFlight(ctx, req.snapshotId, volume.id, SNAPSHOT_OPERATIONS.manage.start.to);
      const { sizeGb } = await driver
        .manageExistingSnapshot({ id: req.snapshotId, volumeId: volume.id, volumeSizeGb: volume.sizeGb }, req.reference)
        .catch((e: unknown) => {
          throw asCallError(e);
        });
      return { sizeGb };
    }),
    hostUnmanageSnapshot: guarded("HostUnmanageSnapshot", async (req, ctx) => {
      requireAdmin(ctx, "unmanaging a snapshot");
      const { driver, volume } = await driverAndVolume(ctx, req.volumeId);
      await snapshotInFlight(ctx, req.snapshotId, volume.id, SNAPSHOT_OPERATIONS.unmanage.start.to);
      await driver
        .unmanageSnapshot({ id: req.snapshotId, volumeId: volume.id, volumeSizeGb: volume.sizeGb })
        .catch((e: unknown) => {
          throw asCallError(e);
        });
      return {};
    }),
    terminateConnection: guarded("TerminateConnection", async (req, ctx) => {
      const { driver, volume } = await driverAndVolume(ctx, req.volumeId);
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
