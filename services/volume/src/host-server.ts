import { type Db, getSnapshotElevated, getVolumeElevated } from "@cinderblock/db";
import { CinderblockError, isAdmin, type RequestContext, SNAPSHOT_OPERATIONS } from "@cinderblock/domain";
import { type ReadVolumeResponse, type VolumeHostServiceServer, VolumeHostServiceService } from "@cinderblock/proto";
import {
  createPeerAuthenticator,
  type ErrorReporter,
  Server,
  serverStreaming,
  statedIdentityGuard,
  unary,
} from "@cinderblock/rpc";
import { GIB } from "./drivers/checks.js";
import { DriverError, type VolumeDriver } from "./drivers/driver.js";
import { isAllZero, VolumeDigest } from "./drivers/volume-digest.js";

/** Options for {@link createHostServer}. */
export interface HostServerOptions {
  db: Db;
  hostName: string;
  drivers: ReadonlyMap<string, VolumeDriver>;
  report: ErrorReporter;
  /** Names (SAN DNS, or CN) a caller's client certificate must carry: the api's. */
  allowedClients: readonly string[];
  /**
   * Names the other volume hosts' client certificates carry: they may call only the migration
   * methods (ReadVolume, DeleteMigrationSource), and nothing else of this host.
   */
  allowedPeers: readonly string[];
  /** Aborted when the host drains: an open ReadVolume ends with UNAVAILABLE (the target retries). */
  stop?: AbortSignal;
}

/** Bytes per ReadVolume message (gRPC's default maximum message is 4 MiB). */
const COPY_CHUNK_BYTES = 1024 * 1024;

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
  // NOTE: a second guard for host-to-host calls: a peer's certificate opens only the migration
  // methods, and the api's does not open them.
  const peerGuard = statedIdentityGuard(createPeerAuthenticator({ allowedClients: options.allowedPeers }));

  /** The volume a migration reads or cleans up: on this host's `backend`, in the state the step needs. */
  function migrationDriver(_volumeId: string, backend: string): VolumeDriver {
    const [hostName, name] = backend.split("@");
    const driver = options.drivers.get(name ?? "");
    if (hostName !== options.hostName || !driver) {
      throw new CinderblockError("FAILED_PRECONDITION", `backend ${backend} is not on host ${options.hostName}`);
    }
    return driver;
  }

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
    readVolume: serverStreaming(
      "ReadVolume",
      options.report,
      async function* (req: { volumeId: string; operationId: string }, _ctx, signal) {
        const volume = await getVolumeElevated(db, req.volumeId);
        // Only a volume being migrated is read, and only by its migration.
        if (volume?.status !== "retyping" || volume.migrationStatus !== "migrating") {
          throw new CinderblockError("FAILED_PRECONDITION", `volume ${req.volumeId} is not being migrated`);
        }
        const driver = migrationDriver(volume.id, volume.host ?? "");
        if (!driver.readVolume) {
          throw new CinderblockError("FAILED_PRECONDITION", `backend ${volume.host} cannot be read for a migration`);
        }
        // NOTE: the stream may be sparse (driver.ts): what it leaves out is hashed as zeros, and
        // the digest covers the volume's whole size.
        const size = volume.sizeGb * GIB;
        const hash = new VolumeDigest(size);
        try {
          for await (const chunk of driver.readVolume({ id: volume.id, sizeGb: volume.sizeGb }, COPY_CHUNK_BYTES)) {
            if (signal.aborted) return;
            hash.update(chunk);
            if (isAllZero(chunk.data)) continue;
            const message: ReadVolumeResponse = {
              offset: chunk.offset,
              data: Buffer.from(chunk.data),
              sha256: "",
              sizeBytes: 0,
            };
            yield message;
          }
        } catch (error) {
          throw asCallError(error);
        }
        yield { offset: size, data: Buffer.alloc(0), sha256: hash.digest(), sizeBytes: size };
      },
      { guard: peerGuard, stop: options.stop },
    ),
    deleteMigrationSource: unary(
      "DeleteMigrationSource",
      options.report,
      async (req: { volumeId: string; operationId: string; sourceBackend: string }) => {
        const driver = migrationDriver(req.volumeId, req.sourceBackend);
        const volume = await getVolumeElevated(db, req.volumeId);
        // Only once the volume lives elsewhere (its row moved with migration_status success).
        if (!volume || volume.host === req.sourceBackend || volume.migrationStatus !== "success") {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `volume ${req.volumeId} has not moved off ${req.sourceBackend}; its copy there stays`,
          );
        }
        await driver.deleteVolume({ id: volume.id, sizeGb: volume.sizeGb }).catch((e: unknown) => {
          throw asCallError(e);
        });
        return {};
      },
      peerGuard,
    ),
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
