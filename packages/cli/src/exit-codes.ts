import { status } from "@grpc/grpc-js";

/**
 * Exit codes scripts can rely on. They are part of the CLI's contract: never renumber one, only add.
 * The README's exit code table lists the same codes.
 */
export const EXIT = {
  OK: 0,
  /** Anything not listed below (INTERNAL, UNKNOWN, a broken pipe...). */
  ERROR: 1,
  /** Bad command line: unknown command or flag, a missing or malformed value. Nothing was sent. */
  USAGE: 2,
  NOT_FOUND: 3,
  INVALID_ARGUMENT: 4,
  FAILED_PRECONDITION: 5,
  /** RESOURCE_EXHAUSTED: a quota would be exceeded. */
  QUOTA_EXCEEDED: 6,
  ALREADY_EXISTS: 7,
  /** PERMISSION_DENIED or UNAUTHENTICATED: admin required, or no identity. */
  DENIED: 8,
  /** UNAVAILABLE: the api could not be reached (safe to retry). */
  UNAVAILABLE: 9,
  /** DEADLINE_EXCEEDED: a call passed --timeout, or a wait passed --wait-timeout. */
  TIMEOUT: 10,
  /** A followed operation (--wait, snapshot watch) ended in an error status. */
  OPERATION_FAILED: 11,
  /** Interrupted (SIGINT/SIGTERM) while waiting. */
  INTERRUPTED: 130,
} as const;

/** One row of the documented exit code table. */
export interface ExitCodeRow {
  code: number;
  meaning: string;
}

/** The exit code table, as `cinderblock --help` prints it. */
export const EXIT_CODE_TABLE: readonly ExitCodeRow[] = [
  { code: EXIT.OK, meaning: "success" },
  { code: EXIT.ERROR, meaning: "any other error (INTERNAL, UNKNOWN, ...)" },
  { code: EXIT.USAGE, meaning: "usage error: unknown command or flag, bad or missing value (nothing sent)" },
  { code: EXIT.NOT_FOUND, meaning: "NOT_FOUND: no such volume, snapshot or volume type in the project" },
  { code: EXIT.INVALID_ARGUMENT, meaning: "INVALID_ARGUMENT: the api refused a field" },
  { code: EXIT.FAILED_PRECONDITION, meaning: "FAILED_PRECONDITION: the resource's status forbids it" },
  { code: EXIT.QUOTA_EXCEEDED, meaning: "RESOURCE_EXHAUSTED: a quota would be exceeded" },
  { code: EXIT.ALREADY_EXISTS, meaning: "ALREADY_EXISTS: --client-request-id reused with another body" },
  { code: EXIT.DENIED, meaning: "PERMISSION_DENIED or UNAUTHENTICATED: admin only, or no identity" },
  { code: EXIT.UNAVAILABLE, meaning: "UNAVAILABLE: the api cannot be reached (retry)" },
  { code: EXIT.TIMEOUT, meaning: "DEADLINE_EXCEEDED: --timeout or --wait-timeout passed" },
  { code: EXIT.OPERATION_FAILED, meaning: "--wait / snapshot watch: the resource ended in an error status" },
  { code: EXIT.INTERRUPTED, meaning: "interrupted (Ctrl-C) while waiting" },
];

const BY_STATUS: Partial<Record<status, number>> = {
  [status.NOT_FOUND]: EXIT.NOT_FOUND,
  [status.INVALID_ARGUMENT]: EXIT.INVALID_ARGUMENT,
  [status.OUT_OF_RANGE]: EXIT.INVALID_ARGUMENT,
  [status.FAILED_PRECONDITION]: EXIT.FAILED_PRECONDITION,
  [status.RESOURCE_EXHAUSTED]: EXIT.QUOTA_EXCEEDED,
  [status.ALREADY_EXISTS]: EXIT.ALREADY_EXISTS,
  [status.PERMISSION_DENIED]: EXIT.DENIED,
  [status.UNAUTHENTICATED]: EXIT.DENIED,
  [status.UNAVAILABLE]: EXIT.UNAVAILABLE,
  [status.DEADLINE_EXCEEDED]: EXIT.TIMEOUT,
};

/** The exit code for a call that failed with gRPC status `code`. */
export function exitCodeForStatus(code: status): number {
  return BY_STATUS[code] ?? EXIT.ERROR;
}
