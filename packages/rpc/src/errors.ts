import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { CinderblockError, type ErrorCode, HostUnreachableError } from "@cinderblock/domain";
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { RateLimitedError } from "./rate-limit.js";

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
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
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
  if (known) {
    if (known instanceof RateLimitedError) {
      metadata.set("grpc-status-details-bin", retryInfoStatus(CODES[known.code], known.message, known.retryDelayMs));
    }
    return { error: { code: CODES[known.code], details: known.message, metadata }, internal: false };
  }
  return {
    error: { code: status.INTERNAL, details: `internal error (request ${requestId})`, metadata },
    internal: true,
  };
}

/**
 * A `google.rpc.Status` carrying one `google.rpc.RetryInfo` (its `retry_delay`), as the bytes of the
 * `grpc-status-details-bin` trailer that gRPC clients read the retry delay from.
 */
function retryInfoStatus(code: number, message: string, delayMs: number): Buffer {
  const seconds = Math.floor(delayMs / 1000);
  const nanos = Math.round((delayMs - seconds * 1000) * 1_000_000);
  const duration = new BinaryWriter().uint32(8).int64(seconds).uint32(16).int32(nanos).finish();
  const retryInfo = new BinaryWriter().uint32(10).bytes(duration).finish();
  const any = new BinaryWriter()
    .uint32(10)
    .string("type.googleapis.com/google.rpc.RetryInfo")
    .uint32(18)
    .bytes(retryInfo)
    .finish();
  const body = new BinaryWriter().uint32(8).int32(code).uint32(18).string(message).uint32(26).bytes(any).finish();
  return Buffer.from(body);
}

const NAMES = new Map<number, ErrorCode>(Object.entries(CODES).map(([name, code]) => [code, name as ErrorCode]));

/**
 * The client-side counterpart of {@link toServiceError}, for calls to our own services (the volume
 * hosts): an answer with one of our codes becomes the CinderblockError the server threw (same code,
 * same message), so it reaches the api's caller unchanged. A call nobody answered (no connection,
 * the deadline passed) becomes a {@link HostUnreachableError}; anything else (INTERNAL, UNKNOWN...)
 * is returned as it is, for the caller's boundary to report as internal.
 *
 * NOTE: grpc-js reports a refused connection as UNAVAILABLE too. Our server boundary puts
 * `x-request-id` in the trailers of every status it sends, so an UNAVAILABLE without it is the
 * transport's, not the host's verdict (a backend asking to be retried).
 */
export function fromServiceError(error: unknown): unknown {
  const e = error as Partial<ServiceError> | undefined;
  if (typeof e?.code !== "number") return error;
  const answered = (e.metadata?.get("x-request-id").length ?? 0) > 0;
  if (e.code === status.DEADLINE_EXCEEDED || (e.code === status.UNAVAILABLE && !answered)) {
    return new HostUnreachableError(e.details || e.message || "no answer", { cause: error });
  }
  const name = NAMES.get(e.code);
  return name ? new CinderblockError(name, e.details ?? "", { cause: error }) : error;
}
