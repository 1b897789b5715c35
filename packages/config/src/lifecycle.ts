import type { Logger } from "./logger.js";

/** The parts of `process` a lifecycle uses (tests pass a fake). */
export interface LifecycleProcess {
  on(signal: "SIGTERM" | "SIGINT" | "SIGHUP", listener: (signal: NodeJS.Signals) => void): unknown;
  exit(code: number): void;
}

/** Options for {@link createLifecycle}. */
export interface LifecycleOptions {
  logger: Logger;
  /** How long in-flight work may take to finish once a stop signal came (CINDERBLOCK_SHUTDOWN_GRACE). */
  graceMs: number;
  /** How often the dependency checks run once the service is ready (CINDERBLOCK_HEALTH_INTERVAL). */
  checkIntervalMs: number;
  /** How long closing connections may take after the drain before the process exits anyway (default 5 s). */
  closeTimeoutMs?: number;
  /** Longest pause between two attempts of {@link Lifecycle.retry} (default 5 s). */
  maxRetryDelayMs?: number;
  process?: LifecycleProcess;
}

/** A check that a dependency answers; it rejects (or takes longer than the check interval) when not. */
export type DependencyCheck = () => Promise<unknown>;

/**
 * A service's life from start to exit: waiting for its dependencies, whether it should answer
 * SERVING, and a bounded graceful stop on SIGTERM/SIGINT/SIGHUP.
 */
export interface Lifecycle {
  /** Aborted when a stop signal arrives. */
  readonly signal: AbortSignal;
  /**
   * Where the service reports health (its grpc.health.v1 server); called at once with the current
   * value, then on every change. SERVING means: started, every dependency answering, not stopping.
   */
  reportHealthTo(report: (serving: boolean) => void): void;
  /**
   * Runs `work` until it succeeds (PostgreSQL or NATS not reachable yet, migrations waiting for
   * the lock...), logging each failure with `what` and waiting longer each time. Once a stop signal
   * came it never settles: the process is exiting.
   */
  retry<T>(what: string, work: () => Promise<T>): Promise<T>;
  /** Marks the service started and begins checking `checks` every interval. */
  ready(checks: Record<string, DependencyCheck>): void;
  /**
   * Adds a drain step, run on stop together with the other drain steps: stop taking new work and
   * let in-flight work finish until `deadline` (epoch ms), then give up what is left.
   */
  onDrain(step: (deadline: number) => Promise<void>): void;
  /** Adds a close step, run after the drain in reverse order of registration (connections, pools). */
  onClose(what: string, step: () => Promise<void>): void;
}

/** Resolves after `ms`, or when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** Rejects when `promise` has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const never = new Promise<never>(() => {});

/** An error and its causes on one line (drizzle's "Failed query" hides ECONNREFUSED in its cause). */
function describe(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e !== undefined && parts.length < 4; e = (e as { cause?: unknown } | null)?.cause) {
    parts.push(e instanceof Error ? e.message.split("\n")[0] || e.name : String(e));
  }
  return parts.join(": ");
}

/**
 * Creates the lifecycle and installs the SIGTERM/SIGINT/SIGHUP handlers at once (a signal during start-up
 * stops what was started so far). On a signal: health turns NOT_SERVING, the drain steps run
 * together until the grace period ends, the close steps run (bounded by `closeTimeoutMs`), and the
 * process exits 0 (1 when a step failed). A second signal exits 1 at once.
 */
