import { readFileSync } from "node:fs";
import { z } from "zod";
import { authFields, checkAuthSettings } from "./auth-settings.js";
import { callLimitFields, statementTimeoutFields } from "./call-limits-settings.js";
import { inputFields } from "./input-settings.js";
import { migrationFields } from "./migration-settings.js";
import { checkNatsSettings, natsFields } from "./nats-settings.js";
import { observabilityFields } from "./observability.js";
import { postgresFields, postgresProblems, postgresUrl } from "./postgres-settings.js";
import { restFields } from "./rest-settings.js";
import { schedulerRetryFields } from "./scheduler-retry-settings.js";
import { schedulerWeigherFields } from "./scheduler-settings.js";
import { isSecretFileKey, printableSetting, resolveSecretFiles } from "./secrets.js";
import { streamFields } from "./stream-settings.js";
import { apiTlsFields, checkApiTls, checkVolumeTls, volumeTlsFields } from "./tls-settings.js";
import { volumeTypeFields } from "./volume-type-settings.js";

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
  DATABASE_URL: postgresUrl.default("postgres://postgres@127.0.0.1:5432/cinderblock"),
  ...postgresFields,
  ...statementTimeoutFields,
  CINDERBLOCK_DB_POOL_MAX: z.coerce.number().int().min(1).max(100).default(10),
  /**
   * Named prepared statements (one round trip per query, no re-parse). `false` only behind a pooler
   * that cannot keep them (PgBouncer in transaction mode before 1.21).
   */
  CINDERBLOCK_DB_PREPARE: z
    .union([z.boolean(), z.enum(["true", "false"], "expected true or false").transform((v) => v === "true")])
    .default(true),
  ...natsFields,
  /** Root of every subject and stream name; tests use their own so runs don't collide. */
  CINDERBLOCK_NATS_PREFIX: subjectToken.default("cinderblock"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Seconds after the last heartbeat at which a volume host counts as down (Cinder's service_down_time). */
  CINDERBLOCK_SERVICE_DOWN_TIME: z.coerce.number().int().min(1).default(60),
  /**
   * Seconds a stopping service (SIGTERM) gives in-flight gRPC calls and message handlers to finish;
   * what is still running then is given up (JetStream redelivers its message). Keep Kubernetes'
   * terminationGracePeriodSeconds at least 10 s above it.
   */
  CINDERBLOCK_SHUTDOWN_GRACE: z.coerce.number().int().min(1).max(3600).default(20),
  /** Seconds between checks that PostgreSQL and NATS answer (health turns NOT_SERVING when not). */
  CINDERBLOCK_HEALTH_INTERVAL: z.coerce.number().int().min(1).max(300).default(5),
};

/**
 * Seconds a cast taken by a scheduler or volume process that then died waits before JetStream
 * hands it to another (the consumer's ack_wait; a live handler signals progress every third of it).
 */
const ackWait = z.coerce.number().int().min(3).max(3600).default(30);

const apiSchema = z
  .object({
    ...common,
    ...observabilityFields(9464),
    ...apiTlsFields,
    /** Milliseconds to wait for a compute agent to confirm a quiesce (SnapshotInstance). */
    CINDERBLOCK_QUIESCE_TIMEOUT_MS: z.coerce.number().int().min(1).default(5000),
    /** Seconds SnapshotInstance waits for the snapshots to become available before thawing. */
    CINDERBLOCK_SNAPSHOT_INSTANCE_TIMEOUT: z.coerce.number().int().min(1).default(300),
    CINDERBLOCK_API_LISTEN: hostPort.default("127.0.0.1:50051"),
    ...authFields,
    ...callLimitFields,
    ...inputFields,
    ...streamFields,
    ...volumeTypeFields,
    ...restFields,
    CINDERBLOCK_QUOTA_VOLUMES: quotaLimit.default(10),
    CINDERBLOCK_QUOTA_SNAPSHOTS: quotaLimit.default(10),
    CINDERBLOCK_QUOTA_GIGABYTES: quotaLimit.default(1000),
    CINDERBLOCK_DEFAULT_AVAILABILITY_ZONE: z.string().min(1).max(255).default("nova"),
    /** Seconds a create may stay in flight before the reconciler dispatches it again. */
    CINDERBLOCK_OPERATION_TIMEOUT: z.coerce.number().int().min(1).default(120),
  })
  .superRefine(checkNatsSettings)
  .superRefine(checkAuthSettings)
  .superRefine(checkApiTls);

const schedulerSchema = z
  .object({
    ...common,
    ...observabilityFields(9465),
    /** Seconds a re-dispatched create may stay in flight before the reconciler acts again. */
    CINDERBLOCK_OPERATION_TIMEOUT: z.coerce.number().int().min(1).default(120),
    /** Dispatches of one operation before the reconciler gives up and marks the resource `error`. */
    CINDERBLOCK_OPERATION_MAX_ATTEMPTS: z.coerce.number().int().min(1).default(3),
    CINDERBLOCK_RECONCILE_INTERVAL: z.coerce.number().int().min(1).default(10),
    /** The scheduler's gRPC server, which serves only grpc.health.v1 (for probes); port 0 picks one. */
    CINDERBLOCK_SCHEDULER_LISTEN: hostPort.default("127.0.0.1:0"),
    /** Seconds a new volume waits for a backend to report up when none has yet (a cold start). */
    CINDERBLOCK_SCHEDULER_BACKEND_WAIT: z.coerce.number().min(0).default(30),
    CINDERBLOCK_CAST_ACK_WAIT: ackWait,
    ...schedulerWeigherFields,
    ...schedulerRetryFields,
  })
  .superRefine(checkNatsSettings);

const volumeSchema = z
  .object({
    ...common,
    ...observabilityFields(9466),
    ...volumeTlsFields,
    ...migrationFields,
    /** This storage host's name; its subjects are `<prefix>.v1.volume.<host>.*`. */
    CINDERBLOCK_HOST: subjectToken.default("vol1"),
    /**
     * The active-active cluster this host is a member of (Cinder's `cluster`): every member sets the
     * same name, backend and driver options on one shared backend; volumes record
     * `<cluster>@<backend>`, casts go to `<prefix>.v1.volume.<cluster>.*` and one member takes each.
     * Unset: the host serves its backend alone under CINDERBLOCK_HOST.
     */
    CINDERBLOCK_CLUSTER: subjectToken.optional(),
    CINDERBLOCK_CAST_ACK_WAIT: ackWait,
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
    ...schedulerRetryFields,
  })
  .superRefine(checkNatsSettings)
  .superRefine(checkVolumeTls)
  .superRefine((config, ctx) => {
    // NOTE: an LVM volume group is one machine's; two members would each see only their own.
    if (config.CINDERBLOCK_CLUSTER !== undefined && config.CINDERBLOCK_VOLUME_DRIVER === "lvm") {
      ctx.addIssue({
        code: "custom",
        path: ["CINDERBLOCK_CLUSTER"],
        message: "the lvm driver cannot share its backend with other members (use rbd, or file on a shared directory)",
        input: config.CINDERBLOCK_CLUSTER,
      });
    }
  });

export type ApiConfig = z.infer<typeof apiSchema>;
export type SchedulerConfig = z.infer<typeof schedulerSchema>;
export type VolumeConfig = z.infer<typeof volumeSchema>;

/** Every setting any service reads, i.e. the keys a config file may hold. */
export const SETTING_NAMES: readonly string[] = [
  ...new Set([
    ...Object.keys(apiSchema.shape),
    ...Object.keys(schedulerSchema.shape),
    ...Object.keys(volumeSchema.shape),
  ]),
].sort();

/** Where the optional config file's path comes from. */
const CONFIG_FILE_VARIABLE = "CINDERBLOCK_CONFIG";

/**
 * Reads the config file named by CINDERBLOCK_CONFIG: a JSON object whose keys are setting names
 * (the same as the environment variables) and whose values are strings, numbers or booleans (an
 * object or array is kept as JSON text, for CINDERBLOCK_DRIVER_OPTIONS). One file may serve all
 * three services, so any service's setting is accepted; an unknown key is refused (a typo would
 * otherwise be silently ignored). A secret may be given as `<NAME>_FILE` here too.
 */
function readConfigFile(path: string): Record<string, string> {
  const where = `${CONFIG_FILE_VARIABLE}=${JSON.stringify(path)}`;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`invalid configuration:\n  ${where}: cannot read the file (${(error as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`invalid configuration:\n  ${where}: not JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`invalid configuration:\n  ${where}: expected a JSON object of settings`);
  }
  const values: Record<string, string> = {};
  const problems: string[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    if (!SETTING_NAMES.includes(key) && !isSecretFileKey(key, (name) => SETTING_NAMES.includes(name))) {
      problems.push(`  ${key} (in ${path}): not a setting`);
    } else if (typeof value === "string") {
      values[key] = value;
    } else if (typeof value === "number" || typeof value === "boolean") {
      values[key] = String(value);
    } else if (typeof value === "object" && value !== null) {
      values[key] = JSON.stringify(value);
    } else {
      problems.push(`  ${key} (in ${path}): expected a string, number, boolean or object`);
    }
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  return values;
}

