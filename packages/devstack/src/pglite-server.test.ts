import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runMigrations } from "@cinderblock/db";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PgliteServer, startPgliteServer } from "./pglite-server.js";

// The embedded PostgreSQL `npm start` falls back to: several real postgres.js pools at once must
// each see their own results, transactions and advisory locks, as the services rely on.

let dir: string;
let server: PgliteServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cinderblock-pglite-"));
  server = await startPgliteServer({ dataDir: join(dir, "pgdata"), warn: () => {} });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("embedded PGlite server", () => {
  it("applies the migrations once when three services start together", async () => {
    await Promise.all([runMigrations(server.url), runMigrations(server.url), runMigrations(server.url)]);
    const sql = postgres(server.url, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql`select count(*)::int as n from drizzle.__drizzle_migrations`;
      const files = await readdir(new URL("../../db/migrations/", import.meta.url));
      expect(rows[0]?.n).toBe(files.filter((f) => f.endsWith(".sql")).length);
    } finally {
      await sql.end();
    }
  }, 60_000);

  it("keeps concurrent pools' queries and transactions apart", async () => {
    const pools = [0, 1, 2].map(() => postgres(server.url, { max: 4, onnotice: () => {} }));
    try {
      await pools[0]?.unsafe("create table if not exists counters (id int primary key, n int not null)");
      await pools[0]?.unsafe("insert into counters values (1, 0) on conflict do nothing");
      const work = pools.flatMap((sql, p) =>
        Array.from({ length: 20 }, async (_, i) => {
          const [echo] = await sql`select ${`${p}-${i}`}::text as v`;
          expect(echo?.v).toBe(`${p}-${i}`);
          await sql.begin(async (tx) => {
            const [row] = await tx`select n from counters where id = 1 for update`;
            await tx`update counters set n = ${Number(row?.n) + 1} where id = 1`;
          });
        }),
      );
      await Promise.all(work);
      const [total] = await (pools[1] as postgres.Sql)`select n from counters where id = 1`;
      expect(total?.n).toBe(60);
    } finally {
      await Promise.all(pools.map((sql) => sql.end()));
    }
  }, 60_000);
});
