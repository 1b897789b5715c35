import { Metadata, type ServiceError } from "@grpc/grpc-js";

/** noauth identity metadata for a project. */
export function identity(projectId: string, userId = "alice", roles = ""): Metadata {
  const md = new Metadata();
  md.set("x-project-id", projectId);
  md.set("x-user-id", userId);
  if (roles) md.set("x-roles", roles);
  return md;
}

type Unary<Req, Res> = (req: Req, md: Metadata, cb: (err: ServiceError | null, res: Res) => void) => unknown;

/** Calls a unary method of a ts-proto grpc-js client as a promise. */
export function call<Req, Res>(method: Unary<Req, Res>, client: object, req: Req, md: Metadata): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, req, md, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** The gRPC error a call failed with (fails the test if it succeeded). */
export async function callError(promise: Promise<unknown>): Promise<ServiceError> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e as ServiceError,
  );
  if (!outcome) throw new Error("expected the call to fail");
  return outcome;
}
