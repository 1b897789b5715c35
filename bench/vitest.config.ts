import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // The quick bench starts the three services and the floor as real processes.
    testTimeout: 300_000,
    hookTimeout: 60_000,
  },
});
