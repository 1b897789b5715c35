import { readFileSync } from "node:fs";
import { type AddressInfo, createServer as createNetServer, type Server as NetServer } from "node:net";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { CinderblockError, type RequestContext } from "@cinderblock/domain";
import {
  type handleServerStreamingCall,
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { type Guard, requestIdOf } from "./auth/guard.js";
import { toServiceError } from "./errors.js";
import { addHealth, type Health } from "./health.js";
import { assertWellFormed } from "./malformed.js";
import { instrumentCall } from "./metrics.js";
import type { StreamLimiter } from "./stream-limits.js";

/** Where the boundary reports unexpected errors (the service's logger). */
export type ErrorReporter = (error: unknown, info: { method: string; requestId: string }) => void;

/** Options for {@link unary}. */
export interface UnaryOptions {
  /**
   * The server's deadline for the call, in milliseconds (a shorter client deadline wins): past it
   * the call ends with DEADLINE_EXCEEDED and the handler's `ctx.signal` aborts. None by default.
   */
  deadlineMs?: number;
}

/**
 * Wraps a unary handler: the guard authenticates the caller and enforces the method's policy
 * before the handler sees the request; errors are mapped at this one boundary; the call is counted
 * and timed (grpc_server_* metrics) and runs in a server span continuing the caller's trace.
 * `ctx.signal` aborts when the client cancels (or its deadline passes) or the server's deadline
 * passes; the call then ends at once (CANCELLED, or DEADLINE_EXCEEDED) and the work stops where it
 * listens to the signal.
 */
export function unary<Req, Res>(
  method: string,
  report: ErrorReporter,
  handler: (request: Req, ctx: RequestContext) => Promise<Res>,
  guard: Guard,
  options: UnaryOptions = {},
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback) => {
    const requestId = requestIdOf(call.metadata);
    const abort = new AbortController();
    const cancelled = new CinderblockError("DEADLINE_EXCEEDED", "the call was cancelled by the client");
    call.on("cancelled", () => abort.abort(cancelled));
    const timer =
      options.deadlineMs === undefined
        ? undefined
        : setTimeout(() => {
            const seconds = (options.deadlineMs ?? 0) / 1000;
            abort.abort(
              new CinderblockError("DEADLINE_EXCEEDED", `the call ran past the server's deadline (${seconds} s)`),
            );
          }, options.deadlineMs);
    // NOTE: the reason rejects the race below as soon as the signal aborts, whatever the work does.
    const givenUp = new Promise<never>((_, reject) =>
      abort.signal.addEventListener("abort", () => reject(abort.signal.reason), { once: true }),
    );
    givenUp.catch(() => {});
    instrumentCall(call.getPath(), "unary", call.metadata, async (end) => {
      try {
        assertWellFormed(call.request);
        const credentials = { metadata: call.metadata, transport: call.getAuthContext() };
        const ctx = await Promise.race([guard(method, call.request, credentials, requestId), givenUp]);
        const work = handler(call.request, { ...ctx, signal: abort.signal });
        work.catch(() => {}); // a late failure after the call ended is not an unhandled rejection
        const response = await Promise.race([work, givenUp]);
        end(status.OK);
        callback(null, response);
      } catch (error) {
        if (error === cancelled) {
          end(status.CANCELLED); // the client is gone; there is no one to answer
          return;
        }
        const mapped = toServiceError(error, requestId);
        if (mapped.internal) report(error, { method, requestId });
        end(mapped.error.code ?? status.UNKNOWN);
        callback(mapped.error);
      } finally {
        clearTimeout(timer);
      }
    });
  };
}

/** Options for {@link serverStreaming}. */
export interface StreamingOptions {
  /**
   * Aborted when the server begins to drain: an open stream then ends at once with UNAVAILABLE
   * ("server shutting down"), which clients retry (on another replica, or on this one once it is
   * back), instead of holding the drain open until its grace period runs out.
   */
  stop?: AbortSignal;
  /** Authenticates and authorizes the call (see {@link unary}). */
  guard: Guard;
  /** Caps on open streams (per project and in total); none when absent. */
  limiter?: StreamLimiter;
}

