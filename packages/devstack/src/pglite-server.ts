import { createServer, type Socket } from "node:net";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketHandler, type PGLiteSocketHandlerOptions } from "@electric-sql/pglite-socket";

/*
 * Why this file exists instead of `new PGLiteSocketServer(...)`:
 *
 * PGlite is one single-user Postgres backend, i.e. one session. pglite-socket 0.2.17 serves it
 * over TCP in two modes, and neither is usable by three services that each keep a postgres.js pool:
 *
 *  - `maxConnections: 1` (the default): every connection past the first is refused ("Too many
 *    connections" and the socket is closed; postgres.js sees ECONNRESET). Nothing is queued.
 *  - `maxConnections: N`: all connections share the session through a queue that runs one wire
 *    protocol *message* at a time. It keeps a connection exclusive only inside an explicit
 *    transaction block, so the Parse/Bind/Execute/Sync sequence of one client interleaves with
 *    another's. Measured with three processes running concurrent postgres.js queries: results
 *    delivered to the wrong query, `portal "" does not exist`, and clients hanging forever.
 *
 * So we keep pglite-socket's `PGLiteSocketHandler` (startup, SSL refusal, message framing) and
 * give it our own queue through its `queryQueue` option: {@link SessionArbiter} hands the session
 * to one connection until that connection is back at ReadyForQuery "idle", which is the boundary
 * at which a real pooler (pgbouncer in transaction mode) may switch clients too.
 *
 * What remains different from a real server, because there is only one session:
 *  - Transactions are serialised, never concurrent: while one connection is in a transaction,
 *    every other connection waits. `FOR UPDATE SKIP LOCKED` works but never has anything to skip.
 *    A transaction that waits for another connection of the pool (e.g. runs a query on `db`
 *    instead of `tx`) deadlocks here, where a real server would not.
 *  - Advisory locks all belong to the one session, so `pg_advisory_lock` is re-entrant for every
 *    client and never blocks: three services would run their migrations at once. The arbiter
 *    emulates the blocking: while one connection holds advisory locks, a statement from another
 *    connection that *acquires* one (`pg_[try_]advisory_[xact_]lock[_shared](`, found in the SQL
 *    text of Query/Parse, or in a Bind of a statement so parsed) waits until the holder has
 *    released all of them or disconnected; everything else runs. Approximations: locks are
 *    tracked per holder, not per key, so different keys also wait for each other;
 *    `pg_try_advisory_lock` waits instead of returning false; an unlock from another connection
 *    does release the lock (one session); an acquire inside a transaction that is already open
 *    cannot wait (the session is that transaction's) and succeeds re-entrantly.
 *  - Session state (SET, temp tables, prepared statement names) is shared; postgres.js uses
 *    random statement names per connection, so they do not collide.
 *  - There is one database, `postgres`: the database name in the startup message is ignored.
 */

/** The internal queue type pglite-socket's handler accepts; the class itself is not exported. */
type QueryQueue = PGLiteSocketHandlerOptions["queryQueue"];

const MSG_QUERY = 0x51; // 'Q'
const MSG_PARSE = 0x50; // 'P'
const MSG_BIND = 0x42; // 'B'
const MSG_TERMINATE = 0x58; // 'X'
const MSG_READY_FOR_QUERY = 0x5a; // 'Z'
const STATUS_IDLE = 0x49; // 'I'
const SYNC = new Uint8Array([0x53, 0, 0, 0, 4]);

/**
 * Follows the backend's output stream message by message and remembers whether the last
 * complete message was ReadyForQuery, and with which transaction status. Output arrives in
 * arbitrary chunks, so the message header is reassembled across them.
 */
class ReadyForQueryTracker {
  private readonly header = new Uint8Array(5);
  private headerFill = 0;
  private bodyLeft = 0;
  private bodyRead = 0;
  private type = 0;
  /** Status byte of the last ReadyForQuery, or null when another message came after it. */
  status: number | null = null;

