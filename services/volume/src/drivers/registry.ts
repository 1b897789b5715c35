import { resolve } from "node:path";
import type { VolumeConfig } from "@cinderblock/config";
import { z } from "zod";
import type { VolumeDriver } from "./driver.js";
import { createFileDriver } from "./file/file-driver.js";

/** Thrown when a driver's options are invalid; the message names the option. */
class DriverOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Parses driver options with a driver's schema, naming each bad option in the error. */
function parseDriverOptions<T extends z.ZodType>(driver: string, schema: T, options: unknown): z.infer<T> {
  const result = schema.safeParse(options);
  if (result.success) return result.data;
  const lines = result.error.issues.map((i) => `  CINDERBLOCK_DRIVER_OPTIONS.${i.path.join(".")}: ${i.message}`);
  throw new DriverOptionsError(`invalid ${driver} driver options:\n${lines.join("\n")}`);
}

const fileOptions = z.strictObject({
  dataDir: z.string().min(1).optional(),
  reservedPercentage: z.number().min(0).max(100).optional(),
  maxOverSubscriptionRatio: z.number().min(1).optional(),
});

/** Builds the configured backend's driver (one per volume process for now). */
export function createDriver(config: VolumeConfig): VolumeDriver {
  switch (config.CINDERBLOCK_VOLUME_DRIVER) {
    case "file": {
      const options = parseDriverOptions("file", fileOptions, config.CINDERBLOCK_DRIVER_OPTIONS);
      return createFileDriver({ ...options, dataDir: resolve(options.dataDir ?? config.CINDERBLOCK_FILE_DIR) });
    }
  }
}
