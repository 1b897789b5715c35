import type { ServiceError } from "@grpc/grpc-js";

export { call, identity } from "@cinderblock/testing";

/** The gRPC error a call failed with (fails the test if it succeeded). */
export async function callError(promise: Promise<unknown>): Promise<ServiceError> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e as ServiceError,
  );
  if (!outcome) throw new Error("expected the call to fail");
  return outcome;
}
