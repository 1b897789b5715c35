import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { RequestContext } from "@cinderblock/domain";
import {
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceDefinition,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { statedIdentityGuard } from "./auth/guard.js";
import { createNoauthAuthenticator } from "./auth/noauth.js";
import { createRateLimiter, rateLimited } from "./rate-limit.js";
import { listen, Server, shutdown, unary } from "./server.js";

// Rate limits and deadlines at the unary boundary: a real grpc-js server on 127.0.0.1:0 and a real
// client (the token buckets alone with a fake clock).

const bytes = { serialize: (value: Buffer) => value, deserialize: (buffer: Buffer) => buffer };
const definition: ServiceDefinition = {
  call: {
    path: "/test.v1.Limits/Call",
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes.serialize,
    requestDeserialize: bytes.deserialize,
    responseSerialize: bytes.serialize,
    responseDeserialize: bytes.deserialize,
  },
};
const Client = makeGenericClientConstructor(definition, "Limits");

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const classes = {
  read: { perSecond: 1, burst: 2 },
  write: { perSecond: 0.5, burst: 1 },
  admin: { perSecond: 0, burst: 1 },
  stream: { perSecond: 1, burst: 1 },
};

describe("token buckets", () => {
  it("allow a burst, then say how long to wait; another project and class have their own", () => {
    let t = 0;
    const take = createRateLimiter({ classes, maxProjects: 10, now: () => t });
    expect([take("a", "read"), take("a", "read")]).toEqual([0, 0]);
    expect(take("a", "read")).toBe(1000);
    expect(take("b", "read")).toBe(0);
    expect(take("a", "write")).toBe(0);
    expect(take("a", "write")).toBe(2000);
    t = 500;
    expect(take("a", "read")).toBe(500);
    t = 1000;
    expect(take("a", "read")).toBe(0);
    // A class at 0 per second is not limited.
    for (let i = 0; i < 100; i++) expect(take("a", "admin")).toBe(0);
  });

  it("keep memory bounded: at most maxProjects' buckets, and idle full ones are dropped", () => {
    let t = 0;
    const take = createRateLimiter({ classes, maxProjects: 100, now: () => t });
    for (let i = 0; i < 10_000; i++) take(`p${i}`, "read");
    expect(take.size).toBeLessThanOrEqual(400);
    t = 10_000; // every bucket has refilled
    for (let i = 0; i < 200; i++) take("busy", "read");
    expect(take.size).toBe(1);
  });
});

/** Decodes google.rpc.Status → details[0] (Any) → RetryInfo.retry_delay, in milliseconds. */
function retryDelayMs(trailer: Buffer): { typeUrl: string; delayMs: number; code: number } {
  const fields = (buf: Uint8Array) => {
    const out = new Map<number, unknown[]>();
    const r = new BinaryReader(buf);
    while (r.pos < r.len) {
      const [no, wire] = r.tag();
      const value = wire === 0 ? Number(r.int64()) : r.bytes();
      out.set(no, [...(out.get(no) ?? []), value]);
    }
    return out;
  };
  const st = fields(trailer);
  const any = fields(st.get(3)?.[0] as Uint8Array);
  const retry = fields(any.get(2)?.[0] as Uint8Array);
  const duration = fields(retry.get(1)?.[0] as Uint8Array);
  return {
    code: st.get(1)?.[0] as number,
    typeUrl: new TextDecoder().decode(any.get(1)?.[0] as Uint8Array),
    delayMs: ((duration.get(1)?.[0] as number) ?? 0) * 1000 + ((duration.get(2)?.[0] as number) ?? 0) / 1e6,
  };
}

async function serve(handler: (ctx: RequestContext) => Promise<Buffer>, deadlineMs?: number) {
  const take = createRateLimiter({ classes, maxProjects: 10 });
  const guard = rateLimited(statedIdentityGuard(createNoauthAuthenticator()), take, { Call: "write" });
  const server = new Server();
  server.addService(definition, {
    call: unary(
      "Call",
      () => {},
      (_req: Buffer, ctx) => handler(ctx),
      guard,
      { deadlineMs },
    ),
  });
  const port = await listen(server, "127.0.0.1:0");
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  cleanups.push(async () => {
    client.close();
    await shutdown(server, 100);
  });
  const call = (project: string, options: { deadline?: number; cancelAfterMs?: number } = {}) =>
    new Promise<ServiceError | undefined>((resolve) => {
      const md = new Metadata();
      md.set("x-project-id", project);
      md.set("x-user-id", "u");
      const c = client.makeUnaryRequest(
        "/test.v1.Limits/Call",
        bytes.serialize,
        bytes.deserialize,
        Buffer.alloc(0),
        md,
        options.deadline ? { deadline: Date.now() + options.deadline } : {},
        (error: ServiceError | null) => resolve(error ?? undefined),
      );
      if (options.cancelAfterMs !== undefined) setTimeout(() => c.cancel(), options.cancelAfterMs);
    });
  return call;
}

describe("the unary boundary", () => {
  it("refuses a project over its rate with RESOURCE_EXHAUSTED and RetryInfo; another project is served", async () => {
    const call = await serve(async () => Buffer.from("ok"));
    expect(await call("a")).toBeUndefined();
    const refused = await call("a");
    expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused?.details).toMatch(/rate limit of write calls reached for this project; retry in \d\.\d{3} s/);
    const [trailer] = refused?.metadata.get("grpc-status-details-bin") ?? [];
    const info = retryDelayMs(trailer as Buffer);
    expect(info.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(info.typeUrl).toBe("type.googleapis.com/google.rpc.RetryInfo");
    expect(info.delayMs).toBeGreaterThan(1000);
    expect(info.delayMs).toBeLessThanOrEqual(2000);
    expect(await call("b")).toBeUndefined();
  });

  it("ends a call at the server's deadline with DEADLINE_EXCEEDED and aborts the work's signal", async () => {
    const signals: AbortSignal[] = [];
    const call = await serve(async (ctx) => {
      if (ctx.signal) signals.push(ctx.signal);
      await new Promise(() => {}); // never answers
      return Buffer.alloc(0);
    }, 300);
    const error = await call("a");
    expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
    expect(error?.details).toContain("server's deadline (0.3 s)");
    expect(signals[0]?.aborted).toBe(true);
  });

  it("aborts the work's signal when the client cancels", async () => {
    let aborted: () => void = () => {};
    const seen = new Promise<void>((resolve) => {
      aborted = resolve;
    });
    const call = await serve(async (ctx) => {
      ctx.signal?.addEventListener("abort", () => aborted(), { once: true });
      await new Promise(() => {});
      return Buffer.alloc(0);
    });
    const error = await call("a", { cancelAfterMs: 100 });
    expect(error?.code).toBe(status.CANCELLED);
    await seen; // resolves only if the handler's signal aborted
  });
});

describe("the connection cap", () => {
  it("closes a connection past maxConnections (the client sees UNAVAILABLE) and takes one again when another leaves", async () => {
    const server = new Server();
    server.addService(definition, {
      call: unary(
        "Call",
        () => {},
        async () => Buffer.from("ok"),
        statedIdentityGuard(createNoauthAuthenticator()),
      ),
    });
    const refused: string[] = [];
    const port = await listen(server, "127.0.0.1:0", undefined, {
      maxConnections: 2,
      onRefused: (peer) => refused.push(peer),
    });
    cleanups.push(() => shutdown(server, 100));
    // Each client its own connection (grpc-js shares subchannels between clients by default).
    const connect = () =>
      new Client(`127.0.0.1:${port}`, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    const ask = (client: InstanceType<typeof Client>) =>
      new Promise<ServiceError | undefined>((resolve) => {
        const md = new Metadata();
        md.set("x-project-id", "p");
        md.set("x-user-id", "u");
        client.makeUnaryRequest(
          "/test.v1.Limits/Call",
          bytes.serialize,
          bytes.deserialize,
          Buffer.alloc(0),
          md,
          { deadline: Date.now() + 5000 },
          (error: ServiceError | null) => resolve(error ?? undefined),
        );
      });
    const [first, second, third] = [connect(), connect(), connect()];
    expect(await ask(first)).toBeUndefined();
    expect(await ask(second)).toBeUndefined();
    const over = await ask(third);
    expect(over?.code).toBe(status.UNAVAILABLE);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused[0]).toMatch(/^127\.0\.0\.1:\d+$/);
    // The first leaves; its place is free again.
    first.close();
    third.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const fourth = connect();
    expect(await ask(fourth)).toBeUndefined();
    second.close();
    fourth.close();
  });
});
