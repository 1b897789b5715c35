import { connect, createServer, type Server, type Socket } from "node:net";
import { freePort } from "./net.js";

/** A TCP proxy on a fixed local port that a test opens and closes to make a dependency appear or vanish. */
export interface TcpProxy {
  /** The local port; `127.0.0.1:<port>` reaches the target while the proxy is open. */
  readonly port: number;
  /** Starts accepting connections and forwarding them. */
  open(): Promise<void>;
  /** Stops accepting and cuts every forwarded connection (the dependency "goes away"). */
  close(): Promise<void>;
}

/**
 * Creates a proxy to `target` on a port picked now but not yet listening, so a service can be
 * given an address where nothing answers yet.
 */
export async function createTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  return {
    port,
    open() {
      const next = createServer((client) => {
        const upstream = connect(target.port, target.host);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on("close", () => sockets.delete(socket));
          socket.on("error", () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream).pipe(client);
      });
      server = next;
      return new Promise((resolve, reject) => {
        next.once("error", reject);
        next.listen(port, "127.0.0.1", () => resolve());
      });
    },
    close() {
      const current = server;
      server = undefined;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      return new Promise((resolve) => (current ? current.close(() => resolve()) : resolve()));
    },
  };
}
