import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The PEM files {@link makePostgresPki} writes. */
export interface PostgresPki {
  /** The CA that signed the server's certificate. */
  caFile: string;
  /** A CA that signed nothing here: verifying the server against it must fail. */
  otherCaFile: string;
  /** The server's certificate (SAN `DNS:<serverName>` only, no IP) and its key. */
  certFile: string;
  keyFile: string;
}

async function openssl(args: string[]): Promise<void> {
  await run("openssl", args);
}

async function makeCa(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await openssl(
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"].concat([
      "-subj",
      `/CN=${name}`,
      "-keyout",
      key,
      "-out",
      cert,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]),
  );
  return { cert, key };
}

/**
 * Writes, with the `openssl` CLI, a CA, a PostgreSQL server certificate it signed for `serverName`
 * (default `localhost`; the certificate names no IP address, so connecting to 127.0.0.1 under
 * verify-full must fail on the host name), and a second, unrelated CA.
 */
export async function makePostgresPki(dir: string, serverName = "localhost"): Promise<PostgresPki> {
  const ca = await makeCa(dir, "pg-test-ca");
  const other = await makeCa(dir, "pg-other-ca");
  const keyFile = join(dir, "pg-server.key");
  const csr = join(dir, "pg-server.csr");
  const certFile = join(dir, "pg-server.crt");
  const ext = join(dir, "pg-server.ext");
  await writeFile(
    ext,
    `subjectAltName=DNS:${serverName}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n`,
  );
  await openssl(
    ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj"].concat([
      `/CN=${serverName}`,
      "-keyout",
      keyFile,
      "-out",
      csr,
    ]),
  );
  await openssl(
    ["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-days", "2"].concat([
      "-extfile",
      ext,
      "-out",
      certFile,
    ]),
  );
  return { caFile: ca.cert, otherCaFile: other.cert, certFile, keyFile };
}
