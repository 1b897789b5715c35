import { type Client, credentials, loadPackageDefinition, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath } from "grpc-health-check";

type HealthStub = Client & {
  check(
    req: { service: string },
    options: { deadline: number },
    cb: (err: ServiceError | null, res?: { status: string }) => void,
  ): void;
  watch(req: { service: string }): NodeJS.EventEmitter & { cancel(): void };
};
const Health = (
  loadPackageDefinition(loadSync(protoPath, { enums: String, defaults: true })) as unknown as {
    grpc: {
      health: {
        v1: { Health: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => HealthStub };
      };
    };
  }
).grpc.health.v1.Health;

/** A grpc.health.v1 client for one server (service ""). */
export interface HealthProbe {
  /** SERVING / NOT_SERVING for `service` (default ""), or the gRPC error's message when the server does not answer. */
  check(service?: string): Promise<string>;
  /** Every status a Watch stream has sent so far, in order. */
  readonly seen: string[];
  /** Resolves once the Watch stream has sent `status` (now or earlier, after `from` statuses). */
  until(status: string, from?: number): Promise<void>;
  /** Resolves when the Watch stream ends (the server ended it or went away). */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens a Watch stream on `address` at once and keeps every status it sends. */
export function watchHealth(address: string, channel = credentials.createInsecure()): HealthProbe {
  const client = new Health(address, channel);
  const seen: string[] = [];
  const waiters: Array<() => void> = [];
  const stream = client.watch({ service: "" });
  stream.on("data", (res: { status: string }) => {
    seen.push(res.status);
    for (const w of waiters.splice(0)) w();
  });
  stream.on("error", () => {});
  const ended = new Promise<void>((resolve) => stream.on("status", () => resolve()));
  return {
    seen,
    ended,
    check(service = "") {
      return new Promise((resolve) =>
        client.check({ service }, { deadline: Date.now() + 5000 }, (err, res) =>
          resolve(err ? err.message : (res?.status ?? "")),
        ),
      );
    },
    until(status, from = 0) {
      return new Promise((resolve) => {
        const check = () => {
          if (seen.slice(from).includes(status)) resolve();
          else waiters.push(check);
        };
        check();
      });
    },
    close() {
      stream.cancel();
      client.close();
    },
  };
}
