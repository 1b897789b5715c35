import { z } from "zod";

/** One NATS server address: `nats://`, `tls://`, `ws://` or `wss://` URL, or `host:port`. */
const SERVER = /^((nats|tls|wss?):\/\/)?[^\s,/]+(:\d{1,5})?\/?$/;

/** An optional text setting; empty (e.g. `NATS_USER=` in a compose file) counts as unset. */
const optionalText = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v ? v : undefined));

/**
 * The NATS connection settings every service shares: the servers, one way to authenticate and
 * TLS. Cross-field rules are in {@link checkNatsSettings}.
 */
export const natsFields = {
  /** One server or a comma-separated list (the client picks one and fails over to the others). */
  NATS_URL: z
    .string()
    .trim()
    .default("nats://127.0.0.1:4222")
    .refine(
      (v) => v.split(",").every((s) => SERVER.test(s.trim())),
      "expected nats://host:port (or tls://, or a comma-separated list of them)",
    ),
  NATS_USER: optionalText,
  NATS_PASSWORD: optionalText,
  NATS_TOKEN: optionalText,
  /** A file holding an NKey seed (`SU...`), for a server that knows the user by its public key. */
  NATS_NKEY_SEED_FILE: optionalText,
  /** A `.creds` file (a user JWT and its NKey seed), for a server run in operator/JWT mode. */
  NATS_CREDS_FILE: optionalText,
  /** CA certificates to verify the server with (turns TLS on). */
  NATS_TLS_CA_FILE: optionalText,
  /** A client certificate, for a server that verifies clients (needs NATS_TLS_KEY_FILE). */
  NATS_TLS_CERT_FILE: optionalText,
  NATS_TLS_KEY_FILE: optionalText,
  /**
   * Copies JetStream keeps of each stream (and so of its consumers): 1 on a single server, 3 on a
   * 3-node cluster (a node may then die, the stream leader included, with nothing lost). At most
   * the cluster's size; the api sets it on streams that exist already, the others create with it.
   */
  CINDERBLOCK_NATS_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
};

type NatsFields = z.infer<z.ZodObject<typeof natsFields>>;

/**
 * The rules between the NATS settings: a user needs a password (and the other way round), at most
 * one way to authenticate, and a client certificate comes with its key. For `.superRefine` on a
 * service's schema; each problem names the setting to change.
 */
export function checkNatsSettings(config: NatsFields, ctx: z.RefinementCtx): void {
  const problem = (key: keyof NatsFields, message: string) =>
    ctx.addIssue({ code: "custom", path: [key], message, input: config[key] });
  // NOTE: a problem is never reported on NATS_PASSWORD or NATS_TOKEN: the error shows the value.
  if (config.NATS_USER && !config.NATS_PASSWORD) problem("NATS_USER", "needs NATS_PASSWORD");
  if (config.NATS_PASSWORD && !config.NATS_USER) problem("NATS_USER", "NATS_PASSWORD is set: set NATS_USER too");
  const methods = (
    [
      ["NATS_USER", config.NATS_USER ?? config.NATS_PASSWORD],
      ["NATS_TOKEN", config.NATS_TOKEN],
      ["NATS_NKEY_SEED_FILE", config.NATS_NKEY_SEED_FILE],
      ["NATS_CREDS_FILE", config.NATS_CREDS_FILE],
    ] as const
  )
    .filter(([, value]) => value !== undefined)
    .map(([name]) => name);
  if (methods.length > 1) {
    problem(
      methods.find((name) => name !== "NATS_TOKEN") ?? "NATS_USER",
      `set only one way to authenticate to NATS (got ${methods.join(", ")}; a user goes with NATS_PASSWORD)`,
    );
  }
  if (config.NATS_TLS_CERT_FILE && !config.NATS_TLS_KEY_FILE) problem("NATS_TLS_CERT_FILE", "needs NATS_TLS_KEY_FILE");
  if (config.NATS_TLS_KEY_FILE && !config.NATS_TLS_CERT_FILE) problem("NATS_TLS_KEY_FILE", "needs NATS_TLS_CERT_FILE");
}

/** How a service authenticates to NATS (at most one way), as `connectBus` takes it. */
export type NatsCredentials =
  | { user: string; password: string }
  | { token: string }
  | { nkeySeedFile: string }
  | { credsFile: string };

/** The NATS connection part of `connectBus`'s options, from a parsed configuration. */
export interface NatsConnectionSettings {
  /** The servers (NATS_URL split at commas). */
  url: string[];
  credentials?: NatsCredentials;
  /** TLS files; present when any NATS_TLS_* is set (TLS is then required). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Replicas of the streams (CINDERBLOCK_NATS_REPLICAS). */
  replicas: number;
}

/** Turns the NATS settings into `connectBus` options (servers, credentials, TLS). */
export function natsConnectionSettings(config: NatsFields): NatsConnectionSettings {
  const settings: NatsConnectionSettings = {
    url: config.NATS_URL.split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    replicas: config.CINDERBLOCK_NATS_REPLICAS,
  };
  if (config.NATS_USER && config.NATS_PASSWORD)
    settings.credentials = { user: config.NATS_USER, password: config.NATS_PASSWORD };
  else if (config.NATS_TOKEN) settings.credentials = { token: config.NATS_TOKEN };
  else if (config.NATS_NKEY_SEED_FILE) settings.credentials = { nkeySeedFile: config.NATS_NKEY_SEED_FILE };
  else if (config.NATS_CREDS_FILE) settings.credentials = { credsFile: config.NATS_CREDS_FILE };
  if (config.NATS_TLS_CA_FILE || config.NATS_TLS_CERT_FILE) {
    settings.tls = {
      ...(config.NATS_TLS_CA_FILE ? { caFile: config.NATS_TLS_CA_FILE } : {}),
      ...(config.NATS_TLS_CERT_FILE ? { certFile: config.NATS_TLS_CERT_FILE } : {}),
      ...(config.NATS_TLS_KEY_FILE ? { keyFile: config.NATS_TLS_KEY_FILE } : {}),
    };
  }
  return settings;
}
