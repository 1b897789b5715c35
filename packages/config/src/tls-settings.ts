import { accessSync, constants } from "node:fs";
import { z } from "zod";
import { ConfigError } from "./config.js";

/** A PEM file's path; empty means unset. */
const pemFile = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v ? v : undefined));

const bool = z
  .union([z.boolean(), z.enum(["true", "false"], "expected true or false").transform((v) => v === "true")])
  .default(true);

/** The api's TLS: its public port, and its client certificate for volume hosts. */
export const apiTlsFields = {
  /** The public port's certificate (PEM, may hold the chain); with the key, the port speaks TLS only. */
  CINDERBLOCK_API_TLS_CERT_FILE: pemFile,
  CINDERBLOCK_API_TLS_KEY_FILE: pemFile,
  /** When set, callers must present a client certificate signed by this CA. */
  CINDERBLOCK_API_TLS_CLIENT_CA_FILE: pemFile,
  /** Server reflection (grpcurl, `buf curl` without .proto files) on the public port. */
  CINDERBLOCK_API_REFLECTION: bool,
  /** The api's client certificate, key and the CA of the volume hosts' certificates (mTLS). */
  CINDERBLOCK_HOST_TLS_CERT_FILE: pemFile,
  CINDERBLOCK_HOST_TLS_KEY_FILE: pemFile,
  CINDERBLOCK_HOST_TLS_CA_FILE: pemFile,
};

/** A volume host's internal service: mutual TLS only. */
export const volumeTlsFields = {
  CINDERBLOCK_VOLUME_TLS_CERT_FILE: pemFile,
  CINDERBLOCK_VOLUME_TLS_KEY_FILE: pemFile,
  /** The CA that signs the certificates of the callers (the api). */
  CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE: pemFile,
  /** Names a caller's certificate must carry (a SAN DNS name, or the CN when it has no SAN). */
  CINDERBLOCK_VOLUME_TLS_ALLOWED_CLIENTS: z
    .string()
    .default("cinderblock-api")
    .transform((text, ctx) => {
      const names = text
        .split(",")
        .map((n) => n.trim())
        .filter((n) => n !== "");
      if (names.length > 0) return names;
      ctx.addIssue({ code: "custom", message: "expected a comma-separated list of certificate names" });
      return z.NEVER;
    }),
};

type Settings = Record<string, unknown>;

/** Refinement of the api's schema: a certificate needs its key (and a client CA needs both). */
export function checkApiTls(config: Settings, ctx: z.RefinementCtx): void {
  pair(config, ctx, "CINDERBLOCK_API_TLS_CERT_FILE", "CINDERBLOCK_API_TLS_KEY_FILE");
  if (config.CINDERBLOCK_API_TLS_CLIENT_CA_FILE && !config.CINDERBLOCK_API_TLS_CERT_FILE) {
    ctx.addIssue({
      code: "custom",
      path: ["CINDERBLOCK_API_TLS_CLIENT_CA_FILE"],
      message: "client certificates need TLS: set CINDERBLOCK_API_TLS_CERT_FILE and CINDERBLOCK_API_TLS_KEY_FILE too",
    });
  }
  pair(config, ctx, "CINDERBLOCK_HOST_TLS_CERT_FILE", "CINDERBLOCK_HOST_TLS_KEY_FILE");
}

/** Refinement of the volume service's schema: a certificate needs its key. */
export function checkVolumeTls(config: Settings, ctx: z.RefinementCtx): void {
  pair(config, ctx, "CINDERBLOCK_VOLUME_TLS_CERT_FILE", "CINDERBLOCK_VOLUME_TLS_KEY_FILE");
}

function pair(config: Settings, ctx: z.RefinementCtx, cert: string, key: string): void {
  if (Boolean(config[cert]) === Boolean(config[key])) return;
  const [missing, given] = config[cert] ? [key, cert] : [cert, key];
  ctx.addIssue({ code: "custom", path: [missing], message: `required with ${given} (set both or neither)` });
}

