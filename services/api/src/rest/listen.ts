import type { AddressInfo } from "node:net";
import { createRestServer, type RestServerOptions } from "./server.js";

/** A REST listener that is up: where it listens, and how to stop it. */
export interface RestListener {
  address: string;
  port: number;
  /** Stops accepting, ends idle keep-alive connections and waits for requests in flight. */
  close(): Promise<void>;
}

/** Starts the Cinder v3 REST listener on `listen` (`host:port`; port 0 picks a free one). */
export async function listenRest(listen: string, options: RestServerOptions): Promise<RestListener> {
  const at = listen.lastIndexOf(":");
  const host = listen.slice(0, at).replace(/^\[|\]$/g, "");
  const server = createRestServer(options);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(listen.slice(at + 1)), host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `${listen.slice(0, at)}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
