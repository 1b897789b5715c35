import { CinderblockError } from "@cinderblock/domain";
import type { Route, UnauthorizedCall } from "./http.js";
import { atLeast, formatMicroversion } from "./microversion.js";

/**
 * A route's `authorize` that first refuses a microversion older than `version` with Cinder's 404
 * ("API version 3.x is not supported on this method"), before any policy check, as Cinder's routing does.
 */
export const since =
  (version: string, authorize: Route["authorize"]): Route["authorize"] =>
  (call: UnauthorizedCall) => {
    if (!atLeast(call.version, version)) {
      throw new CinderblockError(
        "NOT_FOUND",
        `API version ${formatMicroversion(call.version)} is not supported on this method (it needs ${version}).`,
      );
    }
    return authorize(call);
  };
