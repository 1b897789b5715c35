import { z } from "zod";

const burst = (fallback: number) =>
  z.coerce.number().int().min(1, "expected 1 or more calls").max(1_000_000).default(fallback);
const rate = (fallback: number) =>
  z.coerce.number().min(0, "expected calls per second, 0 for no limit").max(1_000_000).default(fallback);

/**
 * The api's per-call limits: per-project rate limits by method class (token buckets: a bucket
 * holds up to BURST calls and refills at PER_SECOND; a class at 0 calls per second is not limited),
 * and the server's default deadline of a unary call.
 */
export const callLimitFields = {
  /** Gets and lists. */
  CINDERBLOCK_RATE_LIMIT_READ_PER_SECOND: rate(200),
  CINDERBLOCK_RATE_LIMIT_READ_BURST: burst(1000),
  /** Creates, updates, deletes, attach/detach, SnapshotInstance. */
  CINDERBLOCK_RATE_LIMIT_WRITE_PER_SECOND: rate(50),
  CINDERBLOCK_RATE_LIMIT_WRITE_BURST: burst(500),
  /** Admin actions: status resets, quota updates, manage/unmanage. */
  CINDERBLOCK_RATE_LIMIT_ADMIN_PER_SECOND: rate(10),
  CINDERBLOCK_RATE_LIMIT_ADMIN_BURST: burst(100),
  /** Opening a stream (WatchSnapshot, WatchEvents). */
  CINDERBLOCK_RATE_LIMIT_STREAM_PER_SECOND: rate(10),
  CINDERBLOCK_RATE_LIMIT_STREAM_BURST: burst(200),
  /**
   * Projects whose buckets are kept; past it the least recently seen project's buckets go (it
   * starts again with a full bucket). Idle projects' full buckets are dropped as calls come in.
   */
  CINDERBLOCK_RATE_LIMIT_MAX_PROJECTS: z.coerce.number().int().min(1).max(10_000_000).default(100_000),
  /**
   * Seconds a unary call may run at most (a shorter client deadline wins): then it ends with
   * DEADLINE_EXCEEDED and its waits (quiesce, snapshots to finish) are given up.
   */
  CINDERBLOCK_CALL_DEADLINE: z.coerce.number().min(0.1).max(86_400).default(600),
};

/** Every service's database time limit. */
export const statementTimeoutFields = {
  /**
   * Milliseconds a PostgreSQL statement may run (`statement_timeout` on the services' connections;
   * migrations are not limited); 0 turns it off. A call whose statement passes it ends with
   * DEADLINE_EXCEEDED.
   */
  CINDERBLOCK_DB_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
};
