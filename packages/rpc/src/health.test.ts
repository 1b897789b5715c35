import { type Client, credentials, loadPackageDefinition, type ServiceError, status } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";
import { afterEach, describe, expect, it } from "vitest";
import { addHealth } from "./health.js";
import { listen, Server, shutdown } from "./server.js";

// grpc.health.v1 on a real grpc-js server on 127.0.0.1:0, called by a real client.

type HealthClient = Client & {
  check(req: { service: string }, cb: (err: ServiceError | null, res?: { status: string }) => void): void;
  list(
    req: object,
    cb: (err: ServiceError | null, res?: { statuses: Record<string, { status: string }> }) => void,
  ): void;
  watch(req: { service: string }): NodeJS.EventEmitter & { cancel(): void };
};
const definition = loadPackageDefinition(loadSync(protoPath, { enums: String, defaults: true })) as unknown as {
  grpc: {
    health: {
      v1: { Health: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => HealthClient };
    };
  };
};

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function serve() {
  const server = new Server();
  const health = addHealth(server, ["test.v1.ThingsService"]);
  const port = await listen(server, "127.0.0.1:0");
  const client = new definition.grpc.health.v1.Health(`127.0.0.1:${port}`, credentials.createInsecure());
  cleanups.push(async () => {
    client.close();
    await shutdown(server, 100);
  });
  const check = (service: string) =>
    new Promise<string>((resolve, reject) =>
      client.check({ service }, (err, res) => (err ? reject(err) : resolve(res?.status ?? ""))),
    );
  return { server, health, client, check };
}

describe("health", () => {
  it("answers NOT_SERVING until told otherwise, for the server and each service", async () => {
    const { health, check, client } = await serve();
    expect(await check("")).toBe("NOT_SERVING");
    expect(await check("liveness")).toBe("SERVING");
    health.setServing(true);
    expect(await check("")).toBe("SERVING");
    expect(await check("test.v1.ThingsService")).toBe("SERVING");
    const listed = await new Promise<Record<string, { status: string }>>((resolve, reject) =>
      client.list({}, (err, res) => (err ? reject(err) : resolve(res?.statuses ?? {}))),
    );
    expect(listed).toEqual({
      "": { status: "SERVING" },
      "test.v1.ThingsService": { status: "SERVING" },
      liveness: { status: "SERVING" },
    });
    const unknown = await check("other.Service").catch((e: ServiceError) => e);
    expect((unknown as ServiceError).code).toBe(status.NOT_FOUND);
  });

  it("streams every change to watchers and can end their streams, so a drain is not held up", async () => {
    const { server, health, client } = await serve();
    const seen: string[] = [];
    const watch = client.watch({ service: "" });
    const ended = new Promise<void>((resolve) => watch.on("status", () => resolve()));
    const changed = (n: number) =>
      new Promise<void>((resolve) => {
        const onData = (res: { status: string }) => {
          seen.push(res.status);
          if (seen.length === n) resolve();
        };
        watch.on("data", onData);
      });
    await changed(1);
    watch.removeAllListeners("data");
    const next = changed(3);
    health.setServing(true);
    health.setServing(false);
    await next;
    expect(seen).toEqual(["NOT_SERVING", "SERVING", "NOT_SERVING"]);
    const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    health.endWatches();
    await ended;
    await drained;
  });
});
