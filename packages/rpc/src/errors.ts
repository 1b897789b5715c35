import { CinderblockError, type ErrorCode } from "@cinderblock/domain";
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";

const CODES: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  UNAVAILABLE: status.UNAVAILABLE,
  ABORTED: status.ABORTED,
};

/** What the boundary reports about an error it sends back. */
export interface MappedError {
  error: Partial<ServiceError>;
  /** True when the error was unexpected: log it with its details, which the caller never sees. */
  internal: boolean;
}

/**
 * The one place errors become gRPC statuses: a CinderblockError keeps its code and message;
 * anything else is INTERNAL with a generic message (the details stay in the service's log).
 */
export function toServiceError(error: unknown, requestId: string): MappedError {
  const metadata = new Metadata();
  metadata.set("x-request-id", requestId);
  const known = CinderblockError.from(error);
  if (known) return { error: { code: CODES[known.code], details: known.message, metadata }, internal: false };
  return {
    error: { code: status.INTERNAL, details: `internal error (request ${requestId})`, metadata },
    internal: true,
  };
}
