import { isDatabaseUnavailable, isStatementTimeout } from "@cinderblock/db";

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
  | "ABORTED"
  /** The call (or one of its database statements) ran past its deadline; its work was stopped. */
  | "DEADLINE_EXCEEDED";

/**
 * The one error type use cases throw. Its message is meant for the caller (it names the field,
 * the status or the quota); the gRPC boundary maps `code` and sends the message as is.
 */
export class CinderblockError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "CinderblockError";
    this.code = code;
  }

  /**
   * `error` as the caller should see it: a CinderblockError as it is; PostgreSQL being unreachable
   * or going away as UNAVAILABLE (the request may succeed if sent again, and the message says
   * nothing of the database's address); a statement cancelled by PostgreSQL's `statement_timeout`
   * as DEADLINE_EXCEEDED (without its SQL); anything else undefined (an internal failure).
   */
  static from(error: unknown): CinderblockError | undefined {
    if (error instanceof CinderblockError) return error;
    if (isDatabaseUnavailable(error)) return databaseUnavailable(error);
    if (isStatementTimeout(error)) {
      return new CinderblockError(
        "DEADLINE_EXCEEDED",
        "a database statement ran past its time limit and was cancelled; try again",
        { cause: error },
      );
    }
    return undefined;
  }
}

/**
 * Thrown by a volume-host client when the host did not answer at all (no connection, or no answer
 * before the deadline), as opposed to answering with a refusal (a CinderblockError with the host's
 * code and words). Use cases turn it into UNAVAILABLE naming the volume or backend.
 */
export class HostUnreachableError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "HostUnreachableError";
  }
}

/**
 * What a use case throws after a call to a volume host failed: the host's refusal as it came (its
 * code and words); a host that did not answer as UNAVAILABLE with `unanswered`; anything else as
 * it is (the boundary reports it as INTERNAL).
 */
export function hostCallError(error: unknown, unanswered: string): unknown {
  if (error instanceof HostUnreachableError) return new CinderblockError("UNAVAILABLE", unanswered, { cause: error });
  return CinderblockError.from(error) ?? error;
}

/** The reason to record in an `.error` notification for a failed host call (`error` from {@link hostCallError}). */
export function hostCallReason(error: unknown): string {
  return error instanceof CinderblockError ? error.message : "the volume host failed";
}

/** Shorthand for an INVALID_ARGUMENT error naming the field. */
export function invalidArgument(field: string, problem: string): CinderblockError {
  return new CinderblockError("INVALID_ARGUMENT", `${field}: ${problem}`);
}

/** The error a caller gets while PostgreSQL cannot be reached (the details stay in `cause`). */
function databaseUnavailable(cause?: unknown): CinderblockError {
  return new CinderblockError("UNAVAILABLE", "the database is unavailable; try again", { cause });
}
