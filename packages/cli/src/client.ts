import {
  EventsServiceClient,
  QuotasServiceClient,
  SnapshotsServiceClient,
  VolumesServiceClient,
  VolumeTypesServiceClient,
} from "@cinderblock/proto";
import { type CallOptions, type ClientReadableStream, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";

/** Who the CLI acts as (a token, or noauth's self-declared identity) and where the api is. */
export interface ConnectionOptions {
  /** The api's address, "host:port". */
  address: string;
  identity:
    | { kind: "noauth"; projectId: string; userId: string; roles: string[] }
    | { kind: "token"; token: string; tokenType: "keystone" | "bearer" };
  /** TLS to the api: undefined for plaintext; `ca` undefined for the system roots. */
  tls?: { ca?: Buffer };
  /** Deadline of each unary call, in milliseconds. */
  timeoutMs: number;
}

/** The api's clients, the caller's credentials, and promise-returning call helpers. */
export interface Connection {
  volumes: VolumesServiceClient;
  snapshots: SnapshotsServiceClient;
  quotas: QuotasServiceClient;
  events: EventsServiceClient;
  types: VolumeTypesServiceClient;
  /** Runs one unary call (given its callback form) with the identity and a deadline. */
  call<Res>(
    invoke: (
      metadata: Metadata,
      options: Partial<CallOptions>,
      done: (err: ServiceError | null, res: Res) => void,
    ) => unknown,
  ): Promise<Res>;
  /** The credential metadata, for streams. */
  metadata(): Metadata;
  close(): void;
}

/** Opens clients to the api (lazily: nothing connects until the first call). */
export function createConnection(options: ConnectionOptions): Connection {
  const creds = options.tls ? credentials.createSsl(options.tls.ca ?? null) : credentials.createInsecure();
  const volumes = new VolumesServiceClient(options.address, creds);
  const snapshots = new SnapshotsServiceClient(options.address, creds);
  const quotas = new QuotasServiceClient(options.address, creds);
  const events = new EventsServiceClient(options.address, creds);
  const types = new VolumeTypesServiceClient(options.address, creds);
  const { identity } = options;
  const metadata = () => {
    const md = new Metadata();
    if (identity.kind === "token") {
      if (identity.tokenType === "bearer") md.set("authorization", `Bearer ${identity.token}`);
      else md.set("x-auth-token", identity.token);
    } else {
      md.set("x-project-id", identity.projectId);
      md.set("x-user-id", identity.userId);
      if (identity.roles.length > 0) md.set("x-roles", identity.roles.join(","));
    }
    return md;
  };
  return {
    volumes,
    snapshots,
    quotas,
    events,
    types,
    metadata,
    call(invoke) {
      return new Promise((resolve, reject) => {
        invoke(metadata(), { deadline: Date.now() + options.timeoutMs }, (err, res) =>
          err ? reject(err) : resolve(res),
        );
      });
    },
    close() {
      for (const client of [volumes, snapshots, quotas, events, types]) client.close();
    },
  };
}

/** True for a gRPC error (it carries a numeric status code). */
export function isServiceError(error: unknown): error is ServiceError {
  return typeof error === "object" && error !== null && typeof (error as { code?: unknown }).code === "number";
}

/**
 * The messages of a server stream, ending when the server ends it. Stops (cancelling the call)
 * when `signal` aborts or the consumer breaks out; a stream that fails throws its ServiceError.
 */
export async function* messages<T>(stream: ClientReadableStream<T>, signal: AbortSignal): AsyncGenerator<T> {
  const onAbort = () => stream.cancel();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const message of stream) yield message as T;
  } catch (error) {
    // NOTE: cancelling ends the call with CANCELLED: the caller asked for it, so it is not an error.
    if (signal.aborted) return;
    throw error;
  } finally {
    signal.removeEventListener("abort", onAbort);
    stream.cancel();
  }
}
