import { resolve } from "node:path";
import type { VolumeConfig } from "@cinderblock/config";
import { z } from "zod";
import type { VolumeDriver } from "./driver.js";
import { createFileDriver } from "./file/file-driver.js";
import { createCommandRunner } from "./lvm/command-runner.js";
import { isLvName, isVgName } from "./lvm/lvm.js";
import { createLvmDriver } from "./lvm/lvm-driver.js";
import { createRbdDriver } from "./rbd/rbd-driver.js";

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
  /** Tests only: every blank volume create fails (see FileDriverOptions.testFailCreate). */
  testFailCreate: z.boolean().optional(),
});

const lvmOptions = z.strictObject({
  volumeGroup: z.string().refine(isVgName, "expected a volume group name"),
  /** Cinder's lvm_type: `default` is thick. */
  lvmType: z
    .enum(["thin", "thick", "default"])
    .default("thick")
    .transform((t) => (t === "default" ? "thick" : t)),
  thinPool: z.string().refine(isLvName, "expected a logical volume name").optional(),
  maxOverSubscriptionRatio: z.number().min(1).optional(),
  reservedPercentage: z.number().min(0).max(100).optional(),
  volumeClear: z.enum(["zero", "none"]).optional(),
  commandTimeoutSeconds: z.number().int().min(1).optional(),
  copyTimeoutSeconds: z.number().int().min(1).optional(),
  /** Where commands run: this host (optionally through a root helper), or the LVM test guest's agent. */
  runner: z
    .discriminatedUnion("kind", [
      z.strictObject({ kind: z.literal("local"), rootHelper: z.array(z.string().min(1)).optional() }),
      z.strictObject({
        kind: z.literal("agent"),
        host: z.string().min(1).default("127.0.0.1"),
        port: z.number().int().min(1).max(65535),
      }),
    ])
    .default({ kind: "local" }),
});

/** A Ceph name (pool, user, cluster) that is safe inside an image spec `pool/image@snap`. */
const cephName = z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, "expected letters, digits, '_', '.' or '-'");

/** After Cinder's rbd_* options; see the README's rbd table. */
const rbdOptions = z.strictObject({
  pool: cephName.default("rbd"),
  user: cephName.default("admin"),
  clusterName: cephName.default("ceph"),
  confPath: z.string().min(1).optional(),
  keyring: z.string().min(1).optional(),
  secretUuid: z.uuid().optional(),
  maxCloneDepth: z.number().int().min(0).default(5),
  flattenVolumeFromSnapshot: z.boolean().default(false),
  flattenConcurrency: z.number().int().min(1).max(16).default(2),
  connectTimeoutSeconds: z.number().int().min(1).default(10),
  timeoutSeconds: z.number().int().min(1).default(60),
  longTimeoutSeconds: z.number().int().min(1).default(3600),
  client: z.enum(["auto", "librbd", "cli"]).default("auto"),
  reservedPercentage: z.number().min(0).max(100).default(0),
  maxOverSubscriptionRatio: z.number().min(1).default(20),
  reportDynamicTotalCapacity: z.boolean().default(true),
});

/** Builds the configured backend's driver (one per volume process for now). */
export function createDriver(config: VolumeConfig): VolumeDriver {
  switch (config.CINDERBLOCK_VOLUME_DRIVER) {
    case "file": {
      const options = parseDriverOptions("file", fileOptions, config.CINDERBLOCK_DRIVER_OPTIONS);
      return createFileDriver({
        ...options,
        dataDir: resolve(options.dataDir ?? config.CINDERBLOCK_FILE_DIR),
        member: config.CINDERBLOCK_CLUSTER === undefined ? undefined : config.CINDERBLOCK_HOST,
      });
    }
    case "lvm": {
      const { runner, commandTimeoutSeconds, copyTimeoutSeconds, ...options } = parseDriverOptions(
        "lvm",
        lvmOptions,
        config.CINDERBLOCK_DRIVER_OPTIONS,
      );
      return createLvmDriver({
        ...options,
        runner: createCommandRunner(runner),
        ...(commandTimeoutSeconds === undefined ? {} : { commandTimeoutMs: commandTimeoutSeconds * 1000 }),
        ...(copyTimeoutSeconds === undefined ? {} : { copyTimeoutMs: copyTimeoutSeconds * 1000 }),
      });
    }
    case "rbd":
      return createRbdDriver(parseDriverOptions("rbd", rbdOptions, config.CINDERBLOCK_DRIVER_OPTIONS));
  }
}
