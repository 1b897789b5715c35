import { describe, expect, it } from "vitest";
import { isDatabaseUnavailable } from "./unavailable.js";

describe("isDatabaseUnavailable", () => {
  it("counts a server going away, a broken connection and a write refused by a standby", () => {
    for (const code of ["ECONNREFUSED", "CONNECTION_CLOSED", "57P01", "08006", "25006"]) {
      expect(isDatabaseUnavailable(Object.assign(new Error(code), { code })), code).toBe(true);
    }
    const wrapped = new Error("Failed query", { cause: Object.assign(new Error("read-only"), { code: "25006" }) });
    expect(isDatabaseUnavailable(wrapped)).toBe(true);
  });

  it("does not count a bug or a refusal the same request would meet again", () => {
    for (const code of ["23505", "42P01", "57014", undefined]) {
      expect(isDatabaseUnavailable(Object.assign(new Error("x"), { code })), String(code)).toBe(false);
    }
  });
});