  feed(data: Uint8Array): void {
    let i = 0;
    while (i < data.length) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, data.length - i);
        if (this.type === MSG_READY_FOR_QUERY && this.bodyRead === 0) this.status = data[i] ?? null;
        this.bodyLeft -= n;
        this.bodyRead += n;
        i += n;
        continue;
      }
      this.header[this.headerFill++] = data[i++] ?? 0;
      if (this.headerFill === 5) {
        this.headerFill = 0;
        this.type = this.header[0] ?? 0;
        const length = new DataView(this.header.buffer).getInt32(1);
        this.bodyLeft = Math.max(0, length - 4);
        this.bodyRead = 0;
        this.status = null;
      }
    }
  }
}

interface Work {
  handlerId: number;
  /** Takes an advisory lock: must wait while another connection holds advisory locks. */
  acquiresAdvisory: boolean;
  run: () => Promise<number>;
  resolve: (bytes: number) => void;
  reject: (error: Error) => void;
  enqueuedAt: number;
  isCleanup: boolean;
}

/** Per-connection bookkeeping. */
interface HandlerState {
  /** Named prepared statements, deallocated when the connection goes away. */
  statements: Set<string>;
  /** Named statements whose SQL acquires advisory locks ("acquire") or otherwise touches them. */
  advisoryStatements: Map<string, "acquire" | "other">;
  /** Ran advisory-lock SQL since its last ReadyForQuery: check pg_locks when it is idle again. */
  touchedAdvisory: boolean;
  /** Cleanup has been queued; a second detach must not queue another. */
  closing: boolean;
}

