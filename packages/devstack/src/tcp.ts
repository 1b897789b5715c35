import { createConnection, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** A TCP endpoint. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `host:port` (or `[v6]:port`). Wildcard hosts are turned into the matching loopback
 * address, because this result is used to connect to something that listens on the wildcard.
 */
export function parseHostPort(value: string): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value.trim());
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`expected host:port, got ${JSON.stringify(value)}`);
  }
  return { host: connectableHost(host), port };
}

/** Maps a wildcard listen address to the loopback address of the same family. */
function connectableHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host;
}

/** Formats an endpoint for URLs and messages, bracketing IPv6 literals. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Resolves true when a TCP connection to the endpoint opens within `timeoutMs`, false on refusal,
 * timeout or any other socket error: callers only need "is something listening".
 */
export function canConnect({ host, port }: HostPort, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Options for {@link waitForPort}. */
export interface WaitForPortOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 200 ms). */
  intervalMs?: number;
  /** Stops waiting early, e.g. when the process that should listen has died. */
  signal?: AbortSignal;
}

/**
 * Polls until a TCP connection to the endpoint succeeds. Resolves true when it does, false on
 * timeout or abort, so the caller decides what a missing listener means.
 */
export async function waitForPort(target: HostPort, options: WaitForPortOptions = {}): Promise<boolean> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const interval = options.intervalMs ?? 200;
  while (!options.signal?.aborted) {
    if (await canConnect(target, 1000)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(interval);
  }
  return false;
}

/**
 * Asks the OS for a currently free port on `host`. The port is released before returning, so
 * another process could take it first; acceptable for a developer launcher, and the only way to
 * hand a port number to a program (nats-server) that cannot report the one it picked.
 */
export function getFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host, port: 0 }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("could not get a free port"))));
    });
  });
}
