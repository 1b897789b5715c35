import { CinderblockError, type ErrorCode } from "@cinderblock/domain";
import { MicroversionError } from "./microversion.js";

/** A response the REST listener sends: a status and a JSON body (none for 202/204 without one). */
export interface RestReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Cinder's fault names by HTTP status (cinder/api/openstack/wsgi.py Fault._fault_names). */
const FAULT_NAMES: Record<number, string> = {
  400: "badRequest",
  401: "unauthorized",
  403: "forbidden",
  404: "itemNotFound",
  405: "badMethod",
  406: "notAcceptable",
  409: "conflictingRequest",
  413: "overLimit",
  415: "badMediaType",
  501: "notImplemented",
  503: "serviceUnavailable",
};

/** The HTTP status Cinder answers for what a use case refused with `code`. */
const STATUS_OF: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  // NOTE: Cinder answers a resource in the wrong state (InvalidVolume, InvalidSnapshot) with 400.
  FAILED_PRECONDITION: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  ABORTED: 409,
  RESOURCE_EXHAUSTED: 413,
  PERMISSION_DENIED: 403,
  UNAUTHENTICATED: 401,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 503,
};

/** Cinder's fault body for `status`: `{"itemNotFound": {"code": 404, "message": "..."}}`. */
export function fault(status: number, message: string, headers?: Record<string, string>): RestReply {
  const name = FAULT_NAMES[status] ?? (status >= 500 ? "computeFault" : "badRequest");
  return { status, body: { [name]: { code: status, message } }, headers };
}

/**
 * `error` as Cinder would answer it; undefined for an internal failure (the caller logs it and
 * sends a 500 that says nothing of its details).
 */
export function faultOf(error: unknown): RestReply | undefined {
  if (error instanceof MicroversionError) return fault(error.status, error.message);
  const known = CinderblockError.from(error);
  if (!known) return undefined;
  const status = STATUS_OF[known.code];
  if (status === 401) {
    // keystonemiddleware's body, which is what Cinder deployments send for a bad token.
    return {
      status,
      body: { error: { code: 401, title: "Unauthorized", message: known.message } },
      headers: { "www-authenticate": "Keystone uri=''" },
    };
  }
  const retry = (error as { retryDelayMs?: number }).retryDelayMs;
  return fault(status, known.message, retry ? { "retry-after": String(Math.ceil(retry / 1000)) } : undefined);
}

/** The 500 an internal failure gets (Cinder's computeFault wording), with the request id to quote. */
export function internalFault(requestId: string): RestReply {
  return fault(
    500,
    `The server has either erred or is incapable of performing the requested operation. (request ${requestId})`,
  );
}
