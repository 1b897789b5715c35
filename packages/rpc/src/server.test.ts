import {
  type ClientReadableStream,
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceDefinition,
  type StatusObject,
  status,
} from "@grpc/grpc-js";
import { afterEach, describe, expect, it, vi } from "vitest";
import { statedIdentityGuard } from "./auth/guard.js";
import { createNoauthAuthenticator } from "./auth/noauth.js";
import { listen, Server, serverStreaming, shutdown } from "./server.js";

// serverStreaming on a real grpc-js server on 127.0.0.1:0, called by a real client.

const bytes = { serialize: (value: Buffer) => value, deserialize: (buffer: Buffer) => buffer };
const PATH = "/test.v1.Streams/Watch";
const definition: ServiceDefinition = {
  watch: {
    path: PATH,
    requestStream: false,
    responseStream: true,
    requestSerialize: bytes.serialize,
    requestDeserialize: bytes.deserialize,
    responseSerialize: bytes.serialize,
    responseDeserialize: bytes.deserialize,
  },
};
const StreamsClient = makeGenericClientConstructor(definition, "Streams");

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A server whose one stream sends a message, then waits until its signal aborts. */
async function serve(stop: AbortSignal) {
  const handlerSignals: AbortSignal[] = [];
  const server = new Server();
  server.addService(definition, {
    watch: serverStreaming(
      "Watch",
      () => {},
      async function* (_req: Buffer, _ctx, signal) {
        handlerSignals.push(signal);
        yield Buffer.from("first");
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      },
      // NOTE: whoever calls is who they say (the stream's ending is under test, not identity).
      { stop, guard: statedIdentityGuard(createNoauthAuthenticator()) },
    ),
  });
  const port = await listen(server, "127.0.0.1:0");
  const client = new StreamsClient(`127.0.0.1:${port}`, credentials.createInsecure());
  cleanups.push(async () => {
    client.close();
    await shutdown(server, 100);
  });
  const open = () => {
    const md = new Metadata();
    md.set("x-project-id", "p");
    md.set("x-user-id", "u");
    const stream = client.makeServerStreamRequest(
      PATH,
      bytes.serialize,
      bytes.deserialize,
      Buffer.alloc(0),
      md,
    ) as ClientReadableStream<Buffer>;
    stream.on("error", () => {});
    const first = new Promise((resolve) => stream.once("data", resolve));
    const ended = new Promise<StatusObject>((resolve) => stream.on("status", resolve));
    return { stream, first, ended };
  };
  return { server, open, handlerSignals };
}

describe("serverStreaming", () => {
  it("ends open streams with UNAVAILABLE as soon as the stop signal aborts, and aborts the handler", async () => {
    const stop = new AbortController();
    const { server, open, handlerSignals } = await serve(stop.signal);
    const streams = [open(), open()];
    await Promise.all(streams.map((s) => s.first));

    stop.abort();
    const statuses = await Promise.all(streams.map((s) => s.ended));
    for (const s of statuses) expect(s).toMatchObject({ code: status.UNAVAILABLE, details: "server shutting down" });
    expect(handlerSignals.map((s) => s.aborted)).toEqual([true, true]);
    // Nothing holds a graceful shutdown any more.
    const closed = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await expect(Promise.race([closed.then(() => "closed"), sleep(2000).then(() => "still open")])).resolves.toBe(
      "closed",
    );
  });

  it("ends a stream that opens after the stop signal at once", async () => {
    const stop = new AbortController();
    stop.abort();
    const { open } = await serve(stop.signal);
    expect(await open().ended).toMatchObject({ code: status.UNAVAILABLE });
  });

  it("leaves streams open without a stop signal until the client cancels", async () => {
    const { open, handlerSignals } = await serve(new AbortController().signal);
    const s = open();
    await s.first;
    s.stream.cancel();
    expect((await s.ended).code).toBe(status.CANCELLED);
    await vi.waitFor(() => expect(handlerSignals[0]?.aborted).toBe(true));
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
