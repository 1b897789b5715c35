import { describe, expect, it } from "vitest";
import { createBatcher } from "./batcher.js";

describe("createBatcher", () => {
  it("runs a lone item at once and groups those that arrive while a batch runs", async () => {
    const batches: number[][] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const batcher = createBatcher(async (items: number[]) => {
      batches.push(items);
      if (batches.length === 1) await gate;
      return items.map((n) => n * 10);
    });
    const first = batcher.submit(1);
    const rest = [batcher.submit(2), batcher.submit(3), batcher.submit(4)];
    expect(batches).toEqual([[1]]);
    release();
    expect(await Promise.all([first, ...rest])).toEqual([10, 20, 30, 40]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it("splits at maxBatch", async () => {
    const sizes: number[] = [];
    const batcher = createBatcher(async (items: number[]) => {
      sizes.push(items.length);
      await new Promise((r) => setTimeout(r, 1));
      return items;
    }, 2);
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.submit(n)));
    expect(results).toEqual([1, 2, 3, 4, 5]);
    expect(sizes).toEqual([1, 2, 2]);
  });

  it("rejects every item of a failed batch and keeps serving later ones", async () => {
    let fail = true;
    const batcher = createBatcher(async (items: string[]) => {
      if (fail) throw new Error("database down");
      return items.map((s) => s.toUpperCase());
    });
    await expect(batcher.submit("a")).rejects.toThrow("database down");
    fail = false;
    expect(await batcher.submit("b")).toBe("B");
  });
});
