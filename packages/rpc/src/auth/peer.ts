import type { PeerCertificate } from "node:tls";
import { CinderblockError } from "@cinderblock/domain";
import type { Authenticator } from "./authenticator.js";
import { statedIdentity } from "./noauth.js";

/** The names a certificate gives its subject: its SAN DNS names, or its CN when it has no SAN. */
function certificateNames(cert: PeerCertificate): string[] {
  if (cert.subjectaltname) {
    return cert.subjectaltname
      .split(",")
      .map((entry) => entry.trim())
      .filter((entry) => entry.startsWith("DNS:"))
      .map((entry) => entry.slice("DNS:".length));
  }
  const cn: unknown = cert.subject?.CN;
  return typeof cn === "string" ? [cn] : Array.isArray(cn) ? cn.map(String) : [];
}

/** Options for {@link createPeerAuthenticator}. */
export interface PeerAuthenticatorOptions {
  /** Names (SAN DNS or CN) of the client certificates allowed to call. */
  allowedClients: readonly string[];
}

/**
 * The `peer` strategy, for our internal services (a volume host called by the api): the caller is
 * a service proven by its TLS client certificate, which must name one of `allowedClients`; the
 * user it acts for comes from the metadata it sends (x-project-id, x-user-id, x-roles), trusted
 * only because that service was. No certificate: UNAUTHENTICATED; another name: PERMISSION_DENIED.
 */
export function createPeerAuthenticator(options: PeerAuthenticatorOptions): Authenticator {
  const allowed = new Set(options.allowedClients);
  return {
    strategy: "peer",
    async authenticate({ metadata, transport }) {
      const cert = transport?.sslPeerCertificate;
      // NOTE: a TLS peer that sent no certificate has an empty object here.
      if (!cert?.raw) throw new CinderblockError("UNAUTHENTICATED", "a client certificate is required");
      const names = certificateNames(cert);
      if (!names.some((name) => allowed.has(name))) {
        throw new CinderblockError(
          "PERMISSION_DENIED",
          `client certificate ${names.join(", ") || "without a name"} is not allowed to call this service`,
        );
      }
      return statedIdentity(metadata, "from the calling service");
    },
  };
}
