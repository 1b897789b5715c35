import { describe, expect, it } from "vitest";
import { stopTimeoutMs } from "./processes.js";

describe("stopTimeoutMs", () => {
  it("covers the services' drain: their grace period, 5 s to close connections, and a margin", () => {
    expect(stopTimeoutMs({})).toBe(30_000);
    expect(stopTimeoutMs({ CINDERBLOCK_SHUTDOWN_GRACE: "45" })).toBe(55_000);
    // The services refuse such a value at start; the launcher only must not wait 0 s or NaN.
    expect(stopTimeoutMs({ CINDERBLOCK_SHUTDOWN_GRACE: "soon" })).toBe(30_000);
  });
});
