import { type Executor, isBackendFrozen } from "@cinderblock/db";
import { CinderblockError } from "../errors.js";

/**
 * Cinder's assert_not_frozen: a frozen backend (FreezeHost) deletes nothing of what it holds;
 * `what` names the resource refused (e.g. "volume <id>").
 */
export async function assertBackendNotFrozen(db: Executor, host: string | null, what: string): Promise<void> {
  if (host && (await isBackendFrozen(db, host))) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `backend ${host} of ${what} is frozen; an administrator must thaw it`,
    );
  }
}