const ACQUIRE_ADVISORY = /pg_(try_)?advisory_(xact_)?lock(_shared)?\s*\(/i;
const MENTIONS_ADVISORY = /advisory/i;

/** Reads the NUL-terminated string starting at `offset` of a latin1-decoded message. */
function cString(text: string, offset: number): string {
  const end = text.indexOf("\0", offset);
  return end < 0 ? "" : text.slice(offset, end);
}

/**
 * Shares PGlite's single session between connections: switches only at ReadyForQuery "idle",
 * and makes advisory lock acquisition wait for other holders (see the comment at the top of this
 * file). Implements the methods pglite-socket's handler calls on its queue.
 */
class SessionArbiter {
  private readonly queue: Work[] = [];
  private readonly handlers = new Map<number, HandlerState>();
  /** Connection in the middle of an extended-protocol sequence or a transaction. */
  private owner: number | null = null;
  /** Connection the session's advisory locks are attributed to. */
  private advisoryHolder: number | null = null;
  private pumping = false;
  private warnedAt = 0;
  private readonly watchdog: NodeJS.Timeout;

  constructor(
    private readonly db: PGlite,
    private readonly warn: (message: string) => void,
  ) {
    // A connection that keeps a transaction or lock and goes quiet stalls the others; say so
    // instead of leaving the developer with services that hang for no visible reason.
    this.watchdog = setInterval(() => this.checkStalled(), 5000);
    this.watchdog.unref();
  }

  private state(handlerId: number): HandlerState {
    let state = this.handlers.get(handlerId);
    if (!state) {
      state = { statements: new Set(), advisoryStatements: new Map(), touchedAdvisory: false, closing: false };
      this.handlers.set(handlerId, state);
    }
    return state;
  }

  /** Classifies a frontend message: does it acquire, or otherwise touch, advisory locks? */
  private classify(state: HandlerState, message: Uint8Array): "acquire" | "other" | undefined {
    const type = message[0];
    if (type !== MSG_QUERY && type !== MSG_PARSE && type !== MSG_BIND) return undefined;
    const text = Buffer.from(message.buffer, message.byteOffset, message.byteLength).toString("latin1");
    if (type === MSG_BIND) {
      const portal = cString(text, 5);
      return state.advisoryStatements.get(cString(text, 5 + portal.length + 1));
    }
    const kind = ACQUIRE_ADVISORY.test(text) ? "acquire" : MENTIONS_ADVISORY.test(text) ? "other" : undefined;
    if (type === MSG_PARSE) {
      const name = cString(text, 5);
      if (name !== "") {
        state.statements.add(name);
        if (kind) state.advisoryStatements.set(name, kind);
        else state.advisoryStatements.delete(name);
      }
    }
    return kind;
  }

  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    if (message[0] === MSG_TERMINATE) {
      // The handler closes the socket next; detach cleans the session up. Terminate must not
      // reach PGlite, which has no per-connection backend to end.
      return Promise.resolve(0);
    }
    const state = this.state(handlerId);
    const advisory = this.classify(state, message);
    return this.submit(handlerId, advisory === "acquire", false, async () => {
      if (advisory) state.touchedAdvisory = true;
      const tracker = new ReadyForQueryTracker();
      let bytes = 0;
      await this.db.runExclusive(() =>
        this.db.execProtocolRawStream(message, {
          onRawData: (data) => {
            bytes += data.length;
            tracker.feed(data);
            onData(data);
          },
        }),
      );
      // Mid extended-protocol sequence, in a transaction or a failed one: keep the session.
      this.owner = tracker.status === STATUS_IDLE ? null : handlerId;
      if (tracker.status === STATUS_IDLE && state.touchedAdvisory) {
        state.touchedAdvisory = false;
        await this.updateAdvisoryHolder(handlerId);
      }
      return bytes;
    });
  }

  /** Attributes the session's advisory locks after `handlerId` ran advisory SQL. */
  private async updateAdvisoryHolder(handlerId: number): Promise<void> {
    const result = await this.db.query<{ held: boolean }>(
      "select exists (select 1 from pg_locks where locktype = 'advisory') as held",
    );
    if (result.rows[0]?.held !== true) this.advisoryHolder = null;
    else this.advisoryHolder ??= handlerId;
  }

  private submit(
    handlerId: number,
    acquiresAdvisory: boolean,
    isCleanup: boolean,
    run: () => Promise<number>,
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ handlerId, acquiresAdvisory, run, resolve, reject, enqueuedAt: Date.now(), isCleanup });
      void this.pump();
    });
  }

  /**
   * The next work that may run: the owner's while the session is owned (an owner never waits
   * for a lock, its transaction holds the session); otherwise the oldest work of a connection
   * that is not waiting for another's advisory lock, keeping each connection's order.
   */
  private takeNext(): Work | undefined {
    let index = -1;
    if (this.owner !== null) {
      index = this.queue.findIndex((w) => w.handlerId === this.owner);
    } else {
      const waiting = new Set<number>();
      index = this.queue.findIndex((w) => {
        if (waiting.has(w.handlerId)) return false;
        const blocked =
          w.acquiresAdvisory && this.advisoryHolder !== null && this.advisoryHolder !== w.handlerId && !w.isCleanup;
        if (blocked) waiting.add(w.handlerId);
        return !blocked;
      });
    }
    return index < 0 ? undefined : this.queue.splice(index, 1)[0];
  }

  /** Runs queued work one item at a time. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let work = this.takeNext(); work; work = this.takeNext()) {
        try {
          work.resolve(await work.run());
        } catch (err) {
          work.reject(err instanceof Error ? err : new Error(String(err)));
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  getQueueLength(): number {
    return this.queue.length;
  }

  clearQueueForHandler(handlerId: number): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const work = this.queue[i];
      if (work && work.handlerId === handlerId && !work.isCleanup) {
        this.queue.splice(i, 1);
        work.reject(new Error("connection closed"));
      }
    }
  }

  /**
   * Called by the handler when its socket goes away: ends whatever the connection left open in
   * the shared session (extended-protocol sequence, transaction, advisory locks, prepared
   * statements) as a real server does when the backend exits, then frees the session.
   */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    const state = this.handlers.get(handlerId);
    if (!state || state.closing) return;
    state.closing = true;
    await this.submit(handlerId, false, true, async () => {
      try {
        if (this.owner === handlerId) {
          await this.db.runExclusive(() => this.db.execProtocolRaw(SYNC));
          if (this.db.isInTransaction()) await this.db.exec("rollback");
        }
        if (this.advisoryHolder === handlerId) {
          await this.db.exec("select pg_advisory_unlock_all()");
          this.advisoryHolder = null;
        }
        for (const name of state.statements) {
          await this.db.exec(`deallocate "${name.replaceAll('"', '""')}"`).catch(() => undefined);
        }
      } finally {
        if (this.owner === handlerId) this.owner = null;
        this.handlers.delete(handlerId);
      }
      return 0;
    }).catch((err: unknown) => this.warn(`PGlite: cleaning up a closed connection failed: ${String(err)}`));
  }

  private checkStalled(): void {
    const oldest = this.queue[0];
    if (!oldest || Date.now() - oldest.enqueuedAt < 10_000 || Date.now() - this.warnedAt < 60_000) return;
    this.warnedAt = Date.now();
    const why =
      this.owner !== null
        ? "a connection with an open transaction holds the single embedded session"
        : "a connection holds an advisory lock that others are waiting for";
    this.warn(`PGlite: queries have waited more than 10 s: ${why}`);
  }

  /**
   * Resolves once everything queued before it has run (connection cleanups included), or after
   * `timeoutMs` when a connection still holds the session; PGlite may be closed after that.
   */
  async drain(timeoutMs: number): Promise<void> {
    const done = this.submit(-1, false, true, async () => 0).catch(() => 0);
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  close(): void {
    clearInterval(this.watchdog);
  }
}