function parse<T extends z.ZodObject>(schema: T, env: Record<string, string | undefined>): z.infer<T> {
  const path = env[CONFIG_FILE_VARIABLE];
  const names = Object.keys(schema.shape);
  // NOTE: `<NAME>_FILE` is resolved within each source first, so a variable (or its _FILE form)
  // overrides the file's NAME or NAME_FILE alike, and both forms in one source is an error.
  const fromFile = resolveSecretFiles(path ? readConfigFile(path) : {}, names, ` (in ${path})`);
  const fromEnv = resolveSecretFiles(env, names);
  const problems = [...fromFile.problems, ...fromEnv.problems];
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  // NOTE: the environment wins over the file, so one file can be shared and a variable overrides it.
  const merged: Record<string, string | undefined> = { ...fromFile.values, ...fromEnv.values };
  const sourceOf = (key: string): string => {
    const file = fromEnv.files.get(key) ?? (key in fromEnv.values ? undefined : fromFile.files.get(key));
    if (file) return ` (from ${file.variable}=${JSON.stringify(file.path)})`;
    return !(key in fromEnv.values) && key in fromFile.values ? ` (in ${path})` : "";
  };
  const result = schema.safeParse(merged);
  const lines = result.success
    ? postgresProblems(result.data)
    : result.error.issues.map((issue) => ({ key: String(issue.path[0]), message: issue.message }));
  if (result.success && lines.length === 0) return result.data;
  const described = lines.map(({ key, message }) => {
    const value = printableSetting(key, merged[key] ?? "");
    return `  ${key}=${JSON.stringify(value)}${sourceOf(key)}: ${message}`;
  });
  throw new ConfigError(`invalid configuration:\n${described.join("\n")}`);
}

/**
 * Parses the api service's configuration from an environment and the optional CINDERBLOCK_CONFIG
 * file (call once, in main.ts).
 */
export function loadApiConfig(env: Record<string, string | undefined>): ApiConfig {
  return parse(apiSchema, env);
}

/** Parses the scheduler service's configuration, as {@link loadApiConfig} does. */
export function loadSchedulerConfig(env: Record<string, string | undefined>): SchedulerConfig {
  return parse(schedulerSchema, env);
}

/** Parses the volume service's configuration, as {@link loadApiConfig} does. */
export function loadVolumeConfig(env: Record<string, string | undefined>): VolumeConfig {
  return parse(volumeSchema, env);
}
