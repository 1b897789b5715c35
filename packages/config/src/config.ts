import { z } from "zod";
import { observabilityFields } from "./observability.js";

/**
 * Thrown when the environment holds a bad value; the message names every bad variable, so a
 * service can print it and exit.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:50051");

/** A NATS subject token: no dots, spaces or wildcards. */
const subjectToken = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, "expected letters, digits, '_' or '-' (1-64 characters)");

/** A quota limit: a count, or -1 for unlimited (as in Cinder). */
const quotaLimit = z.coerce.number().int().min(-1, "expected -1 (unlimited) or more");

const common = {
  DATABASE_URL: z.url().default("postgres://postgres@127.0.0.1:5432/cinderblock"),
  CINDERBLOCK_DB_POOL_MAX: z.coerce.number().int().min(1).max(100).default(10),
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  /** Root of every subject and stream name; tests use their own so runs don't collide. */
  CINDERBLOCK_NATS_PREFIX: subjectToken.default("cinderblock"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Seconds after the last heartbeat at which a volume host counts as down (Cinder's service_down_time). */
  CINDERBLOCK_SERVICE_DOWN_TIME: z.coerce.number().int().min(1).default(60),
};

const apiSchema = z.object({
  ...common,
  ...observabilityFields(9464),
  /** Milliseconds to wait for a compute agent to confirm a quiesce (SnapshotInstance). */
  CINDERBLOCK_QUIESCE_TIMEOUT_MS: z.coerce.number().int().min(1).default(5000),
  /** Seconds SnapshotInstance waits for the snapshots to become available before thawing. */
  CINDERBLOCK_SNAPSHOT_INSTANCE_TIMEOUT: z.coerce.number().int().min(1).default(300),
  CINDERBLOCK_API_LISTEN: hostPort.default("127.0.0.1:50051"),
  /** Only `noauth` exists so far: identity comes from x-project-id / x-user-id / x-roles metadata. */
  CINDERBLOCK_AUTH_STRATEGY: z.literal("noauth").default("noauth"),
  CINDERBLOCK_QUOTA_VOLUMES: quotaLimit.default(10),
  CINDERBLOCK_QUOTA_SNAPSHOTS: quotaLimit.default(10),
  CINDERBLOCK_QUOTA_GIGABYTES: quotaLimit.default(1000),
  CINDERBLOCK_DEFAULT_AVAILABILITY_ZONE: z.string().min(1).max(255).default("nova"),
  /** Seconds a create may stay in flight before the reconciler dispatches it again. */
  CINDERBLOCK_OPERATION_TIMEOUT: z.coerce.number().int().min(1).default(120),
});

const schedulerSchema = z.object({
  ...common,
  ...observabilityFields(9465),
  /** Seconds a re-dispatched create may stay in flight before the reconciler acts again. */
  CINDERBLOCK_OPERATION_TIMEOUT: z.coerce.number().int().min(1).default(120),
  /** Dispatches of one operation before the reconciler gives up and marks the resource `error`. */
  CINDERBLOCK_OPERATION_MAX_ATTEMPTS: z.coerce.number().int().min(1).default(3),
  CINDERBLOCK_RECONCILE_INTERVAL: z.coerce.number().int().min(1).default(10),
});

const volumeSchema = z.object({
  ...common,
  ...observabilityFields(9466),
  /** This storage host's name; its subjects are `<prefix>.v1.volume.<host>.*`. */
  CINDERBLOCK_HOST: subjectToken.default("vol1"),
  CINDERBLOCK_BACKEND_NAME: subjectToken.default("file"),
  /** The backend's driver; its own settings come in CINDERBLOCK_DRIVER_OPTIONS. */
  CINDERBLOCK_VOLUME_DRIVER: z.enum(["file", "lvm", "rbd"]).default("file"),
  /**
   * Driver settings as a JSON object, validated by the driver's own schema (see the README's
   * table per driver). The `file` driver's data directory may also come from CINDERBLOCK_FILE_DIR.
   */
  CINDERBLOCK_DRIVER_OPTIONS: z
    .string()
    .default("{}")
    .transform((text, ctx) => {
      try {
        const value: unknown = JSON.parse(text);
        if (typeof value === "object" && value !== null && !Array.isArray(value))
          return value as Record<string, unknown>;
      } catch {
        // reported below
      }
      ctx.addIssue({ code: "custom", message: "expected a JSON object" });
      return z.NEVER;
    }),
  CINDERBLOCK_FILE_DIR: z.string().min(1).default("./data/volumes"),
  CINDERBLOCK_AVAILABILITY_ZONE: z.string().min(1).max(255).default("nova"),
  /** Seconds between heartbeats and capability reports (Cinder's report_interval). */
  CINDERBLOCK_REPORT_INTERVAL: z.coerce.number().int().min(1).default(10),
  /** The host's internal gRPC server (attach calls from the api); port 0 picks one. */
  CINDERBLOCK_VOLUME_LISTEN: hostPort.default("127.0.0.1:0"),
  /** The address the api should use to reach it, when the listen address is not it (e.g. 0.0.0.0). */
  CINDERBLOCK_VOLUME_ADVERTISE: z.string().default(""),
});

export type ApiConfig = z.infer<typeof apiSchema>;
export type SchedulerConfig = z.infer<typeof schedulerSchema>;
export type VolumeConfig = z.infer<typeof volumeSchema>;

function parse<T extends z.ZodType>(schema: T, env: Record<string, string | undefined>): z.infer<T> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const lines = result.error.issues.map(
    (issue) => `  ${issue.path.join(".")}=${JSON.stringify(env[String(issue.path[0])] ?? "")}: ${issue.message}`,
  );
  throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
}

/** Parses the api service's configuration from an environment (call once, in main.ts). */
export function loadApiConfig(env: Record<string, string | undefined>): ApiConfig {
  return parse(apiSchema, env);
}

/** Parses the scheduler service's configuration from an environment (call once, in main.ts). */
export function loadSchedulerConfig(env: Record<string, string | undefined>): SchedulerConfig {
  return parse(schedulerSchema, env);
}

/** Parses the volume service's configuration from an environment (call once, in main.ts). */
export function loadVolumeConfig(env: Record<string, string | undefined>): VolumeConfig {
  return parse(volumeSchema, env);
}
