/** The gRPC status codes a domain error may carry (names as in grpc's `Status`). */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "RESOURCE_EXHAUSTED"
  | "PERMISSION_DENIED"
  | "UNAUTHENTICATED"
  | "UNAVAILABLE"
  /** A concurrent change kept getting in the way; the same request may succeed if sent again. */
  | "ABORTED";

/**
 * The one error type use cases throw. Its message is meant for the caller (it names the field,
 * the status or the quota); the gRPC boundary maps `code` and sends the message as is.
 */
export class CinderblockError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "CinderblockError";
    this.code = code;
  }

  /** Returns `error` if it already is a CinderblockError, else undefined (an internal failure). */
  static from(error: unknown): CinderblockError | undefined {
    return error instanceof CinderblockError ? error : undefined;
  }
}

/** Shorthand for an INVALID_ARGUMENT error naming the field. */
export function invalidArgument(field: string, problem: string): CinderblockError {
  return new CinderblockError("INVALID_ARGUMENT", `${field}: ${problem}`);
}
