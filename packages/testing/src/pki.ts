import {
  type CertificateAuthority,
  createCertificateAuthority,
  type InternalPki,
  internalTlsEnv,
  type KeyPair,
  makeInternalPki,
} from "@cinderblock/devstack/pki";

/** What {@link makeTestPki} writes. */
export interface TestPki extends InternalPki {
  /** The public api's server certificate (SAN DNS localhost, IP 127.0.0.1). */
  apiServer: KeyPair;
  /** A second CA that has nothing to do with the first, and a client certificate it signed. */
  otherCa: CertificateAuthority;
  /** Names `cinderblock-api`, like the api's, but signed by {@link otherCa}: must be refused. */
  otherClient: KeyPair;
  /** The settings that give the api and a volume host their internal mTLS certificates. */
  env: Record<string, string>;
}

/**
 * Writes a throwaway PKI into `dir` with the `openssl` CLI (EC P-256 keys, a few milliseconds each):
 * a CA, the api's client certificate for volume hosts, a loopback volume host's server certificate,
 * a public api server certificate, and an unrelated CA with a client certificate (for refusals).
 */
export async function makeTestPki(dir: string): Promise<TestPki> {
  const internal = await makeInternalPki(dir);
  const otherCa = await createCertificateAuthority(dir, "other-ca");
  const [apiServer, otherClient] = await Promise.all([
    internal.ca.issue("api-server", { dns: ["localhost"], ip: ["127.0.0.1"], usage: "server" }),
    otherCa.issue("other-client", { dns: ["cinderblock-api"], usage: "client" }),
  ]);
  return { ...internal, apiServer, otherCa, otherClient, env: internalTlsEnv(internal) };
}
