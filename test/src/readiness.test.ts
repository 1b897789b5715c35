import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDb } from "@cinderblock/db";
import { GetQuotasRequest, type GetQuotasResponse, QuotasServiceClient } from "@cinderblock/proto";
import {
  call,
  createTcpProxy,
  createTestDatabase,
  identity,
  makeTestPki,
  type ServiceProcess,
  startService,
  type TcpProxy,
  TEST_NATS_URL,
  TEST_SERVER_URL,
  type TestDatabase,
  uniqueName,
} from "@cinderblock/testing";
import { credentials, type ServiceError, status } from "@grpc/grpc-js";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HealthProbe, watchHealth } from "./health.js";

// The api alone, reaching PostgreSQL and NATS through TCP proxies the test opens and closes: health
// says NOT_SERVING until both answer and the database is migrated, SERVING then, NOT_SERVING again
// while either is gone.

let database: TestDatabase;
let pg: TcpProxy;
let nats: TcpProxy;
let api: ServiceProcess;
let health: HealthProbe;
let quotas: QuotasServiceClient;
const prefix = uniqueName("cbready");
let pkiDir: string;

beforeAll(async () => {
  // Not migrated: the api must do it before it may say SERVING.
  database = await createTestDatabase(async () => {});
  const pgServer = new URL(TEST_SERVER_URL);
  const natsServer = new URL(TEST_NATS_URL);
  pg = await createTcpProxy({ host: pgServer.hostname, port: Number(pgServer.port || 5432) });
  nats = await createTcpProxy({ host: natsServer.hostname, port: Number(natsServer.port || 4222) });
  const url = new URL(database.url);
  url.host = `127.0.0.1:${pg.port}`;
  pkiDir = await mkdtemp(join(tmpdir(), "cinderblock-pki-"));
  const pki = await makeTestPki(pkiDir);
  api = startService("api", {
    ...pki.env,
    DATABASE_URL: url.toString(),
    NATS_URL: `nats://127.0.0.1:${nats.port}`,
    CINDERBLOCK_NATS_PREFIX: prefix,
    CINDERBLOCK_API_LISTEN: "127.0.0.1:0",
    CINDERBLOCK_HEALTH_INTERVAL: "1",
    LOG_LEVEL: "info",
  });
  const bound = await api.waitFor("grpc listening");
  const address = `127.0.0.1:${String(bound.port)}`;
  health = watchHealth(address);
  quotas = new QuotasServiceClient(address, credentials.createInsecure());
});

afterAll(async () => {
  health?.close();
  quotas?.close();
  await api?.kill();
  await pg?.close();
  await nats?.close();
  const nc = await connect({ servers: TEST_NATS_URL });
  const jsm = await jetstreamManager(nc);
  for (const suffix of ["CASTS", "NOTIFICATIONS"]) {
    await jsm.streams.delete(`${prefix.toUpperCase()}_${suffix}`).catch(() => false);
  }
  await nc.close();
  await database?.drop();
  if (pkiDir) await rm(pkiDir, { recursive: true, force: true });
});

const getQuotas = () =>
  call<GetQuotasResponse>((done) => quotas.getQuotas(GetQuotasRequest.fromPartial({}), identity("p1"), done));

async function tables(): Promise<number> {
  const handle = createDb({ url: database.url, max: 1 });
  try {
    const [row] = await handle.db.execute<{ n: number }>(
      sql`select count(*)::int as n from pg_tables where schemaname = 'public'`,
    );
    return row?.n ?? 0;
  } finally {
    await handle.close();
  }
}

describe("api readiness", () => {
  it("is NOT_SERVING, and answers calls UNAVAILABLE, while PostgreSQL and NATS are unreachable", async () => {
    await api.waitFor("waiting for dependency", 30_000, { dependency: "PostgreSQL" });
    expect(await health.check()).toBe("NOT_SERVING");
    // Alive all the same: a liveness probe must not restart a service that only waits.
    expect(await health.check("liveness")).toBe("SERVING");
    const refused = (await getQuotas().catch((e: unknown) => e)) as ServiceError;
    expect(refused.code).toBe(status.UNAVAILABLE);
    expect(refused.details).toContain("starting");
    expect(await tables()).toBe(0);
  });

  it("migrates once PostgreSQL answers, and stays NOT_SERVING while NATS does not", async () => {
    await pg.open();
    await api.waitFor("waiting for dependency", 30_000, { dependency: "NATS" });
    expect(await tables()).toBeGreaterThan(0);
    expect(await health.check()).toBe("NOT_SERVING");
  });

  it("is SERVING once NATS answers too, and serves calls", async () => {
    await nats.open();
    await health.until("SERVING");
    await api.waitFor("api listening");
    expect(await health.check()).toBe("SERVING");
    expect((await getQuotas()).projectId).toBe("p1");
  });

  it("goes NOT_SERVING while NATS is unreachable and SERVING when it is back", async () => {
    const from = health.seen.length;
    await nats.close();
    await health.until("NOT_SERVING", from);
    await nats.open();
    await health.until("SERVING", from + 1);
    expect(await health.check()).toBe("SERVING");
  });

  it("goes NOT_SERVING while PostgreSQL is unreachable and SERVING when it is back", async () => {
    const from = health.seen.length;
    await pg.close();
    await health.until("NOT_SERVING", from);
    // A call that needs the database meanwhile is refused as retryable, never INTERNAL, and the
    // message names the database but not its address.
    const refused = (await getQuotas().catch((e: unknown) => e)) as ServiceError;
    expect({ code: refused.code, details: refused.details }).toEqual({
      code: status.UNAVAILABLE,
      details: "the database is unavailable; try again",
    });
    await pg.open();
    await health.until("SERVING", from + 1);
    expect((await getQuotas()).projectId).toBe("p1");
  });

  it("exits 0 on SIGTERM, after saying NOT_SERVING", async () => {
    const from = health.seen.length;
    expect(await api.stop()).toBe(0);
    await health.ended;
    expect(health.seen.slice(from)).toEqual(["NOT_SERVING"]);
  });
});