export function createLifecycle(options: LifecycleOptions): Lifecycle {
  const { logger, graceMs, checkIntervalMs } = options;
  const proc: LifecycleProcess = options.process ?? process;
  const closeTimeoutMs = options.closeTimeoutMs ?? 5000;
  const maxRetryDelayMs = options.maxRetryDelayMs ?? 5000;
  const stopping = new AbortController();
  const drains: Array<(deadline: number) => Promise<void>> = [];
  const closes: Array<{ what: string; step: () => Promise<void> }> = [];
  const reporters: Array<(serving: boolean) => void> = [];
  let started = false;
  let failing: string[] = [];
  let serving = false;
  let checkTimer: NodeJS.Timeout | undefined;

  const update = () => {
    const next = started && failing.length === 0 && !stopping.signal.aborted;
    if (next === serving) return;
    serving = next;
    for (const report of reporters) report(serving);
  };

  const stop = async (signal: NodeJS.Signals) => {
    const deadline = Date.now() + graceMs;
    logger.info({ signal, grace_ms: graceMs }, "stopping: draining in-flight work");
    stopping.abort();
    clearInterval(checkTimer);
    update();
    let failed = false;
    const drained = await Promise.allSettled(drains.map((step) => step(deadline)));
    for (const outcome of drained) {
      if (outcome.status === "rejected") {
        failed = true;
        logger.error({ err: outcome.reason }, "drain step failed");
      }
    }
    const closeBy = Date.now() + closeTimeoutMs;
    for (const { what, step } of closes.reverse()) {
      try {
        await within(step(), Math.max(0, closeBy - Date.now()), `closing ${what}`);
      } catch (err) {
        // NOTE: a dependency that is down may never answer a close; nothing is lost by exiting
        // (unacknowledged messages are redelivered), so a timeout is a warning, not a failure.
        logger.warn({ closing: what, err: describe(err) }, "a connection did not close in time; exiting anyway");
      }
    }
    logger.info({ exit_code: failed ? 1 : 0 }, "stopped");
    proc.exit(failed ? 1 : 0);
  };

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping.signal.aborted) {
      logger.warn({ signal }, "second stop signal: exiting at once");
      proc.exit(1);
      return;
    }
    stop(signal).catch((err: unknown) => {
      logger.error({ err }, "stopping failed");
      proc.exit(1);
    });
  };
  proc.on("SIGTERM", onSignal);
  proc.on("SIGINT", onSignal);
  // The terminal a service was started from closed: stop as gracefully as on Ctrl-C.
  proc.on("SIGHUP", onSignal);

  return {
    signal: stopping.signal,
    reportHealthTo(report) {
      reporters.push(report);
      report(serving);
    },
    async retry(what, work) {
      let delay = 250;
      for (let attempt = 1; !stopping.signal.aborted; attempt++) {
        try {
          const result = await work();
          if (attempt > 1) logger.info({ dependency: what, attempts: attempt }, "dependency reachable");
          return result;
        } catch (err) {
          if (stopping.signal.aborted) break;
          logger.warn({ dependency: what, attempt, retry_in_ms: delay, err: describe(err) }, "waiting for dependency");
          await sleep(delay, stopping.signal);
          delay = Math.min(delay * 2, maxRetryDelayMs);
        }
      }
      return never;
    },
    ready(checks) {
      if (stopping.signal.aborted) return;
      started = true;
      update();
      let running = false;
      const pass = async () => {
        const results = await Promise.allSettled(
          Object.entries(checks).map(async ([name, check]) => {
            try {
              await within(check(), checkIntervalMs, name);
              return undefined;
            } catch (err) {
              return { name, err: describe(err) };
            }
          }),
        );
        const failures = results.flatMap((r) => (r.status === "fulfilled" && r.value ? [r.value] : []));
        const names = failures.map((f) => f.name);
        if (names.join() !== failing.join()) {
          if (names.length > 0) logger.warn({ failing: failures }, "dependency unreachable: NOT_SERVING");
          else logger.info({ recovered: failing }, "dependencies reachable again: SERVING");
        }
        failing = names;
        update();
      };
      checkTimer = setInterval(() => {
        // NOTE: a pass never overlaps the previous one: each check is bounded by the interval.
        if (running || stopping.signal.aborted) return;
        running = true;
        void pass().finally(() => {
          running = false;
        });
      }, checkIntervalMs);
    },
    onDrain(step) {
      drains.push(step);
    },
    onClose(what, step) {
      closes.push({ what, step });
    },
  };
}
