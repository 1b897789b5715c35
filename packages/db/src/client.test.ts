import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { createDb, type DbHandle } from "./client.js";

// Integration: the real PostgreSQL server (no tables needed: prepared statements live in the session).
// NOTE: @cinderblock/testing depends on this package, so the server URL is read here directly.
const SERVER_URL = process.env.CINDERBLOCK_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

let handle: DbHandle | undefined;
afterEach(async () => {
  await handle?.close();
  handle = undefined;
});

/** The statements the pool's only connection has prepared, by text. */
async function preparedTexts(db: DbHandle["db"]): Promise<string[]> {
  const rows = await db.execute<{ statement: string }>(sql`select statement from pg_prepared_statements`);
  return rows.map((r) => r.statement);
}

describe("createDb", () => {
  it("runs queries as prepared statements, in transactions and savepoints too", async () => {
    handle = createDb({ url: SERVER_URL, max: 1 });
    const { db } = handle;
    const seen: number[] = [];
    for (const n of [1, 2]) seen.push((await db.execute<{ n: number }>(sql`select ${n}::int as n`))[0]?.n ?? 0);
    await db.transaction(async (tx) => {
      seen.push((await tx.execute<{ n: number }>(sql`select ${3}::int + 0 as n`))[0]?.n ?? 0);
      await tx.transaction(async (sp) => {
        seen.push((await sp.execute<{ n: number }>(sql`select ${4}::int + 1 as n`))[0]?.n ?? 0);
      });
    });
    expect(seen).toEqual([1, 2, 3, 5]);
    const texts = await preparedTexts(db);
    // One statement for both executions of the same text: the second reused it.
    expect(texts.filter((t) => t === "select $1::int as n")).toHaveLength(1);
    expect(texts).toContain("select $1::int + 0 as n");
    expect(texts).toContain("select $1::int + 1 as n");
  });

  it("prepares nothing when told not to", async () => {
    handle = createDb({ url: SERVER_URL, max: 1, prepare: false });
    await handle.db.execute(sql`select ${1}::int as n`);
    expect(await preparedTexts(handle.db)).not.toContain("select $1::int as n");
  });
});
