import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { startCapabilityReports } from "./reports.js";

// Unit: the report loop's timing, on fake timers.

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

/** Starts the loop with reports that answer `states` in turn (then "up"), and records when each was sent. */
function run(states: Array<"up" | "down" | Error>, first: "up" | "down") {
  const sentAt: number[] = [];
  const errors: unknown[] = [];
  const start = Date.now();
  const loop = startCapabilityReports({
    intervalMs: 10_000,
    quickMs: 1000,
    first,
    async report() {
      sentAt.push(Date.now() - start);
      const next = states.shift() ?? "up";
      if (next instanceof Error) throw next;
      return next;
    },
    onError: (e) => errors.push(e),
  });
  return { sentAt, errors, loop };
}

describe("startCapabilityReports", () => {
  it("reports again after 1 s when the backend said down, backing off to the interval", async () => {
    const { sentAt, loop } = run(["down", "down", "up", "up"], "down");
    await vi.advanceTimersByTimeAsync(40_000);
    loop.stop();
    // first (down) at 0 → +1 s: down → +2 s: down → +4 s: up → +10 s: up → +10 s ...
    expect(sentAt).toEqual([1000, 3000, 7000, 17_000, 27_000, 37_000]);
  });

  it("treats a failed report like a down one, and starts over after an up one", async () => {
    const { sentAt, errors, loop } = run([new Error("PostgreSQL is away"), "up", "down", "up"], "down");
    await vi.advanceTimersByTimeAsync(25_000);
    loop.stop();
    expect(errors).toHaveLength(1);
    // 1 s: failed → +2 s: up → +10 s: down → +1 s (quick again): up → +10 s
    expect(sentAt).toEqual([1000, 3000, 13_000, 14_000, 24_000]);
  });

  it("keeps the normal interval while the backend is up, and stops", async () => {
    const { sentAt, loop } = run([], "up");
    await vi.advanceTimersByTimeAsync(25_000);
    loop.stop();
    await vi.advanceTimersByTimeAsync(25_000);
    expect(sentAt).toEqual([10_000, 20_000]);
  });
});
