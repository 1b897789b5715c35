import type { ApiUseCases } from "@cinderblock/domain";
import { describe, expect, it } from "vitest";
import { pendingUseCases } from "./starting.js";

describe("pending use cases", () => {
  it("answer UNAVAILABLE until the real ones are set, then pass every call through", async () => {
    const pending = pendingUseCases();
    expect(() => pending.useCases.getQuotas({} as never, "p1")).toThrow(
      expect.objectContaining({ code: "UNAVAILABLE", message: expect.stringContaining("starting") }),
    );
    pending.resolve({ getQuotas: async () => ({ projectId: "p1", quotas: [] }) } as unknown as ApiUseCases);
    expect(await pending.useCases.getQuotas({} as never, "p1")).toEqual({ projectId: "p1", quotas: [] });
  });
});
