import { CinderblockError } from "@cinderblock/domain";
import type { ServiceDefinition } from "@grpc/grpc-js";

/**
 * What a tolerant deserializer hands grpc-js instead of a request it could not decode. NOTE:
 * grpc-js 1.14 ends a call whose deserializer throws with INTERNAL ("Error deserializing
 * request"), before any handler runs; a bad message is the caller's fault, so the deserializer
 * returns this instead and {@link unary} / {@link serverStreaming} answer INVALID_ARGUMENT.
 */
class MalformedRequest {
  constructor(readonly reason: string) {}
}

/**
 * A copy of `service` whose request deserializers never throw: a message that does not decode
 * becomes a {@link MalformedRequest}, which the server wrappers refuse with INVALID_ARGUMENT.
 */
export function tolerantService<T extends ServiceDefinition>(service: T): T {
  const methods = Object.entries(service).map(([name, method]) => [
    name,
    {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch (error) {
          return new MalformedRequest(error instanceof Error ? error.message : String(error));
        }
      },
    },
  ]);
  return Object.fromEntries(methods) as T;
}

/** Throws INVALID_ARGUMENT when `request` is a message that did not decode. */
export function assertWellFormed(request: unknown): void {
  if (request instanceof MalformedRequest) {
    throw new CinderblockError("INVALID_ARGUMENT", `request: is not a valid message (${request.reason.slice(0, 200)})`);
  }
}
