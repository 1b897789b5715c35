import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PgliteServer, startPgliteServer } from "./pglite-server.js";

// The embedded PostgreSQL `npm start` falls back to: several real postgres.js pools at once must
// each see their own results, transactions and advisory locks, as the services rely on. (That three
// services migrate it once at the same time is tested with db's repository suite, which runs on it.)

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
