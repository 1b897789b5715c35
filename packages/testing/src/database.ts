import { randomBytes } from "node:crypto";
import { formatPostgresUrl, parsePostgresUrl } from "@cinderblock/config";
import { startPgliteServer } from "@cinderblock/devstack/pglite-server";
import postgres from "postgres";

/**
 * The PostgreSQL server tests use: `CINDERBLOCK_TEST_DATABASE_URL`, else the local one (trust
 * auth). Each test run makes its own database on it, so runs never collide.
 */
export const TEST_SERVER_URL: string =
  process.env.CINDERBLOCK_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** The NATS server tests use: `CINDERBLOCK_TEST_NATS_URL`, else the local one. */
export const TEST_NATS_URL: string = process.env.CINDERBLOCK_TEST_NATS_URL ?? "nats://127.0.0.1:4222";

/** A random suffix for names that must be unique to one test run. */
export function uniqueName(prefix: string): string {
  return `${prefix}${randomBytes(5).toString("hex")}`;
}

/** A database made for one test file, migrated, and dropped by `drop`. */
export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * Creates a throwaway database on the test server (or `serverUrl`) and applies `migrate` to it (the
 * caller passes `runMigrations` from @cinderblock/db; this package does not depend on it, since db's
 * tests use it).
 */
export async function createTestDatabase(
  migrate: (url: string) => Promise<void>,
  serverUrl: string = TEST_SERVER_URL,
): Promise<TestDatabase> {
  const name = uniqueName("cbtest_");
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  // A URL of several hosts (a primary and its standby) keeps them all.
  const parsed = parsePostgresUrl(serverUrl);
  parsed.url.pathname = `/${name}`;
  const url = formatPostgresUrl(parsed);
  await migrate(url);
  return {
    url,
    name,
    async drop() {
      const sql = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await sql.end();
      }
    },
  };
}

/**
 * Starts an embedded PostgreSQL (PGlite, in memory) served over TCP on a free port exactly as
 * `npm start` serves it when no PostgreSQL answers (devstack's pglite-server: pglite-socket with a
 * session arbiter), and applies `migrate` to it. `drop` stops it and its data is gone.
 */
export async function createTestPglite(migrate: (url: string) => Promise<void>): Promise<TestDatabase> {
  const server = await startPgliteServer({ dataDir: "memory://", warn: () => {} });
  try {
    await migrate(server.url);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return { url: server.url, name: "postgres", drop: () => server.stop() };
}

/** A database server a repository suite runs on, and how to get a fresh migrated database on it. */
export interface TestDriver {
  name: "postgres" | "pglite";
  create(migrate: (url: string) => Promise<void>): Promise<TestDatabase>;
}

/**
 * The servers our SQL runs on: the real PostgreSQL (the services in production) and PGlite (what
 * `npm start` falls back to), for one suite run against both (`describe.each(TEST_DRIVERS)`).
 */
export const TEST_DRIVERS: readonly TestDriver[] = [
  { name: "postgres", create: createTestDatabase },
  { name: "pglite", create: createTestPglite },
];