/**
 * Ends a stream at once with `error` (mapped like a thrown one), even while its writes wait for a
 * client that does not read: for what a handler learns while suspended (its reader fell behind).
 */
export type StreamInterrupt = (error: unknown) => void;

/**
 * Wraps a server-streaming handler like {@link unary}; the stream's abort signal fires when the
 * client goes away (counted as CANCELLED) or when `options.stop` aborts (ended with UNAVAILABLE).
 * The handler is pulled only when the client can take a message (backpressure); `interrupt` ends
 * the call meanwhile.
 */
export function serverStreaming<Req, Res>(
  method: string,
  report: ErrorReporter,
  handler: (request: Req, ctx: RequestContext, signal: AbortSignal, interrupt: StreamInterrupt) => AsyncIterable<Res>,
  options: StreamingOptions,
): handleServerStreamingCall<Req, Res> {
  const { stop, guard } = options;
  return (call: ServerWritableStream<Req, Res>) => {
    const abort = new AbortController();
    call.on("cancelled", () => abort.abort());
    const requestId = requestIdOf(call.metadata);
    instrumentCall(call.getPath(), "server_stream", call.metadata, async (end) => {
      let ended = false;
      /** Ends the call once: counts `code`, then sends OK or `error` as the stream's status. */
      const finish = (code: status, error?: Partial<ServiceError>) => {
        if (ended) return;
        ended = true;
        end(code);
        // NOTE: grpc-js sends a server stream's status when the call emits 'error'; destroy() does not.
        if (error) call.emit("error", error);
        else if (code === status.OK) call.end();
      };
      const onStop = () => {
        finish(
          status.UNAVAILABLE,
          toServiceError(new CinderblockError("UNAVAILABLE", "server shutting down"), requestId).error,
        );
        abort.abort();
      };
      if (stop?.aborted) onStop();
      else stop?.addEventListener("abort", onStop, { once: true });
      let release: (() => void) | undefined;
      // Settles when the client goes (undefined) or the handler interrupts the call (rejects).
      let interrupt: StreamInterrupt = () => {};
      const ending = new Promise<undefined>((resolve, reject) => {
        abort.signal.addEventListener("abort", () => resolve(undefined));
        interrupt = reject;
      });
      ending.catch(() => {});
      try {
        assertWellFormed(call.request);
        const credentials = { metadata: call.metadata, transport: call.getAuthContext() };
        const ctx = await guard(method, call.request, credentials, requestId);
        release = options.limiter?.acquire(ctx.projectId);
        const messages = handler(call.request, ctx, abort.signal, interrupt)[Symbol.asyncIterator]();
        try {
          while (!abort.signal.aborted) {
            const next = messages.next();
            next.catch(() => {}); // awaited below; a late rejection after the end is not unhandled
            const result = await Promise.race([next, ending]);
            if (!result || result.done) break;
            if (!call.write(result.value)) {
              await Promise.race([new Promise((resolve) => call.once("drain", resolve)), ending]);
            }
          }
        } finally {
          // The handler's own cleanup (closing its subscription) runs even when it is suspended.
          void messages.return?.(undefined).catch(() => {});
        }
        finish(abort.signal.aborted ? status.CANCELLED : status.OK);
      } catch (error) {
        if (abort.signal.aborted) {
          finish(status.CANCELLED);
          return;
        }
        const mapped = toServiceError(error, requestId);
        if (mapped.internal) report(error, { method, requestId });
        finish(mapped.error.code ?? status.UNKNOWN, mapped.error);
      } finally {
        release?.();
        stop?.removeEventListener("abort", onStop);
      }
    });
  };
}

/** Options for {@link addHealthAndReflection}. */
export interface IntrospectionOptions {
  /** Path of the FileDescriptorSet describing the server's services, grpc.health.v1 included. */
  descriptorSetPath: string;
  /** Fully qualified names of the services the health service reports on. */
  services: string[];
  /** Serve reflection (default true); `false` leaves only health. */
  reflection?: boolean;
}

