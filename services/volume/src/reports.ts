/** Options for {@link startCapabilityReports}. */
export interface CapabilityReportsOptions {
  /** Sends one heartbeat with the backend's capabilities; resolves with the state it reported. */
  report(): Promise<"up" | "down">;
  /** Milliseconds between reports while the backend is up (Cinder's report_interval). */
  intervalMs: number;
  /** The delay after the first report that says down (or fails); it doubles up to `intervalMs`. Default 1 s. */
  quickMs?: number;
  /** The state of the report sent before the loop starts (default "up": the normal interval first). */
  first?: "up" | "down";
  /** A report that failed (the next one comes as after a "down"). */
  onError(error: unknown): void;
}

/**
 * Reports the backend's capabilities over and over: every `intervalMs` while it is up, but soon
 * again (after `quickMs`, then twice that, and so on up to `intervalMs`) after a report that said
 * down or failed. NOTE: a backend's storage is often not ready when its volume host starts (Ceph
 * not yet listing the pool); its first report says down with 0 GiB, and the scheduler waits for
 * an up one, which should then come within a second or two, not a whole interval later.
 */
export function startCapabilityReports(options: CapabilityReportsOptions): { stop(): void } {
  const quickMs = Math.min(options.quickMs ?? 1000, options.intervalMs);
  let backoffMs = quickMs;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const schedule = (state: "up" | "down") => {
    if (stopped) return;
    let delay = options.intervalMs;
    if (state === "up") backoffMs = quickMs;
    else {
      delay = backoffMs;
      backoffMs = Math.min(backoffMs * 2, options.intervalMs);
    }
    timer = setTimeout(() => {
      options.report().then(
        (reported) => schedule(reported),
        (error: unknown) => {
          options.onError(error);
          schedule("down");
        },
      );
    }, delay);
  };
  schedule(options.first ?? "up");
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
