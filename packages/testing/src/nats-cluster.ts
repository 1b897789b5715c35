import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { sleep } from "./net.js";
import { freePort } from "./ports.js";

/** One server of a {@link PrivateNatsCluster}. */
export interface NatsClusterNode {
  /** Its server_name (`n1`, `n2`...), as JetStream names a stream's leader and replicas. */
  readonly name: string;
  readonly url: string;
  /** Whether its process runs. */
  readonly running: boolean;
  /** Its process id while it runs. */
  readonly pid: number | undefined;
  /** Its monitoring endpoint (`/varz`...), when the cluster was started with `monitor`. */
  readonly monitorUrl: string | undefined;
  /** SIGKILLs it (a crash: no goodbye to the clients or the other nodes) and resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same ports and store. */
  start(): Promise<void>;
}

/** A JetStream cluster of the test's own on loopback: each node on free ports with its own store. */
export interface PrivateNatsCluster {
  readonly nodes: readonly NatsClusterNode[];
  /** Every node's client URL, comma-separated (NATS_URL). */
  readonly url: string;
  node(name: string): NatsClusterNode;
  /** Stops every node and removes the stores. */
  stop(): Promise<void>;
}

/**
 * Starts `size` (default 3) nats-servers routed into one JetStream cluster and resolves once JetStream answers
 * (a meta leader is elected). Each node's configuration is a file of its own in the store
 * directory: server_name, client and route ports, the routes to every other node.
 */
export async function startPrivateNatsCluster(
  binary: string,
  options: { size?: number; monitor?: boolean } = {},
): Promise<PrivateNatsCluster> {
  const dir = await mkdtemp(join(tmpdir(), "cinderblock-nats-cluster-"));
  const ports = await Promise.all(
    Array.from({ length: options.size ?? 3 }, async () => ({
      client: await freePort(),
      route: await freePort(),
      monitor: options.monitor ? await freePort() : undefined,
    })),
  );
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.route}`);
  const nodes: Array<NatsClusterNode & { output: () => string }> = [];
  for (const [i, port] of ports.entries()) {
    const name = `n${i + 1}`;
    const config = join(dir, `${name}.conf`);
    await writeFile(
      config,
      [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${port.client}`,
        ...(port.monitor === undefined ? [] : [`http: 127.0.0.1:${port.monitor}`]),
        `jetstream { store_dir: "${join(dir, name)}" }`,
        "cluster {",
        "  name: cinderblock-test",
        `  listen: 127.0.0.1:${port.route}`,
        `  routes: [${routes.filter((_, j) => j !== i).join(", ")}]`,
        "}",
        "",
      ].join("\n"),
    );
    let child: ChildProcess | undefined;
    let exited: Promise<void> = Promise.resolve();
    let output = "";
    const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
    nodes.push({
      name,
      url: `nats://127.0.0.1:${port.client}`,
      get running() {
        return running();
      },
      get pid() {
        return running() ? child?.pid : undefined;
      },
      monitorUrl: port.monitor === undefined ? undefined : `http://127.0.0.1:${port.monitor}`,
      output: () => output,
      async kill() {
        if (running()) child?.kill("SIGKILL");
        await exited;
      },
      async start() {
        const next = spawn(binary, ["-c", config], { stdio: ["ignore", "ignore", "pipe"] });
        next.stderr?.on("data", (chunk: Buffer) => {
          output = (output + chunk.toString("utf8")).slice(-4000);
        });
        child = next;
        exited = new Promise((resolve) => next.once("exit", () => resolve()));
      },
    });
  }
  const cluster: PrivateNatsCluster = {
    nodes,
    url: nodes.map((n) => n.url).join(","),
    node(name) {
      const found = nodes.find((n) => n.name === name);
      if (!found) throw new Error(`no NATS node ${name} (the cluster has ${nodes.map((n) => n.name).join(", ")})`);
      return found;
    },
    async stop() {
      for (const n of nodes) await n.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const n of nodes) await n.start();
    await waitForJetStream(nodes.map((n) => n.url));
  } catch (error) {
    const outputs = nodes.map((n) => `${n.name}${n.running ? "" : " (exited)"}:\n${n.output()}`).join("\n");
    await cluster.stop();
    throw new Error(`the NATS cluster did not come up: ${String(error)}\n${outputs}`);
  }
  return cluster;
}

/** Resolves once JetStream answers on the cluster (its meta leader is elected); throws after 30 s. */
async function waitForJetStream(servers: string[]): Promise<void> {
  const end = Date.now() + 30_000;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const nc = await connect({ servers, timeout: 2000 });
      try {
        await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
        return;
      } finally {
        await nc.close();
      }
    } catch (error) {
      last = error;
      await sleep(250);
    }
  }
  throw new Error(`JetStream did not answer within 30 s: ${String(last)}`);
}
