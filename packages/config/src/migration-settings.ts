import { accessSync, constants } from "node:fs";
import { z } from "zod";
import { ConfigError } from "./config.js";

const pemFile = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v ? v : undefined));

/**
 * Host-assisted migration (a retype to another backend, issue 15): the target volume host reads
 * the volume from the source host's internal service, over mutual TLS. Spread into the volume
 * host's schema.
 */
export const migrationFields = {
  /**
   * This host's client certificate and key for calling other volume hosts (its name must be in
   * their CINDERBLOCK_VOLUME_TLS_ALLOWED_PEERS). Unset: the host cannot receive migrated volumes
   * (a migration to it fails, naming why); it can still be migrated from.
   */
  CINDERBLOCK_VOLUME_PEER_TLS_CERT_FILE: pemFile,
  CINDERBLOCK_VOLUME_PEER_TLS_KEY_FILE: pemFile,
  /** The CA of the other hosts' server certificates (default: CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE). */
  CINDERBLOCK_VOLUME_PEER_TLS_CA_FILE: pemFile,
  /**
   * Names a calling volume host's certificate must carry (SAN DNS, or the CN): such a caller may
   * only read a volume being migrated and remove a migrated volume's old copy.
   */
  CINDERBLOCK_VOLUME_TLS_ALLOWED_PEERS: z
    .string()
    .default("cinderblock-volume")
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

type MigrationConfig = z.infer<z.ZodObject<typeof migrationFields>> & {
  CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE?: string;
};

/**
 * The client certificate, key and CA a volume host calls its peers with, or undefined when it has
 * none (it then cannot be a migration's target). A ConfigError names a half-set pair or a file
 * that cannot be read.
 */
export function volumePeerTls(
  config: MigrationConfig,
): { certFile: string; keyFile: string; caFile: string } | undefined {
  const certFile = config.CINDERBLOCK_VOLUME_PEER_TLS_CERT_FILE;
  const keyFile = config.CINDERBLOCK_VOLUME_PEER_TLS_KEY_FILE;
  if (!certFile && !keyFile) return undefined;
  const caFile = config.CINDERBLOCK_VOLUME_PEER_TLS_CA_FILE ?? config.CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE;
  const files = {
    CINDERBLOCK_VOLUME_PEER_TLS_CERT_FILE: certFile,
    CINDERBLOCK_VOLUME_PEER_TLS_KEY_FILE: keyFile,
    CINDERBLOCK_VOLUME_PEER_TLS_CA_FILE: caFile,
  };
  const problems: string[] = [];
  for (const [setting, path] of Object.entries(files)) {
    if (!path) {
      problems.push(`  ${setting}: required with the other peer TLS settings (set the certificate and key together)`);
      continue;
    }
    try {
      accessSync(path, constants.R_OK);
    } catch (error) {
      problems.push(`  ${setting}=${JSON.stringify(path)}: cannot read the file (${(error as Error).message})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  return { certFile: certFile as string, keyFile: keyFile as string, caFile: caFile as string };
}
