import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { createDb, type DbHandle, getQuotaLimits, runMigrations, setQuotaLimit } from "@cinderblock/db";
import { SnapshotStatus, VolumeStatus } from "@cinderblock/proto";
import {
  createProjectClient,
  findPostgresBin,
  makePostgresPki,
  mustRunInCI,
  type PostgresPki,
  type PrivatePostgres,
  privatePostgresUnavailable,
  type ServiceProcess,
  type Stack,
  settle,
  startPrivatePostgres,
  startService,
  startStack,
  uniqueName,
} from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// PostgreSQL as a platform team runs it, on a private server of the test's own: TLS with a
// certificate from the test's CA, scram passwords over hostssl only, a DDL role that migrates and
// a DML-only role the services run with, URLs given as files. Nothing may print a password.

/** What the suite needs that may be missing here: a reason to skip, or undefined. */
function missingPrerequisite(): string | undefined {
  const postgres = privatePostgresUnavailable();
  if (postgres) return postgres;
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
  } catch {
    return "no openssl CLI (apt-get install openssl)";
  }
  return undefined;
}

const missing = mustRunInCI("PostgreSQL TLS and roles suite", missingPrerequisite());

const OWNER = "cb_owner";
const SERVICE = "cb_service";
// Random, so a leak cannot pass by coincidence, and easy to look for in any output.
const OWNER_PASSWORD = `ownerpw${randomBytes(6).toString("hex")}`;
const SERVICE_PASSWORD = `servicepw${randomBytes(6).toString("hex")}`;

let dir: string;
let pki: PostgresPki;
let pg: PrivatePostgres;
let admin: postgres.Sql;

/** A URL of the private server as `user`; `host` localhost is the name the certificate carries. */
function urlOf(user: string, password: string, database: string, query = "sslmode=verify-full", host = "localhost") {
  return `postgres://${user}:${password}@${host}:${pg.port}/${database}?${query}`;
}

/** Runs one query on a fresh connection and closes it; rejects with the connection's error. */
async function once(url: string, sslCaFile?: string): Promise<Record<string, unknown>> {
  const handle = createDb({ url, max: 1, sslCaFile });
  try {
    const rows = await handle.db.execute<Record<string, unknown>>(
      sql`select current_user as who, (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as ssl`,
    );
    return rows[0] ?? {};
  } finally {
    await handle.close();
  }
}

/**
 * The error `promise` rejects with (fails the test when it resolves), with `reason`: the messages
 * and codes of it and its causes (drizzle wraps the driver's error).
 */
async function failure(promise: Promise<unknown>): Promise<Error & { reason: string }> {
  const outcome = await promise.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (!outcome) throw new Error("expected a failure");
  const parts: string[] = [];
  for (let e: unknown = outcome; e instanceof Error; e = e.cause) {
    parts.push(`${(e as { code?: string }).code ?? ""} ${e.message}`);
  }
  return Object.assign(outcome, { reason: parts.join(" <- ") });
}

/** A database owned by the DDL role (so it may create in `public`), the service role may connect. */
async function ownedDatabase(name = uniqueName("cbsec_")): Promise<string> {
  await admin.unsafe(`create database ${name} owner ${OWNER}`);
  return name;
}

