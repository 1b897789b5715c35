import { createTestDatabase, type TestDatabase } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cancellingQueuedStatements } from "./cancellation.js";
import { createDb, type DbHandle } from "./client.js";

// A cancelled call's statements that still wait for a connection are dropped unsent, on the real
// PostgreSQL: one connection, held by a transaction, and a queued insert that must never run.

describe("statements of a cancelled call", () => {
  let database: TestDatabase;
  let handle: DbHandle;

  beforeAll(async () => {
    database = await createTestDatabase(async () => {});
    handle = createDb({ url: database.url, max: 1 });
    await handle.db.execute(sql`create table marks (id text primary key)`);
  }, 60_000);

  afterAll(async () => {
    await handle?.close();
    await database?.drop();
  });

  it("are dropped while queued for a connection, and never run", async () => {
    // A transaction holds the pool's one connection (the pool is used up by writers).
    const busy = handle.db.transaction((tx) => tx.execute(sql`select pg_sleep(0.5)`));
    const call = new AbortController();
    const queued = cancellingQueuedStatements(
      call.signal,
      async () => await handle.db.execute(sql`insert into marks (id) values ('cancelled')`),
    );
    const settled = queued.then(
      () => "ran",
      // drizzle wraps the driver's error: the SQLSTATE is on its cause.
      (error: { code?: string; cause?: { code?: string } }) => error.cause?.code ?? error.code,
    );
    await new Promise((resolve) => setTimeout(resolve, 50)); // queued behind the sleep by now
    call.abort();
    // Dropped at once, not after the sleep: the insert was never sent.
    expect(await Promise.race([settled, busy.then(() => "sleep ended first")])).toBe("57014");
    await busy;
    expect(await handle.db.execute(sql`select id from marks`)).toEqual([]);
  });

  it("leave other callers' statements and uncancelled calls alone", async () => {
    const call = new AbortController();
    const kept = await cancellingQueuedStatements(
      call.signal,
      async () => await handle.db.execute(sql`insert into marks (id) values ('kept') returning id`),
    );
    call.abort(); // after the work: nothing left to drop
    expect(kept).toEqual([{ id: "kept" }]);
    const outside = handle.db.execute(sql`select count(*)::int as n from marks`);
    expect(await outside).toEqual([{ n: 1 }]);
  });
});
