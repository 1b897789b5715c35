import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { type ChannelCredentials, experimental, type ServerCredentials } from "@grpc/grpc-js";

/** Certificate files of one end of a TLS connection. */
export interface TlsOptions {
  /** This end's certificate (PEM; may hold the chain after it). */
  certFile: string;
  keyFile: string;
  /**
   * The CA the other end's certificate must chain to. On a server it makes client certificates
   * required (without it, none is asked for); a client ({@link clientTls}) needs it.
   */
  caFile?: string;
  /** Milliseconds between two reads of the files (default 10 s): a changed pair is used by new connections. */
  refreshMs?: number;
  /** Called after a changed certificate was loaded. */
  onReload?(): void;
  /** Called when changed files do not load (the previous certificate stays in use). */
  onError?(error: Error): void;
}

interface Loaded {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

/** Checks that the files make a usable context: a key that matches the certificate, a CA that parses. */
function validate(files: Loaded, options: TlsOptions): Loaded {
  try {
    createSecureContext({ cert: files.cert, key: files.key });
  } catch (error) {
    throw new Error(
      `TLS certificate ${options.certFile} and key ${options.keyFile} do not load: ${(error as Error).message}`,
    );
  }
  if (files.ca) {
    try {
      createSecureContext({ ca: files.ca });
    } catch (error) {
      throw new Error(`TLS CA file ${options.caFile} does not load: ${(error as Error).message}`);
    }
  }
  return files;
}

/**
 * A grpc-js certificate provider over PEM files: read (and checked) once when made, so bad files
 * fail at startup, then re-read every `refreshMs` while a server or channel uses it. A change that
 * loads is handed to grpc-js (new connections use it; open ones keep theirs); one that does not
 * (e.g. a certificate written before its key) is reported and the previous pair kept.
 * NOTE: not grpc-js's FileWatcherCertificateProvider, which drops the credentials (and with them
 * every new connection) whenever a read fails or the pair does not match.
 */
class FileCertificateProvider implements experimental.CertificateProvider {
  private current: Loaded;
  private timer: NodeJS.Timeout | undefined;
  private readonly caListeners = new Set<experimental.CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<experimental.IdentityCertificateUpdateListener>();

  constructor(private readonly options: TlsOptions) {
    const read = (path: string) => {
      try {
        return readFileSync(path);
      } catch (error) {
        throw new Error(`cannot read ${path}: ${(error as Error).message}`);
      }
    };
    this.current = validate(
      {
        cert: read(options.certFile),
        key: read(options.keyFile),
        ca: options.caFile ? read(options.caFile) : undefined,
      },
      options,
    );
  }

  private async refresh(): Promise<void> {
    const { certFile, keyFile, caFile } = this.options;
    let next: Loaded;
    try {
      const [cert, key, ca] = await Promise.all([
        readFile(certFile),
        readFile(keyFile),
        caFile ? readFile(caFile) : undefined,
      ]);
      next = { cert, key, ca };
    } catch (error) {
      this.options.onError?.(error as Error);
      return;
    }
    const same = (a?: Buffer, b?: Buffer) => (a && b ? a.equals(b) : a === b);
    const { current } = this;
    if (same(next.cert, current.cert) && same(next.key, current.key) && same(next.ca, current.ca)) return;
    try {
      this.current = validate(next, this.options);
    } catch (error) {
      this.options.onError?.(error as Error);
      return;
    }
    this.notify();
    this.options.onReload?.();
  }

  private notify(): void {
    const { cert, key, ca } = this.current;
    for (const listener of this.identityListeners) listener({ certificate: cert, privateKey: key });
    if (ca) for (const listener of this.caListeners) listener({ caCertificate: ca });
  }

  private watch(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.refresh(), this.options.refreshMs ?? 10_000);
    this.timer.unref();
  }

  private unwatch(): void {
    if (this.caListeners.size > 0 || this.identityListeners.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  // NOTE: the first update goes out on the next tick, as grpc-js's own provider does: its server
  // registers the watcher that applies updates only after adding the listener.
  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    this.watch();
    const { ca } = this.current;
    if (ca) process.nextTick(() => listener({ caCertificate: ca }));
  }

  removeCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
    this.unwatch();
  }

  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    this.watch();
    const { cert, key } = this.current;
    process.nextTick(() => listener({ certificate: cert, privateKey: key }));
  }

  removeIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
    this.unwatch();
  }
}

/**
 * Server credentials from certificate files, reloaded when they change (see {@link TlsOptions}).
 * With `caFile`, callers must present a certificate signed by it (the handshake fails otherwise).
 * Throws when a file cannot be read or the pair does not load.
 */
export function serverTls(options: TlsOptions): ServerCredentials {
  const provider = new FileCertificateProvider(options);
  // NOTE: grpc-js 1.14 declares the parameters as (ca, identity, required) but passes them on as
  // (identity, ca, required); the types agree with the latter: the first is never null.
  return experimental.createCertificateProviderServerCredentials(
    provider,
    options.caFile ? provider : null,
    options.caFile !== undefined,
  );
}

/**
 * Channel credentials presenting a client certificate and trusting only `caFile`, reloaded when
 * the files change. The server's certificate must name the host part of the address dialled.
 */
export function clientTls(options: TlsOptions & { caFile: string }): ChannelCredentials {
  const provider = new FileCertificateProvider(options);
  return experimental.createCertificateProviderChannelCredentials(provider, provider);
}
