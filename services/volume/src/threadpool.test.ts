import { describe, expect, it } from "vitest";
import { threadPoolSize } from "./threadpool.js";

describe("threadPoolSize", () => {
  it("gives the rbd driver a thread per cast in flight", () => {
    expect(threadPoolSize({ CINDERBLOCK_VOLUME_DRIVER: "rbd" })).toBe("64");
  });

  it("keeps Node's default for the other drivers", () => {
    expect(threadPoolSize({ CINDERBLOCK_VOLUME_DRIVER: "file" })).toBeUndefined();
    expect(threadPoolSize({ CINDERBLOCK_VOLUME_DRIVER: "lvm" })).toBeUndefined();
    expect(threadPoolSize({})).toBeUndefined();
  });

  it("keeps the operator's UV_THREADPOOL_SIZE", () => {
    expect(threadPoolSize({ CINDERBLOCK_VOLUME_DRIVER: "rbd", UV_THREADPOOL_SIZE: "8" })).toBeUndefined();
  });
});
