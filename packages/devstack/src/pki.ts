import { execFile } from "node:child_process";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A certificate and its private key, as PEM files. */
export interface KeyPair {
  certFile: string;
  keyFile: string;
}

/** Options for {@link CertificateAuthority.issue}. */
export interface IssueOptions {
  /** Subject alternative names: DNS names (the first is also the CN; default the file name) and IP addresses. */
  dns?: string[];
  ip?: string[];
  /** What the certificate is for (its extended key usage). */
  usage: "server" | "client";
}

/** A throwaway CA in a directory: its certificate, and leaf certificates it signs on demand. */
export interface CertificateAuthority {
  /** The CA certificate (PEM): what peers are told to trust. */
  certFile: string;
  /** Writes `<name>.pem` and `<name>-key.pem` (EC P-256, signed by this CA) and returns their paths. */
  issue(name: string, options: IssueOptions): Promise<KeyPair>;
}

// NOTE: an empty config, so that the machine's openssl.cnf adds no extensions of its own (its
// v3_ca section would make every certificate `req -x509` writes a CA).
const OPENSSL_CONFIG = "[req]\ndistinguished_name = dn\n[dn]\n";
const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"];

async function openssl(args: string[]): Promise<void> {
  try {
    await run("openssl", args);
  } catch (error) {
    const { code, stderr } = error as { code?: unknown; stderr?: string };
    if (code === "ENOENT") {
      throw new Error("openssl not found: it makes the TLS certificates; install it (Debian: apt-get install openssl)");
    }
    throw new Error(`openssl ${args[0]} failed: ${stderr?.trim() || String(error)}`);
  }
}

/**
 * Creates a CA (`<name>.pem`, `<name>-key.pem`) in `dir` with the `openssl` CLI. For development
 * and tests only: the keys are written unencrypted (mode 0600).
 */
export async function createCertificateAuthority(dir: string, name: string): Promise<CertificateAuthority> {
  await mkdir(dir, { recursive: true });
  const config = join(dir, "openssl.cnf");
  await writeFile(config, OPENSSL_CONFIG);
  const ca: KeyPair = { certFile: join(dir, `${name}.pem`), keyFile: join(dir, `${name}-key.pem`) };
  await openssl([
    "req",
    "-x509",
    "-new",
    ...EC_KEY,
    "-config",
    config,
    "-subj",
    `/CN=${name}`,
    "-days",
    "3650",
    "-keyout",
    ca.keyFile,
    "-out",
    ca.certFile,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await chmod(ca.keyFile, 0o600);
  return {
    certFile: ca.certFile,
    async issue(leaf, options) {
      const pair: KeyPair = { certFile: join(dir, `${leaf}.pem`), keyFile: join(dir, `${leaf}-key.pem`) };
      const names = [...(options.dns ?? []).map((d) => `DNS:${d}`), ...(options.ip ?? []).map((i) => `IP:${i}`)];
      await openssl([
        "req",
        "-x509",
        "-new",
        ...EC_KEY,
        "-config",
        config,
        "-CA",
        ca.certFile,
        "-CAkey",
        ca.keyFile,
        "-subj",
        `/CN=${options.dns?.[0] ?? leaf}`,
        "-days",
        "825",
        "-keyout",
        pair.keyFile,
        "-out",
        pair.certFile,
        ...(names.length > 0 ? ["-addext", `subjectAltName=${names.join(",")}`] : []),
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "keyUsage=critical,digitalSignature",
        "-addext",
        `extendedKeyUsage=${options.usage === "server" ? "serverAuth" : "clientAuth"}`,
      ]);
      await chmod(pair.keyFile, 0o600);
      return pair;
    },
  };
}

/** The certificates the services need among themselves: the volume hosts' internal service is mTLS-only. */
export interface InternalPki {
  /** The CA both ends trust. */
  caFile: string;
  /** The api's client certificate (SAN DNS `cinderblock-api`, the name volume hosts allow by default). */
  apiClient: KeyPair;
  /** A volume host's server certificate (SAN DNS localhost, IP 127.0.0.1: what it advertises on loopback). */
  volumeServer: KeyPair;
  /** A volume host's client certificate for other volume hosts (SAN DNS `cinderblock-volume`: migrations). */
  volumePeer: KeyPair;
  /** The CA itself, to issue more. */
  ca: CertificateAuthority;
}

/** Writes a fresh CA and the api's and a loopback volume host's certificates into `dir`. */
export async function makeInternalPki(dir: string): Promise<InternalPki> {
  const ca = await createCertificateAuthority(dir, "ca");
  const [apiClient, volumeServer, volumePeer] = await Promise.all([
    ca.issue("api-client", { dns: ["cinderblock-api"], usage: "client" }),
    ca.issue("volume-server", { dns: ["localhost"], ip: ["127.0.0.1"], usage: "server" }),
    ca.issue("volume-peer", { dns: ["cinderblock-volume"], usage: "client" }),
  ]);
  return { caFile: ca.certFile, apiClient, volumeServer, volumePeer, ca };
}

/**
 * The settings that give the api its client certificate for volume hosts and a volume host its
 * mTLS server certificate (each service reads only its own).
 */
export function internalTlsEnv(pki: Omit<InternalPki, "ca">): Record<string, string> {
  return {
    CINDERBLOCK_HOST_TLS_CERT_FILE: pki.apiClient.certFile,
    CINDERBLOCK_HOST_TLS_KEY_FILE: pki.apiClient.keyFile,
    CINDERBLOCK_HOST_TLS_CA_FILE: pki.caFile,
    CINDERBLOCK_VOLUME_TLS_CERT_FILE: pki.volumeServer.certFile,
    CINDERBLOCK_VOLUME_TLS_KEY_FILE: pki.volumeServer.keyFile,
    CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE: pki.caFile,
    CINDERBLOCK_VOLUME_PEER_TLS_CERT_FILE: pki.volumePeer.certFile,
    CINDERBLOCK_VOLUME_PEER_TLS_KEY_FILE: pki.volumePeer.keyFile,
  };
}
