import type { PeerCertificate } from "node:tls";
import { CinderblockError } from "@cinderblock/domain";
import { ServerInterceptingCall, type ServerInterceptor, status } from "@grpc/grpc-js";
import { noauthContext } from "../context.js";
import { toServiceError } from "../errors.js";
import type { Authenticator } from "./authenticator.js";

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
      const { projectId, userId, roles } = noauthContext(metadata);
      return { projectId, userId, roles };
    },
  };
}

/**
 * A server interceptor that authenticates every call to `services` (fully qualified names) before
 * its handler runs, and ends a refused call with the authenticator's status (the handler never
 * sees it). Other services on the server (health) are left alone.
 */
export function authenticateCalls(authenticator: Authenticator, services: readonly string[]): ServerInterceptor {
  const prefixes = services.map((s) => `/${s}/`);
  return (method, call) => {
    if (!prefixes.some((p) => method.path.startsWith(p))) return new ServerInterceptingCall(call);
    return new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, pass) {
            authenticator.authenticate({ metadata, transport: call.getAuthContext() }).then(
              () => pass(metadata),
              (error: unknown) => {
                const [given] = metadata.get("x-request-id");
                const mapped = toServiceError(error, typeof given === "string" ? given : "unknown").error;
                call.sendStatus({
                  code: mapped.code ?? status.INTERNAL,
                  details: mapped.details ?? "",
                  metadata: mapped.metadata,
                });
              },
            );
          },
        });
      },
    });
  };
}
