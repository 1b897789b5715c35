import type { VolumeHostCalls } from "@cinderblock/domain";
import { VolumeHostServiceClient } from "@cinderblock/proto";
import { traceCarrier } from "@cinderblock/telemetry";
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { fromServiceError } from "./errors.js";
import { clientTls, type TlsOptions } from "./tls.js";

/** Options for {@link createVolumeHostCalls}. */
export interface VolumeHostCallsOptions {
  /** Milliseconds a call may take (default 30 s). */
  deadlineMs?: number;
  /**
   * The api's client certificate and key, and the CA of the hosts' certificates: volume hosts
   * accept only mutual TLS. A host's certificate must name the host part of the address it
   * advertises (a DNS name or an IP address), which is what is verified.
   */
  tls: TlsOptions & { caFile: string };
}

function identity(ctx: {
  requestId: string;
  projectId: string;
  userId: string;
  roles: string[];
  isAdmin?: boolean;
}): Metadata {
  const md = new Metadata();
  md.set("x-project-id", ctx.projectId);
  md.set("x-user-id", ctx.userId);
  md.set("x-request-id", ctx.requestId);
  if (ctx.roles.length > 0) md.set("x-roles", ctx.roles.join(","));
  // The api's policy decided who is an admin (context_is_admin); the host takes its word (mTLS).
  if (ctx.isAdmin) md.set("x-is-admin", "true");
  // The host's server span continues the caller's trace.
  for (const [key, value] of Object.entries(traceCarrier() ?? {})) md.set(key, value);
  return md;
}

/**
 * One VolumeHostService client (and HTTP/2 connection) per address, kept for reuse, all on one set
 * of credentials: the files are read once here (bad ones fail now) and re-read while in use, so a
 * renewed client certificate reaches new connections.
 */
function hostClients(tls: Parameters<typeof clientTls>[0]) {
  const clients = new Map<string, VolumeHostServiceClient>();
  const channelCredentials = clientTls(tls);
  return {
    client(address: string): VolumeHostServiceClient {
      let c = clients.get(address);
      if (!c) {
        c = new VolumeHostServiceClient(address, channelCredentials);
        clients.set(address, c);
      }
      return c;
    },
    close(): void {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}

/**
 * Calls to volume hosts' internal gRPC servers, one client (and HTTP/2 connection) per address,
 * kept for reuse. The caller's identity, request id and trace context travel along in metadata.
 * A host's refusal rejects with a CinderblockError carrying the host's code and message; a host
 * that does not answer rejects with a HostUnreachableError (see {@link fromServiceError}).
 */
export function createVolumeHostCalls(options: VolumeHostCallsOptions): VolumeHostCalls & { close(): void } {
  const { client, close } = hostClients(options.tls);
  const deadline = () => new Date(Date.now() + (options.deadlineMs ?? 30_000));
  const call = <Res>(invoke: (done: (err: ServiceError | null, res?: Res) => void) => unknown) =>
    new Promise<Res>((resolve, reject) =>
      invoke((err, res) => (err ? reject(fromServiceError(err)) : resolve(res as Res))),
    );
  return {
    async initializeConnection(address, ctx, volumeId, connector) {
      const res = await call<{ driverVolumeType: string; data: Record<string, string> }>((done) =>
        client(address).initializeConnection({ volumeId, connector }, identity(ctx), { deadline: deadline() }, done),
      );
      return { driverVolumeType: res.driverVolumeType, data: res.data };
    },
    async listManageableSnapshots(address, ctx, backend, ownedSnapshotIds) {
      const res = await call<{
        snapshots: Array<{
          reference: string;
          sourceVolumeId: string;
          sizeGb: number;
          safeToManage: boolean;
          reasonNotSafe: string;
        }>;
      }>((done) =>
        client(address).hostListManageableSnapshots(
          { backend, ownedSnapshotIds },
          identity(ctx),
          { deadline: deadline() },
          done,
        ),
      );
      return res.snapshots;
    },
    async manageSnapshot(address, ctx, snapshotId, volumeId, reference) {
      const res = await call<{ sizeGb: number }>((done) =>
        client(address).hostManageSnapshot(
          { snapshotId, volumeId, reference },
          identity(ctx),
          { deadline: deadline() },
          done,
        ),
      );
      return { sizeGb: res.sizeGb };
    },
    async unmanageSnapshot(address, ctx, snapshotId, volumeId) {
      await call((done) =>
        client(address).hostUnmanageSnapshot({ snapshotId, volumeId }, identity(ctx), { deadline: deadline() }, done),
      );
    },
    async terminateConnection(address, ctx, volumeId, connector) {
      await call((done) =>
        client(address).terminateConnection({ volumeId, connector }, identity(ctx), { deadline: deadline() }, done),
      );
    },
    close,
  };
}

/** One ReadVolume message: a piece of the volume, or (the last, `sha256` set) the digest of all of it. */
export interface VolumePiece {
  offset: number;
  data: Uint8Array;
  sha256: string;
  sizeBytes: number;
}

/** Calls from one volume host to another (a migration's target to its source). */
export interface PeerHostCalls {
  /**
   * The source's bytes of a volume being migrated, as they come: the stream is read only as fast
   * as the caller consumes it (HTTP/2 flow control holds the source back). A refusal or a lost
   * connection throws as {@link createVolumeHostCalls}' calls do.
   */
  readVolume(address: string, ctx: CallContext, volumeId: string, operationId: string): AsyncIterable<VolumePiece>;
  /** Asks the source to remove its copy of a volume that has moved off `sourceBackend`. */
  deleteMigrationSource(
    address: string,
    ctx: CallContext,
    volumeId: string,
    operationId: string,
    sourceBackend: string,
  ): Promise<void>;
  close(): void;
}

type CallContext = { requestId: string; projectId: string; userId: string; roles: string[]; isAdmin?: boolean };

/** Options for {@link createPeerHostCalls}. */
export interface PeerHostCallsOptions {
  /** Milliseconds a whole copy may take (default 6 h); DeleteMigrationSource gets 30 s. */
  copyDeadlineMs?: number;
  /** This host's client certificate (the name peers allow) and the CA of the peers' server certificates. */
  tls: TlsOptions & { caFile: string };
}

/**
 * Calls from a volume host to another's internal gRPC server, over mutual TLS as the api's are
 * (the peer accepts this host's client certificate for the migration methods only).
 */
export function createPeerHostCalls(options: PeerHostCallsOptions): PeerHostCalls {
  const { client, close } = hostClients(options.tls);
  return {
    async *readVolume(address, ctx, volumeId, operationId) {
      const call = client(address).readVolume({ volumeId, operationId }, identity(ctx), {
        deadline: new Date(Date.now() + (options.copyDeadlineMs ?? 6 * 3600_000)),
      });
      try {
        for await (const message of call) yield message as VolumePiece;
      } catch (error) {
        throw fromServiceError(error as ServiceError);
      } finally {
        // A consumer that stops early (a failed write) ends the source's read too.
        call.cancel();
      }
    },
    async deleteMigrationSource(address, ctx, volumeId, operationId, sourceBackend) {
      await new Promise<void>((resolve, reject) =>
        client(address).deleteMigrationSource(
          { volumeId, operationId, sourceBackend },
          identity(ctx),
          { deadline: new Date(Date.now() + 30_000) },
          (err) => (err ? reject(fromServiceError(err)) : resolve()),
        ),
      );
    },
    close,
  };
}