/** A running embedded PostgreSQL. */
export interface PgliteServer {
  /** postgres:// URL for clients (database `postgres`, user `postgres`, no password). */
  url: string;
  host: string;
  port: number;
  /** Closes client connections, stops listening and closes PGlite (flushing it to disk). */
  stop(): Promise<void>;
}

/** Options for {@link startPgliteServer}. */
export interface PgliteServerOptions {
  /** Directory PGlite keeps its cluster in; created when missing. */
  dataDir: string;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port to listen on; 0 (the default) lets the OS pick a free one. */
  port?: number;
  /** Where to report problems (default console.error). */
  warn?: (message: string) => void;
}

/**
 * Starts PGlite on `dataDir` and serves it over TCP with pglite-socket's protocol handler and a
 * session arbiter that makes several concurrent client connections (pools) safe.
 */
export async function startPgliteServer(options: PgliteServerOptions): Promise<PgliteServer> {
  const host = options.host ?? "127.0.0.1";
  const warn = options.warn ?? ((message: string) => console.error(message));
  const db = await PGlite.create(options.dataDir);
  const arbiter = new SessionArbiter(db, warn);
  const handlers = new Set<PGLiteSocketHandler>();
  const sockets = new Set<Socket>();

  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const handler = new PGLiteSocketHandler({
      queryQueue: arbiter as unknown as QueryQueue,
      closeOnDetach: true,
    });
    handlers.add(handler);
    handler.addEventListener("close", () => handlers.delete(handler));
    handler.addEventListener("error", () => handlers.delete(handler));
    handler.attach(socket).catch((err: unknown) => {
      warn(`PGlite: could not attach a connection: ${String(err)}`);
      socket.destroy();
    });
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port: options.port ?? 0 }, () => {
      server.off("error", reject);
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : 0);
    });
  });
  server.on("error", (err) => warn(`PGlite: server error: ${err.message}`));

  const urlHost = host.includes(":") ? `[${host}]` : host;
  let stopping: Promise<void> | undefined;
  return {
    url: `postgres://postgres@${urlHost}:${port}/postgres`,
    host,
    port,
    stop() {
      stopping ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Detaching runs each connection's cleanup through the arbiter, which needs the db open.
        await Promise.allSettled([...handlers].map((h) => h.detach(true)));
        for (const socket of sockets) socket.destroy();
        await closed;
        await arbiter.drain(2000);
        arbiter.close();
        await db.close();
      })();
      return stopping;
    },
  };
}
