import { DriverError } from "../driver.js";

/** Linux errnos that librbd, librados and the rbd/ceph CLIs (whose exit status is the errno) report. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  E2BIG: 7,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  EOPNOTSUPP: 95,
  ECONNRESET: 104,
  ENOTCONN: 107,
  /** Also EBLOCKLISTED: the cluster fenced this client off. */
  ESHUTDOWN: 108,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EDQUOT: 122,
} as const;

const NAMES = new Map<number, string>(Object.entries(Errno).map(([name, errno]) => [errno, name]));

/** A failed Ceph call, from either client: the errno tells what happened. */
export class CephError extends Error {
  readonly errno: number;
  /** The errno's name, e.g. "ENOENT". */
  readonly code: string;
  constructor(errno: number, message: string, options: { cause?: unknown; code?: string } = {}) {
    super(message, { cause: options.cause });
    this.name = "CephError";
    this.errno = errno;
    this.code = options.code ?? NAMES.get(errno) ?? `E${errno}`;
  }
}

/** Whether `error` is a Ceph failure with one of these errnos. */
export function isErrno(error: unknown, ...errnos: number[]): error is CephError {
  return error instanceof CephError && errnos.includes(error.errno);
}

/** Awaits `call`; a Ceph failure with one of the `tolerated` errnos resolves undefined instead. */
export async function tolerate<T>(call: Promise<T>, ...tolerated: number[]): Promise<T | undefined> {
  try {
    return await call;
  } catch (error) {
    if (isErrno(error, ...tolerated)) return undefined;
    throw error;
  }
}

/**
 * Errors that repeating the same call will not cure: a missing or existing object, bad input,
 * refused permissions (cephx caps), a full pool or quota, an unsupported feature.
 */
const PERMANENT = new Set<number>([
  Errno.EPERM,
  Errno.ENOENT,
  Errno.E2BIG,
  Errno.EACCES,
  Errno.EEXIST,
  Errno.EXDEV,
  Errno.EINVAL,
  Errno.EFBIG,
  Errno.ENOSPC,
  Errno.EROFS,
  Errno.EMLINK,
  Errno.ERANGE,
  Errno.ENAMETOOLONG,
  Errno.ENOSYS,
  Errno.EOPNOTSUPP,
  Errno.EDQUOT,
]);

/**
 * Turns any failure into the domain's DriverError, prefixed with what was being done. Timeouts,
 * lost connections and busy images are retryable; anything unknown is too (the manager stops
 * after its last delivery).
 */
export function toDriverError(error: unknown, doing: string): DriverError {
  if (error instanceof DriverError) return error;
  if (error instanceof CephError) {
    return new DriverError(`${doing}: ${error.message}`, { retryable: !PERMANENT.has(error.errno), cause: error });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new DriverError(`${doing}: ${detail}`, { retryable: true, cause: error });
}