/**
 * Adds `grpc.health.v1.Health` (NOT_SERVING until `setServing(true)`) and server reflection
 * (v1 and v1alpha, unless `reflection` is false), so grpcurl or `buf curl` can list and call every
 * method without .proto files.
 */
export function addHealthAndReflection(server: Server, options: IntrospectionOptions): Health {
  const health = addHealth(server, options.services);
  if (options.reflection === false) return health;
  const files = { "cinderblock.descriptors": { fileDescriptorProtos: splitDescriptorSet(options.descriptorSetPath) } };
  // NOTE: list only what this server serves; the descriptor set also describes internal services.
  new ReflectionService(files as unknown as PackageDefinition, {
    services: [...options.services, "grpc.health.v1.Health"],
  }).addToServer(server);
  return health;
}

/**
 * The FileDescriptorProtos of a FileDescriptorSet, each as its own bytes. NOTE: reflection reads
 * only `fileDescriptorProtos`; proto-loader's descriptor-set loader merges files of one package
 * and loses some of them, so the set is split here instead (field 1, `repeated FileDescriptorProto file`).
 */
function splitDescriptorSet(path: string): Buffer[] {
  const reader = new BinaryReader(readFileSync(path));
  const files: Buffer[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1) files.push(Buffer.from(reader.bytes()));
    else reader.skip(wireType);
  }
  return files;
}

/** Options for {@link listen}. */
export interface ListenOptions {
  /**
   * Client connections the port holds at once; one more is closed as it arrives (the client sees
   * UNAVAILABLE and may retry). grpc-js has no such cap: with one, the port is a node `net.Server`
   * (its `maxConnections`) that hands each accepted socket to the gRPC server. None by default.
   */
  maxConnections?: number;
  /** Called for each connection refused by `maxConnections`, with the peer's address. */
  onRefused?: (peer: string) => void;
}

/** The capped listeners of each server, closed by {@link shutdown}. */
const listeners = new WeakMap<Server, NetServer[]>();

/** "host:port" or "[v6]:port" → its parts; throws on anything else. */
function splitAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(address);
  if (!match) throw new Error(`cannot listen on ${address}: expected host:port`);
  return { host: match[1] ?? match[2] ?? "", port: Number(match[3]) };
}

/**
 * Binds a server to `host:port` (port 0 picks a free one) and returns the bound port; plaintext
 * unless `credentials` are given (see serverTls in tls.ts).
 */
export async function listen(
  server: Server,
  address: string,
  credentials: ServerCredentials = ServerCredentials.createInsecure(),
  options: ListenOptions = {},
): Promise<number> {
  if (options.maxConnections === undefined) {
    return new Promise((resolve, reject) => {
      server.bindAsync(address, credentials, (error, port) => (error ? reject(error) : resolve(port)));
    });
  }
  const { host, port } = splitAddress(address);
  // NOTE: the injector's HTTP/2 (or TLS) server is the one bindAsync would make, with the same
  // settings and certificate reloads; tryShutdown and forceShutdown close its sessions.
  const injector = server.createConnectionInjector(credentials);
  const listener = createNetServer((socket) => injector.injectConnection(socket));
  listener.maxConnections = options.maxConnections;
  listener.on("drop", (peer) => options.onRefused?.(`${peer?.remoteAddress ?? "?"}:${peer?.remotePort ?? "?"}`));
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen({ host, port }, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  listeners.set(server, [...(listeners.get(server) ?? []), listener]);
  return (listener.address() as AddressInfo).port;
}

/**
 * Stops a server gracefully: no new connections or calls, in-flight calls may finish for
 * `graceMs`, then the rest are cancelled.
 */
export function shutdown(server: Server, graceMs: number): Promise<void> {
  for (const listener of listeners.get(server) ?? []) listener.close();
  listeners.delete(server);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export { Server };