describe.skipIf(missing)("PostgreSQL over TLS with separate roles", () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "cinderblock-pgsec-"));
    pki = await makePostgresPki(dir);
    pg = await startPrivatePostgres(findPostgresBin() as string, {
      ssl: { certFile: pki.certFile, keyFile: pki.keyFile },
      passwordAuth: true,
    });
    admin = postgres(pg.url, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create role ${OWNER} login password '${OWNER_PASSWORD}'`);
    await admin.unsafe(`create role ${SERVICE} login password '${SERVICE_PASSWORD}'`);
  }, 120_000);

  afterAll(async () => {
    await admin?.end();
    await pg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it("connects with verify-full and the right CA, over TLS", async () => {
    const row = await once(urlOf(SERVICE, SERVICE_PASSWORD, "postgres"), pki.caFile);
    expect(row).toEqual({ who: SERVICE, ssl: true });
    // The CA file alone means verify-full; sslrootcert in the URL works as the CA file.
    expect(await once(urlOf(SERVICE, SERVICE_PASSWORD, "postgres", ""), pki.caFile)).toEqual({
      who: SERVICE,
      ssl: true,
    });
    expect(
      await once(urlOf(SERVICE, SERVICE_PASSWORD, "postgres", `sslmode=verify-full&sslrootcert=${pki.caFile}`)),
    ).toEqual({ who: SERVICE, ssl: true });
  });

  it("refuses a server whose certificate another CA signed, saying so without the password", async () => {
    const error = await failure(once(urlOf(SERVICE, SERVICE_PASSWORD, "postgres"), pki.otherCaFile));
    expect(error.reason).toMatch(/certificate/i);
    expect(inspect(error, { depth: 5, showHidden: true })).not.toContain(SERVICE_PASSWORD);
    // Without a CA file verify-full trusts only the system CAs, which did not sign it either.
    await failure(once(urlOf(SERVICE, SERVICE_PASSWORD, "postgres")));
  });

  it("checks the host name under verify-full (127.0.0.1 is not in the certificate), not under verify-ca", async () => {
    const wrongHost = urlOf(SERVICE, SERVICE_PASSWORD, "postgres", "sslmode=verify-full", "127.0.0.1");
    const error = await failure(once(wrongHost, pki.caFile));
    expect(error.reason).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID.*IP: 127.0.0.1 is not in the cert's list/);
    expect(inspect(error, { depth: 5, showHidden: true })).not.toContain(SERVICE_PASSWORD);
    const chainOnly = urlOf(SERVICE, SERVICE_PASSWORD, "postgres", "sslmode=verify-ca", "127.0.0.1");
    expect(await once(chainOnly, pki.caFile)).toEqual({ who: SERVICE, ssl: true });
  });

  it("lets the roles in only over TLS (hostssl) and with the right password", async () => {
    const plain = await failure(once(urlOf(SERVICE, SERVICE_PASSWORD, "postgres", "sslmode=disable")));
    expect(plain.reason).toMatch(/no pg_hba.conf entry/);
    const wrong = await failure(once(urlOf(SERVICE, "not-the-password", "postgres"), pki.caFile));
    expect(wrong.reason).toMatch(/password authentication failed/);
  });

  describe("migrations as the DDL role", () => {
    let name: string;
    let service: DbHandle;

    beforeAll(async () => {
      name = await ownedDatabase();
      await runMigrations(urlOf(OWNER, OWNER_PASSWORD, name), {
        serviceUrl: urlOf(SERVICE, SERVICE_PASSWORD, name),
        sslCaFile: pki.caFile,
      });
      service = createDb({ url: urlOf(SERVICE, SERVICE_PASSWORD, name), sslCaFile: pki.caFile, max: 1 });
    }, 60_000);

    afterAll(async () => {
      await service?.close();
      if (name) await admin.unsafe(`drop database if exists ${name} with (force)`);
    });

    it("leave the services' role able to read and write", async () => {
      await setQuotaLimit(service.db, "project-a", "volumes", 7);
      await setQuotaLimit(service.db, "project-a", "volumes", 8);
      expect(await getQuotaLimits(service.db, "project-a")).toEqual({ volumes: 8 });
      await service.db.execute(sql`delete from quota_limits where project_id = 'project-a'`);
      expect(await getQuotaLimits(service.db, "project-a")).toEqual({});
    });

    it("refuse it any change to the schema", async () => {
      for (const statement of [
        "create table intruder (id int)",
        "drop table volumes",
        "alter table volumes add column intruder int",
        "truncate volumes",
      ]) {
        const error = await failure(service.db.execute(sql.raw(statement)));
        const code = (error as { cause?: { code?: string } }).cause?.code;
        expect(code, statement).toBe("42501"); // insufficient_privilege
      }
    });

    it("grant the same again on a second run, and the owner still owns every table", async () => {
      await runMigrations(urlOf(OWNER, OWNER_PASSWORD, name), {
        serviceUrl: urlOf(SERVICE, SERVICE_PASSWORD, name),
        sslCaFile: pki.caFile,
      });
      const owners = await service.db.execute<{ owner: string }>(
        sql`select distinct tableowner as owner from pg_tables where schemaname = 'public'`,
      );
      expect(owners.map((r) => r.owner)).toEqual([OWNER]);
    });
  });

  describe("the whole stack on the services' role, URLs from files", () => {
    let stack: Stack;

    beforeAll(async () => {
      stack = await startStack({
        databaseServerUrl: pg.url,
        databaseEnv: async (database) => {
          await admin.unsafe(`alter database ${database.name} owner to ${OWNER}`);
          const serviceFile = join(dir, `${database.name}-service-url`);
          const ownerFile = join(dir, `${database.name}-owner-url`);
          await writeFile(serviceFile, `${urlOf(SERVICE, SERVICE_PASSWORD, database.name)}\n`);
          await writeFile(ownerFile, `${urlOf(OWNER, OWNER_PASSWORD, database.name)}\n`);
          return {
            DATABASE_URL_FILE: serviceFile,
            DATABASE_MIGRATION_URL_FILE: ownerFile,
            DATABASE_SSL_CA_FILE: pki.caFile,
          };
        },
      });
    }, 120_000);

    afterAll(async () => {
      await stack?.stop();
    }, 60_000);

    it("creates a volume and snapshots it, every service on the DML role over TLS", async () => {
      const client = createProjectClient(stack.address, uniqueName("project-"));
      try {
        const created = await client.createVolume({ name: "v", sizeGb: 1 });
        const volume = await settle(
          () => client.getVolume(created.id),
          (v) => v.status !== VolumeStatus.VOLUME_STATUS_CREATING,
          { timeoutMs: 30_000 },
        );
        expect(VolumeStatus[volume.status]).toBe("VOLUME_STATUS_AVAILABLE");
        const taken = await client.createSnapshot({ volumeId: volume.id, name: "s" });
        const snapshot = await settle(
          () => client.getSnapshot(taken.id),
          (s) => s.status !== SnapshotStatus.SNAPSHOT_STATUS_CREATING,
          { timeoutMs: 30_000 },
        );
        expect(SnapshotStatus[snapshot.status]).toBe("SNAPSHOT_STATUS_AVAILABLE");
      } finally {
        client.close();
      }
      const sessions = await admin<{ usename: string; ssl: boolean }[]>`
        select a.usename, s.ssl from pg_stat_activity a join pg_stat_ssl s using (pid)
        where a.datname = ${stack.database.name} and a.usename is not null`;
      expect(sessions.length).toBeGreaterThan(0);
      expect(new Set(sessions.map((s) => `${s.usename} ssl=${s.ssl}`))).toEqual(new Set([`${SERVICE} ssl=true`]));
      const output = [...stack.api.lines, ...stack.scheduler.lines, ...stack.volume.lines].join("\n");
      expect(output).not.toContain(SERVICE_PASSWORD);
      expect(output).not.toContain(OWNER_PASSWORD);
    });
  });

  it("logs a refused connection without the password", async () => {
    // NOTE: the scheduler, which needs no certificates of its own (the api and volume host do).
    const api = startService("scheduler", {
      DATABASE_URL: urlOf(SERVICE, "wrong-password-shown-nowhere", "postgres"),
      DATABASE_SSL_CA_FILE: pki.otherCaFile,
      CINDERBLOCK_SCHEDULER_LISTEN: "127.0.0.1:0",
      CINDERBLOCK_METRICS_LISTEN: "",
    });
    try {
      const line = await api.waitFor("waiting for dependency", 30_000);
      expect(String(line.err)).toMatch(/certificate/i);
    } finally {
      await api.stop();
    }
    expect(api.lines.join("\n")).not.toContain("wrong-password-shown-nowhere");
  }, 60_000);
});

describe("a config error", () => {
  /** The output of a service that must stop at its configuration (exit 1) without starting. */
  async function refusedOutput(service: ServiceProcess): Promise<string> {
    const { child } = service;
    const code = await new Promise<number | null>((done) => {
      if (child.exitCode !== null) done(child.exitCode);
      else child.once("exit", done);
    });
    // Let the last output chunk arrive.
    await new Promise((r) => setImmediate(r));
    expect(code).toBe(1);
    return service.lines.join("\n");
  }

  it("does not print DATABASE_URL's password", async () => {
    const output = await refusedOutput(
      startService("api", {
        DATABASE_URL: "postgres://cinderblock:pa55-in-the-url@db.example:5432/cinderblock?sslmode=verify-every",
        CINDERBLOCK_METRICS_LISTEN: "",
      }),
    );
    expect(output).toContain('DATABASE_URL="postgres://cinderblock:***@db.example:5432/cinderblock');
    expect(output).toContain("unknown sslmode=verify-every");
    expect(output).not.toContain("pa55-in-the-url");
  });

  it("names a _FILE setting it cannot read, and its path", async () => {
    const output = await refusedOutput(
      startService("api", { DATABASE_URL_FILE: "/nonexistent/database-url", CINDERBLOCK_METRICS_LISTEN: "" }),
    );
    expect(output).toContain('DATABASE_URL_FILE="/nonexistent/database-url": cannot read the file (ENOENT)');
  });
});
