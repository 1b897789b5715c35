import { type ClientReadableStream, Metadata, type ServiceError } from "@grpc/grpc-js";

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
