import { describe, expect, it } from "vitest";
import { createLifecycle, type LifecycleOptions } from "./lifecycle.js";
import { createLogger } from "./logger.js";

/** A process stand-in: signals are sent by the test, exit codes recorded. */
function fakeProcess() {
  const listeners = new Map<string, (signal: NodeJS.Signals) => void>();
  let resolveExit: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  const codes: number[] = [];
  return {
    on(signal: "SIGTERM" | "SIGINT" | "SIGHUP", listener: (signal: NodeJS.Signals) => void) {
      listeners.set(signal, listener);
    },
    exit(code: number) {
      codes.push(code);
      resolveExit(code);
    },
    send(signal: "SIGTERM" | "SIGINT" | "SIGHUP") {
      listeners.get(signal)?.(signal);
    },
    exited,
    codes,
  };
}

function setup(overrides: Partial<LifecycleOptions> = {}) {
  const proc = fakeProcess();
  const lifecycle = createLifecycle({
    logger: createLogger({ service: "test", level: "silent" }),
    graceMs: 200,
    checkIntervalMs: 10,
    maxRetryDelayMs: 5,
    process: proc,
    ...overrides,
  });
  const health: boolean[] = [];
  lifecycle.reportHealthTo((serving) => health.push(serving));
  return { proc, lifecycle, health };
}

/** Resolves once `predicate` holds (checked after each turn of the event loop). */
async function until(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setTimeout(resolve, 1));
}

describe("lifecycle", () => {
  it("is NOT_SERVING until ready, then SERVING", () => {
    const { lifecycle, health } = setup();
    expect(health).toEqual([false]);
    lifecycle.ready({});
    expect(health).toEqual([false, true]);
  });

  it("retries a dependency until it answers", async () => {
    const { lifecycle } = setup();
    let calls = 0;
    const value = await lifecycle.retry("postgres", async () => {
      calls++;
      if (calls < 3) throw new Error("ECONNREFUSED");
      return "connected";
    });
    expect(value).toBe("connected");
    expect(calls).toBe(3);
  });

  it("turns NOT_SERVING while a dependency check fails and SERVING when it answers again", async () => {
    const { lifecycle, health } = setup();
    let up = true;
    lifecycle.ready({
      nats: async () => {
        if (!up) throw new Error("disconnected");
      },
      postgres: async () => {},
    });
    expect(health.at(-1)).toBe(true);
    up = false;
    await until(() => health.at(-1) === false);
    up = true;
    await until(() => health.at(-1) === true);
    expect(health).toEqual([false, true, false, true]);
  });

  it("counts a check that hangs past the interval as failing", async () => {
    const { lifecycle, health } = setup();
    lifecycle.ready({ postgres: () => new Promise(() => {}) });
    await until(() => health.at(-1) === false);
  });

  it("on SIGTERM turns NOT_SERVING first, drains, closes in reverse order and exits 0", async () => {
    const { proc, lifecycle, health } = setup();
    lifecycle.ready({});
    const order: string[] = [];
    let finishInFlight: () => void = () => {};
    lifecycle.onClose("db", async () => {
      order.push("close db");
    });
    lifecycle.onClose("bus", async () => {
      order.push("close bus");
    });
    lifecycle.onDrain(async () => {
      order.push(`drain grpc (serving: ${String(health.at(-1))})`);
      await new Promise<void>((resolve) => {
        finishInFlight = resolve;
      });
      order.push("grpc drained");
    });
    lifecycle.onDrain(async () => {
      order.push("drain consumer");
    });
    proc.send("SIGTERM");
    expect(lifecycle.signal.aborted).toBe(true);
    await until(() => order.length === 2);
    finishInFlight();
    expect(await proc.exited).toBe(0);
    expect(order).toEqual(["drain grpc (serving: false)", "drain consumer", "grpc drained", "close bus", "close db"]);
  });

  it("stops the same way on SIGHUP (the terminal it was started from closed)", async () => {
    const { proc, lifecycle, health } = setup();
    lifecycle.ready({});
    const order: string[] = [];
    lifecycle.onDrain(async () => {
      order.push(`drain (serving: ${String(health.at(-1))})`);
    });
    lifecycle.onClose("db", async () => {
      order.push("close db");
    });
    proc.send("SIGHUP");
    expect(lifecycle.signal.aborted).toBe(true);
    expect(await proc.exited).toBe(0);
    expect(order).toEqual(["drain (serving: false)", "close db"]);
  });

  it("gives every drain step the same deadline, the grace period from the signal", async () => {
    const { proc, lifecycle } = setup({ graceMs: 30_000 });
    const deadlines: number[] = [];
    lifecycle.onDrain(async (deadline) => {
      deadlines.push(deadline);
    });
    lifecycle.onDrain(async (deadline) => {
      deadlines.push(deadline);
    });
    const before = Date.now();
    proc.send("SIGTERM");
    await proc.exited;
    expect(deadlines[0]).toBe(deadlines[1]);
    expect(deadlines[0]).toBeGreaterThanOrEqual(before + 30_000);
  });

  it("exits 0 even when a connection never closes, and 1 when a drain step fails", async () => {
    const hung = setup({ closeTimeoutMs: 20 });
    hung.lifecycle.onClose("bus", () => new Promise(() => {}));
    hung.proc.send("SIGTERM");
    expect(await hung.proc.exited).toBe(0);

    const failing = setup();
    failing.lifecycle.onDrain(async () => {
      throw new Error("boom");
    });
    failing.proc.send("SIGINT");
    expect(await failing.proc.exited).toBe(1);
  });

  it("a stop during start-up stops retrying, and a second signal exits 1 at once", async () => {
    const { proc, lifecycle } = setup();
    let calls = 0;
    let settled = false;
    let finishDrain: () => void = () => {};
    lifecycle.onDrain(
      () =>
        new Promise<void>((resolve) => {
          finishDrain = resolve;
        }),
    );
    void lifecycle
      .retry("nats", async () => {
        calls++;
        throw new Error("ECONNREFUSED");
      })
      .finally(() => {
        settled = true;
      });
    await until(() => calls >= 2);
    proc.send("SIGTERM");
    const callsAtStop = calls;
    proc.send("SIGTERM");
    expect(proc.codes).toEqual([1]);
    finishDrain();
    await until(() => proc.codes.length === 2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toBe(callsAtStop);
    expect(settled).toBe(false);
  });
});
