import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // The services are real processes; starting them and waiting on real I/O takes seconds.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
