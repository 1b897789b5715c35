import { afterEach, describe, expect, it } from "vitest";
import { createSpawnPool, type SpawnPool } from "./spawn-pool.js";

describe("createSpawnPool", () => {
  let pool: SpawnPool | undefined;
  afterEach(async () => {
    await pool?.close();
  });

  it("runs commands from worker threads, concurrently, and resolves when they succeed", async () => {
    pool = createSpawnPool(2);
    await Promise.all(Array.from({ length: 6 }, () => pool?.execFile("true", [], { timeout: 10_000 })));
  });

  it("rejects with the exit code and stderr of a failing command", async () => {
    pool = createSpawnPool();
    await expect(pool.execFile("sh", ["-c", "echo nope >&2; exit 3"], { timeout: 10_000 })).rejects.toMatchObject({
      code: 3,
      stderr: "nope\n",
    });
  });

  it("rejects with ENOENT and the path when the command does not exist", async () => {
    pool = createSpawnPool();
    await expect(pool.execFile("no-such-command-here", [], { timeout: 10_000 })).rejects.toMatchObject({
      code: "ENOENT",
      path: "no-such-command-here",
    });
  });

  it("kills a command past its timeout", async () => {
    pool = createSpawnPool();
    await expect(pool.execFile("sleep", ["5"], { timeout: 100 })).rejects.toMatchObject({ killed: true });
  });
});
