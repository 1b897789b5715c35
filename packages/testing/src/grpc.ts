import {
  type AttachVolumeResponse,
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  CreateVolumeRequest,
  type CreateVolumeResponse,
  type DeleteSnapshotResponse,
  type DeleteVolumeResponse,
  type ExtendVolumeResponse,
  type GetSnapshotResponse,
  type GetVolumeResponse,
  ListSnapshotsRequest,
  type ListSnapshotsResponse,
  ListVolumesRequest,
  type ListVolumesResponse,
  type RevertVolumeToSnapshotResponse,
  type Snapshot,
  SnapshotsServiceClient,
  type Volume,
  VolumesServiceClient,
} from "@cinderblock/proto";
import {
  type CallOptions,
  type ClientReadableStream,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";

/** noauth identity metadata for a project's caller (`roles` comma-separated, e.g. "admin"). */
export function identity(projectId: string, userId = "alice", roles = ""): Metadata {
  const md = new Metadata();
  md.set("x-project-id", projectId);
  md.set("x-user-id", userId);
  if (roles) md.set("x-roles", roles);
  return md;
}

/** Runs a unary call of a ts-proto grpc-js client (given its callback) as a promise. */
export function call<Res>(invoke: (done: (err: ServiceError | null, res?: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    invoke((err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

/**
 * How a mutating call ended, seen from the caller: `accepted` (the api answered OK), `refused`
 * (it answered an error: nothing may have changed), or `unknown` (no answer: UNAVAILABLE or
 * DEADLINE_EXCEEDED, e.g. the api was killed; only listing tells whether it happened).
 */
export type CallOutcome<T> =
  | { kind: "accepted"; value: T }
  | { kind: "refused"; code: number; codeName: string; details: string }
  | { kind: "unknown"; code: number; codeName: string; details: string };

/** The name of a gRPC status code ("FAILED_PRECONDITION"). */
export function codeName(code: number): string {
  return (status as unknown as Record<number, string>)[code] ?? String(code);
}

/** Runs `promise` and classifies how it ended (see {@link CallOutcome}); never rejects. */
export async function outcomeOf<T>(promise: Promise<T>): Promise<CallOutcome<T>> {
  try {
    return { kind: "accepted", value: await promise };
  } catch (error) {
    const e = error as Partial<ServiceError>;
    const code = typeof e.code === "number" ? e.code : status.UNKNOWN;
    const details = e.details ?? String(error);
    const kind = code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED ? "unknown" : "refused";
    return { kind, code, codeName: codeName(code), details };
  }
}

/** Options for {@link createProjectClient}. */
export interface ProjectClientOptions {
  /** Deadline of each call (default 15 s), so a call to a dead api ends as DEADLINE_EXCEEDED at worst. */
  deadlineMs?: number;
  userId?: string;
}

/** Promise-wrapped calls of the public api as one project (the resource, not the response wrapper). */
export interface ProjectClient {
  readonly projectId: string;
  createVolume(request: Partial<CreateVolumeRequest>): Promise<Volume>;
  getVolume(id: string): Promise<Volume>;
  /** Every page. */
  listVolumes(request?: Partial<ListVolumesRequest>): Promise<Volume[]>;
  deleteVolume(id: string, cascade?: boolean): Promise<Volume>;
  extendVolume(id: string, newSizeGb: number): Promise<Volume>;
  revertVolumeToSnapshot(volumeId: string, snapshotId: string): Promise<Volume>;
  attachVolume(volumeId: string, instanceId: string, mountpoint?: string): Promise<AttachVolumeResponse>;
  createSnapshot(request: Partial<CreateSnapshotRequest>): Promise<Snapshot>;
  getSnapshot(id: string): Promise<Snapshot>;
  /** Every page. */
  listSnapshots(request?: Partial<ListSnapshotsRequest>): Promise<Snapshot[]>;
  deleteSnapshot(id: string, force?: boolean): Promise<Snapshot>;
  close(): void;
}

/** A {@link ProjectClient} on its own channel to the api at `address`. */
export function createProjectClient(
  address: string,
  projectId: string,
  options: ProjectClientOptions = {},
): ProjectClient {
  const volumes = new VolumesServiceClient(address, credentials.createInsecure());
  const snapshots = new SnapshotsServiceClient(address, credentials.createInsecure());
  const md = identity(projectId, options.userId);
  const deadlineMs = options.deadlineMs ?? 15_000;
  const opts = (): Partial<CallOptions> => ({ deadline: Date.now() + deadlineMs });
  return {
    projectId,
    createVolume: (request) =>
      call<CreateVolumeResponse>((done) =>
        volumes.createVolume(CreateVolumeRequest.fromPartial(request), md, opts(), done),
      ).then((r) => r.volume as Volume),
    getVolume: (id) =>
      call<GetVolumeResponse>((done) => volumes.getVolume({ id }, md, opts(), done)).then((r) => r.volume as Volume),
    async listVolumes(request = {}) {
      const all: Volume[] = [];
      let pageToken = "";
      do {
        const page = await call<ListVolumesResponse>((done) =>
          volumes.listVolumes(
            ListVolumesRequest.fromPartial({ pageSize: 1000, ...request, pageToken }),
            md,
            opts(),
            done,
          ),
        );
        all.push(...page.volumes);
        pageToken = page.nextPageToken;
      } while (pageToken);
      return all;
    },
    deleteVolume: (id, cascade = false) =>
      call<DeleteVolumeResponse>((done) => volumes.deleteVolume({ id, cascade, force: false }, md, opts(), done)).then(
        (r) => r.volume as Volume,
      ),
    extendVolume: (id, newSizeGb) =>
      call<ExtendVolumeResponse>((done) => volumes.extendVolume({ id, newSizeGb }, md, opts(), done)).then(
        (r) => r.volume as Volume,
      ),
    revertVolumeToSnapshot: (volumeId, snapshotId) =>
      call<RevertVolumeToSnapshotResponse>((done) =>
        volumes.revertVolumeToSnapshot({ volumeId, snapshotId }, md, opts(), done),
      ).then((r) => r.volume as Volume),
    attachVolume: (volumeId, instanceId, mountpoint = "/dev/vdb") =>
      call<AttachVolumeResponse>((done) =>
        volumes.attachVolume(
          { volumeId, instanceId, mountpoint, connector: { host: `compute-${instanceId}` } },
          md,
          opts(),
          done,
        ),
      ),
    createSnapshot: (request) =>
      call<CreateSnapshotResponse>((done) =>
        snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ name: "s", ...request }), md, opts(), done),
      ).then((r) => r.snapshot as Snapshot),
    getSnapshot: (id) =>
      call<GetSnapshotResponse>((done) => snapshots.getSnapshot({ id }, md, opts(), done)).then(
        (r) => r.snapshot as Snapshot,
      ),
    async listSnapshots(request = {}) {
      const all: Snapshot[] = [];
      let pageToken = "";
      do {
        const page = await call<ListSnapshotsResponse>((done) =>
          snapshots.listSnapshots(
            ListSnapshotsRequest.fromPartial({ pageSize: 1000, ...request, pageToken }),
            md,
            opts(),
            done,
          ),
        );
        all.push(...page.snapshots);
        pageToken = page.nextPageToken;
      } while (pageToken);
      return all;
    },
    deleteSnapshot: (id, force = false) =>
      call<DeleteSnapshotResponse>((done) => snapshots.deleteSnapshot({ id, force }, md, opts(), done)).then(
        (r) => r.snapshot as Snapshot,
      ),
    close() {
      volumes.close();
      snapshots.close();
    },
  };
}

/** The gRPC error a call failed with (throws if it succeeded). */
export async function callError(promise: Promise<unknown>): Promise<ServiceError> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e as ServiceError,
  );
  if (!outcome) throw new Error("expected the call to fail");
  return outcome;
}

/** Every message a server stream sends, once the server ends it (rejects on a stream error). */
export function untilEnd<T>(stream: ClientReadableStream<T>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const seen: T[] = [];
    stream.on("data", (m: T) => seen.push(m));
    stream.on("error", reject);
    stream.on("end", () => resolve(seen));
  });
}
