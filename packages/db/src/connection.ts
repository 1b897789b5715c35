import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { type ConnectionOptions, checkServerIdentity } from "node:tls";

/** How a connection to PostgreSQL is secured, beside its URL. */
export interface ConnectionSecurity {
  /**
   * PEM file of the CA(s) that signed the server's certificate (DATABASE_SSL_CA_FILE). With no
   * `sslmode` in the URL it means `verify-full`.
   */
  sslCaFile?: string;
}

/** The URL and `ssl` option to give postgres.js. */
interface PostgresConnection {
  url: string;
  ssl: false | "prefer" | "require" | ConnectionOptions;
}

/**
 * Turns a libpq-style URL (`sslmode=disable|allow|prefer|require|verify-ca|verify-full`, optional
 * `sslrootcert=<path>`) and a CA file into postgres.js options.
 *
 * NOTE: postgres.js understands `sslmode` itself, but verify-ca and verify-full alike become Node's
 * defaults there (the system CAs, host name checked), and any other `ssl*` parameter would be sent
 * to the server as a run-time setting and refused. So the ssl parameters are taken out of the URL
 * and the TLS options built here: verify-full checks the chain against the CA file and the
 * certificate's names against the URL's host (an IP address against the IP SANs);
 * verify-ca checks the chain only; `require` with a CA file is verify-ca, as in libpq.
 */
export function postgresConnection(url: string, security: ConnectionSecurity = {}): PostgresConnection {
  const parsed = new URL(url);
  const mode = parsed.searchParams.get("sslmode");
  const rootCert = parsed.searchParams.get("sslrootcert");
  for (const param of ["sslmode", "sslrootcert"]) parsed.searchParams.delete(param);
  const caFile = security.sslCaFile ?? (rootCert && rootCert !== "system" ? rootCert : undefined);
  const effective = mode ?? (caFile || rootCert === "system" ? "verify-full" : "disable");
  const clean = parsed.toString();
  switch (effective) {
    case "disable":
      return { url: clean, ssl: false };
    case "allow":
    case "prefer":
      return { url: clean, ssl: "prefer" };
    case "require":
      if (!caFile) return { url: clean, ssl: "require" };
      return { url: clean, ssl: verifying(caFile, undefined) };
    case "verify-ca":
      return { url: clean, ssl: verifying(caFile, undefined) };
    case "verify-full":
      return { url: clean, ssl: verifying(caFile, hostOf(parsed)) };
    default:
      throw new Error(`unknown sslmode=${effective} in the PostgreSQL URL`);
  }
}

/** The URL's host without IPv6 brackets. */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, "$1");
}

/**
 * TLS options that verify the chain against `caFile` (the system CAs when undefined) and, when
 * `host` is given, the certificate's names against it; without a host no name is checked.
 * NOTE: the name check is explicit. postgres.js hands Node a socket it connected itself and no
 * `servername` for an IP address, so Node would check the certificate against "localhost" instead
 * of the address: a certificate for localhost passed verify-full against 127.0.0.1.
 */
function verifying(caFile: string | undefined, host: string | undefined): ConnectionOptions {
  const options: ConnectionOptions = { rejectUnauthorized: true };
  if (caFile) options.ca = readFileSync(caFile, "utf8");
  if (host === undefined) {
    options.checkServerIdentity = () => undefined;
  } else {
    options.checkServerIdentity = (_name, cert) => checkServerIdentity(host, cert);
    // SNI carries names only.
    if (isIP(host) === 0) options.servername = host;
  }
  return options;
}
