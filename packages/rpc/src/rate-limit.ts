import { CinderblockError } from "@cinderblock/domain";
import type { Guard } from "./auth/guard.js";

/** The classes public methods fall in, each with its own bucket per project. */
export type MethodClass = "read" | "write" | "admin" | "stream";

/** One class's bucket: up to `burst` calls at once, refilled at `perSecond` (0: not limited). */
export interface BucketSettings {
  perSecond: number;
  burst: number;
}

/** Options for {@link createRateLimiter}. */
export interface RateLimiterOptions {
  classes: Readonly<Record<MethodClass, BucketSettings>>;
  /** Projects whose buckets are kept (least recently seen go first). */
  maxProjects: number;
  /** The clock, in milliseconds (tests). */
  now?: () => number;
}

/** Takes one call from a project's bucket of a class: 0 when allowed, else the milliseconds to wait. */
export type RateLimiter = ((projectId: string, methodClass: MethodClass) => number) & {
  /** Buckets held now (for a memory bound). */
  readonly size: number;
};

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Per-project token buckets, one per method class. Memory is bounded: at most `maxProjects` x 4
 * buckets, kept in least-recently-used order; a bucket that has refilled completely is the same as
 * no bucket, so the oldest ones are dropped once full as calls come in (an idle project costs
 * nothing after one burst's refill time).
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const now = options.now ?? (() => performance.now());
  // NOTE: a Map iterates in insertion order; re-inserting on each use keeps it in LRU order.
  const buckets = new Map<string, Bucket>();
  const maxBuckets = options.maxProjects * 4;

  const refill = (bucket: Bucket, settings: BucketSettings, t: number) => {
    bucket.tokens = Math.min(settings.burst, bucket.tokens + ((t - bucket.at) / 1000) * settings.perSecond);
    bucket.at = t;
  };

  const take = (projectId: string, methodClass: MethodClass): number => {
    const settings = options.classes[methodClass];
    if (settings.perSecond <= 0) return 0;
    const t = now();
    const key = `${methodClass}\u0000${projectId}`;
    const bucket = buckets.get(key) ?? { tokens: settings.burst, at: t };
    buckets.delete(key);
    refill(bucket, settings, t);
    buckets.set(key, bucket);
    while (buckets.size > maxBuckets) buckets.delete(buckets.keys().next().value as string);
    // Drop the least recently used buckets that are full again (at most two per call: O(1)).
    let checked = 0;
    for (const [oldKey, old] of buckets) {
      if (checked++ >= 2 || oldKey === key) break;
      const oldSettings = options.classes[oldKey.slice(0, oldKey.indexOf("\u0000")) as MethodClass];
      refill(old, oldSettings, t);
      if (old.tokens >= oldSettings.burst) buckets.delete(oldKey);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / settings.perSecond) * 1000);
  };
  return Object.defineProperty(take, "size", { get: () => buckets.size }) as RateLimiter;
}

/**
 * RESOURCE_EXHAUSTED for a project over its rate: the gRPC boundary adds `google.rpc.RetryInfo`
 * with {@link retryDelayMs} to the status details, as gRPC clients expect.
 */
export class RateLimitedError extends CinderblockError {
  readonly retryDelayMs: number;
  constructor(methodClass: MethodClass, retryDelayMs: number) {
    const seconds = (retryDelayMs / 1000).toFixed(3);
    super("RESOURCE_EXHAUSTED", `rate limit of ${methodClass} calls reached for this project; retry in ${seconds} s`);
    this.retryDelayMs = retryDelayMs;
  }
}

/**
 * `guard` followed by the project's rate limit (so the project is known, and a caller that is not
 * authenticated or not allowed spends nothing): a call over its class's rate is refused with
 * {@link RateLimitedError}. A method missing from `classes` counts as `write`.
 */
export function rateLimited(guard: Guard, limiter: RateLimiter, classes: Readonly<Record<string, MethodClass>>): Guard {
  return async (method, request, credentials, requestId) => {
    const ctx = await guard(method, request, credentials, requestId);
    const methodClass = classes[method] ?? "write";
    const wait = limiter(ctx.projectId, methodClass);
    if (wait > 0) throw new RateLimitedError(methodClass, wait);
    return ctx;
  };
}