/** Certificate files a TLS endpoint uses. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** The CA that peers' certificates must chain to. */
  caFile?: string;
}

/**
 * The public port's certificate, key and optional client CA, or undefined for a plaintext port
 * (development). Throws a ConfigError naming any setting whose file cannot be read.
 */
export function apiServerTls(config: z.infer<z.ZodObject<typeof apiTlsFields>>): TlsFiles | undefined {
  const certFile = config.CINDERBLOCK_API_TLS_CERT_FILE;
  const keyFile = config.CINDERBLOCK_API_TLS_KEY_FILE;
  if (!certFile || !keyFile) return undefined;
  const caFile = config.CINDERBLOCK_API_TLS_CLIENT_CA_FILE;
  readable({
    CINDERBLOCK_API_TLS_CERT_FILE: certFile,
    CINDERBLOCK_API_TLS_KEY_FILE: keyFile,
    CINDERBLOCK_API_TLS_CLIENT_CA_FILE: caFile,
  });
  return { certFile, keyFile, caFile };
}

/**
 * The api's client certificate for volume hosts, whose internal service is mTLS-only: all three
 * settings are required (a ConfigError names those missing or unreadable).
 */
export function hostClientTls(config: z.infer<z.ZodObject<typeof apiTlsFields>>): Required<TlsFiles> {
  const files = {
    CINDERBLOCK_HOST_TLS_CERT_FILE: config.CINDERBLOCK_HOST_TLS_CERT_FILE,
    CINDERBLOCK_HOST_TLS_KEY_FILE: config.CINDERBLOCK_HOST_TLS_KEY_FILE,
    CINDERBLOCK_HOST_TLS_CA_FILE: config.CINDERBLOCK_HOST_TLS_CA_FILE,
  };
  required(files, "volume hosts accept only mutual TLS: the api needs a client certificate, its key and their CA");
  readable(files);
  return {
    certFile: files.CINDERBLOCK_HOST_TLS_CERT_FILE as string,
    keyFile: files.CINDERBLOCK_HOST_TLS_KEY_FILE as string,
    caFile: files.CINDERBLOCK_HOST_TLS_CA_FILE as string,
  };
}

/** A volume host's mTLS settings: certificate, key and client CA are required, as in {@link hostClientTls}. */
export function volumeServerTls(
  config: z.infer<z.ZodObject<typeof volumeTlsFields>>,
): Required<TlsFiles> & { allowedClients: string[] } {
  const files = {
    CINDERBLOCK_VOLUME_TLS_CERT_FILE: config.CINDERBLOCK_VOLUME_TLS_CERT_FILE,
    CINDERBLOCK_VOLUME_TLS_KEY_FILE: config.CINDERBLOCK_VOLUME_TLS_KEY_FILE,
    CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE: config.CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE,
  };
  required(files, "the volume host's internal service accepts only mutual TLS");
  readable(files);
  return {
    certFile: files.CINDERBLOCK_VOLUME_TLS_CERT_FILE as string,
    keyFile: files.CINDERBLOCK_VOLUME_TLS_KEY_FILE as string,
    caFile: files.CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE as string,
    allowedClients: config.CINDERBLOCK_VOLUME_TLS_ALLOWED_CLIENTS,
  };
}

function required(files: Record<string, string | undefined>, why: string): void {
  const missing = Object.keys(files).filter((k) => !files[k]);
  if (missing.length === 0) return;
  throw new ConfigError(`invalid configuration:\n${missing.map((k) => `  ${k}: required (${why})`).join("\n")}`);
}

function readable(files: Record<string, string | undefined>): void {
  const problems: string[] = [];
  for (const [setting, path] of Object.entries(files)) {
    if (!path) continue;
    try {
      accessSync(path, constants.R_OK);
    } catch (error) {
      problems.push(`  ${setting}=${JSON.stringify(path)}: cannot read the file (${(error as Error).message})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
}
