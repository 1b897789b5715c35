import { z } from "zod";

/**
 * Retry on another backend (issue 15), spread into the scheduler's schema (which counts the
 * attempts) and the volume host's (which hands a failed create back only while retries are on).
 */
export const schedulerRetryFields = {
  /**
   * Cinder's scheduler_max_attempts: how many backends a new volume may be placed on. A backend that
   * fails a new blank volume's create hands it back to the scheduler, which places it on a backend
   * not tried yet; after this many the volume goes `error` ("no valid backend was found"), the
   * detail listing each attempt. 1 turns retries off (a failed create is an error at once).
   */
  CINDERBLOCK_SCHEDULER_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(3),
};
