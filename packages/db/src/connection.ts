import { readFileSync } from "node:fs";
import { isIP, type Socket } from "node:net";
import { type ConnectionOptions, checkServerIdentity, type PeerCertificate } from "node:tls";
import { formatPostgresUrl, parsePostgresUrl } from "@cinderblock/config";

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
 * Turns a libpq-style URL (one host or a comma-separated list; `sslmode=disable|allow|prefer|
 * require|verify-ca|verify-full`, optional `sslrootcert=<path>`) and a CA file into postgres.js
 * options. The host list reaches postgres.js intact, each host with its port written out.
 *
 * NOTE: postgres.js understands `sslmode` itself, but verify-ca and verify-full alike become Node's
 * defaults there (the system CAs, host name checked), and any other `ssl*` parameter would be sent
 * to the server as a run-time setting and refused. So the ssl parameters are taken out of the URL
 * and the TLS options built here: verify-full checks the chain against the CA file and the
 * certificate's names against the URL's host (an IP address against the IP SANs);
 * verify-ca checks the chain only; `require` with a CA file is verify-ca, as in libpq.
 */
export function postgresConnection(url: string, security: ConnectionSecurity = {}): PostgresConnection {
  const parsed = parsePostgresUrl(url);
  const params = parsed.url.searchParams;
  const mode = params.get("sslmode");
  const rootCert = params.get("sslrootcert");
  for (const param of ["sslmode", "sslrootcert"]) params.delete(param);
  const caFile = security.sslCaFile ?? (rootCert && rootCert !== "system" ? rootCert : undefined);
  const effective = mode ?? (caFile || rootCert === "system" ? "verify-full" : "disable");
  const clean = formatPostgresUrl(parsed);
  const hosts = parsed.hosts.map((h) => h.host);
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
      return { url: clean, ssl: verifying(caFile, hosts.length > 0 ? hosts : ["localhost"]) };
    default:
      throw new Error(`unknown sslmode=${effective} in the PostgreSQL URL`);
  }
}

/**
 * TLS options that verify the chain against `caFile` (the system CAs when undefined) and, when
 * `hosts` are given, the certificate's names against the host connected to; without hosts no name
 * is checked.
 * NOTE: the name check is explicit. postgres.js hands Node a socket it connected itself and no
 * `servername` for an IP address, so Node would check the certificate against "localhost" instead
 * of the address: a certificate for localhost passed verify-full against 127.0.0.1.
 */
function verifying(caFile: string | undefined, hosts: readonly string[] | undefined): ConnectionOptions {
  const options: ConnectionOptions = { rejectUnauthorized: true };
  if (caFile) options.ca = readFileSync(caFile, "utf8");
  const [only] = hosts ?? [];
  if (hosts === undefined || only === undefined) {
    options.checkServerIdentity = () => undefined;
  } else if (hosts.length === 1) {
    options.checkServerIdentity = (_name, cert) => checkServerIdentity(only, cert);
    // SNI carries names only.
    if (isIP(only) === 0) options.servername = only;
  } else {
    // postgres.js sends each listed name as the SNI name itself (none for an address).
    options.checkServerIdentity = function (this: ConnectedTls | undefined, _name, cert) {
      return checkAnyOf(hosts, connectedHost(this, hosts), cert);
    };
  }
  return options;
}

/** What Node calls `checkServerIdentity` on: the options of the TLS connection being made. */
interface ConnectedTls {
  servername?: string;
  socket?: Socket;
}

/**
 * Which of `hosts` the TLS connection went to, when it can be told: the SNI name postgres.js set
 * (a host name), else the address the socket reached (an IP address of the list).
 * NOTE: Node calls `checkServerIdentity` as a method of the connection's options, which hold the
 * socket postgres.js connected; that is not in Node's documentation, so when the host cannot be
 * told that way, a certificate naming any of the listed hosts is accepted (every one of them is a
 * server the URL trusts).
 */
function connectedHost(options: ConnectedTls | undefined, hosts: readonly string[]): string | undefined {
  const name = options?.servername;
  if (name && hosts.includes(name)) return name;
  const address = options?.socket?.remoteAddress?.replace(/^::ffff:/, "");
  return address && hosts.includes(address) ? address : undefined;
}

/** The certificate checked against `host` when known, else against each of `hosts` until one fits. */
function checkAnyOf(hosts: readonly string[], host: string | undefined, cert: PeerCertificate): Error | undefined {
  if (host !== undefined) return checkServerIdentity(host, cert);
  let first: Error | undefined;
  for (const candidate of hosts) {
    const error = checkServerIdentity(candidate, cert);
    if (!error) return undefined;
    first ??= error;
  }
  return first;
}
