import { describe, expect, it } from "vitest";
import { RecentMap } from "./recent-map.js";

describe("RecentMap", () => {
  it("keeps at most its limit, forgetting the least recently used entry first", () => {
    const map = new RecentMap<string, number>(2);
    map.set("a", 1);
    map.set("b", 2);
    expect(map.get("a")).toBe(1); // a is now the most recent
    map.set("c", 3);
    expect(map.size).toBe(2);
    expect(map.get("b")).toBeUndefined();
    expect(map.get("a")).toBe(1);
    expect(map.get("c")).toBe(3);
  });

  it("replaces a key's value without growing, and forgets a deleted key", () => {
    const map = new RecentMap<string, number>(2);
    map.set("a", 1);
    map.set("a", 2);
    expect(map.size).toBe(1);
    expect(map.get("a")).toBe(2);
    map.delete("a");
    expect(map.get("a")).toBeUndefined();
  });

  it("refuses a limit below one", () => {
    expect(() => new RecentMap(0)).toThrow(/limit: must be at least 1/);
  });
});
