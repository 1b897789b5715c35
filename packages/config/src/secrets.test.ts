import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadApiConfig, loadSchedulerConfig, loadVolumeConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { redactSecrets, scrubUrlPasswords } from "./secrets.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cinderblock-secrets-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function configError(load: () => unknown): string {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("secrets from files (<NAME>_FILE)", () => {
  it("reads a _URL or _PASSWORD setting from the file the _FILE variable names, trailing newline trimmed", () => {
    const url = file("db-url", "postgres://svc:s3cret@db.example:5432/cinderblock\n");
    const config = loadSchedulerConfig({ DATABASE_URL_FILE: url });
    expect(config.DATABASE_URL).toBe("postgres://svc:s3cret@db.example:5432/cinderblock");
    const migration = file("migration-url", "postgres://owner:0wn3r@db.example/cinderblock\r\n");
    expect(loadVolumeConfig({ DATABASE_MIGRATION_URL_FILE: migration }).DATABASE_MIGRATION_URL).toBe(
      "postgres://owner:0wn3r@db.example/cinderblock",
    );
  });

  it("works from the CINDERBLOCK_CONFIG file too, and a variable overrides the file's value", () => {
    const url = file("db-url-2", "postgres://svc:fromfile@db.example/cinderblock\n");
    const configFile = file("config.json", JSON.stringify({ DATABASE_URL_FILE: url }));
    expect(loadApiConfig({ CINDERBLOCK_CONFIG: configFile }).DATABASE_URL).toBe(
      "postgres://svc:fromfile@db.example/cinderblock",
    );
    expect(
      loadApiConfig({ CINDERBLOCK_CONFIG: configFile, DATABASE_URL: "postgres://other@db.example/x" }).DATABASE_URL,
    ).toBe("postgres://other@db.example/x");
  });

  it("refuses both forms at once, naming both", () => {
    const url = file("db-url-3", "postgres://svc:pw@db.example/cinderblock\n");
    const message = configError(() =>
      loadApiConfig({ DATABASE_URL: "postgres://svc:inline@db.example/cinderblock", DATABASE_URL_FILE: url }),
    );
    expect(message).toContain("DATABASE_URL and DATABASE_URL_FILE");
    expect(message).not.toContain("inline");
  });

  it("names the variable and the path of an unreadable file, never its content", () => {
    const missing = join(dir, "nope");
    expect(configError(() => loadApiConfig({ DATABASE_URL_FILE: missing }))).toContain(
      `DATABASE_URL_FILE=${JSON.stringify(missing)}: cannot read the file (ENOENT)`,
    );
    if (process.getuid?.() !== 0) {
      const locked = file("locked", "postgres://svc:locked@db/x");
      chmodSync(locked, 0);
      expect(configError(() => loadApiConfig({ DATABASE_URL_FILE: locked }))).toMatch(/EACCES/);
    }
  });

  it("reads any setting named *_PASSWORD, *_TOKEN or *_URL that way, and only those", () => {
    // NOTE: a name pattern, not a list: OTEL_EXPORTER_OTLP_ENDPOINT is not one, NATS_URL is.
    const nats = file("nats-url", "nats://a:b@nats.example:4222\n");
    expect(loadApiConfig({ NATS_URL_FILE: nats }).NATS_URL).toBe("nats://a:b@nats.example:4222");
    const configFile = file("config-unknown.json", JSON.stringify({ CINDERBLOCK_HOST_FILE: nats }));
    expect(configError(() => loadApiConfig({ CINDERBLOCK_CONFIG: configFile }))).toContain("CINDERBLOCK_HOST_FILE (in");
  });
});

describe("config errors never print a secret", () => {
  it("hides the password of a bad DATABASE_URL but keeps the rest", () => {
    const message = configError(() =>
      loadApiConfig({ DATABASE_URL: "postgres://svc:hunter2@db.example/cinderblock?sslmode=verify-fully" }),
    );
    expect(message).toContain("postgres://svc:***@db.example/cinderblock");
    expect(message).toContain("unknown sslmode=verify-fully");
    expect(message).not.toContain("hunter2");
  });

  it("says which file a bad value came from, without the value's secret", () => {
    const url = file("bad-url", "postgres://svc:topsecret@db.example/x?sslmode=nope\n");
    const message = configError(() => loadApiConfig({ DATABASE_URL_FILE: url }));
    expect(message).toContain(`(from DATABASE_URL_FILE=${JSON.stringify(url)})`);
    expect(message).not.toContain("topsecret");
  });

  it("refuses a CA file it cannot read and a CA with an sslmode that verifies nothing", () => {
    expect(configError(() => loadApiConfig({ DATABASE_SSL_CA_FILE: join(dir, "no-ca.pem") }))).toContain(
      "DATABASE_SSL_CA_FILE",
    );
    const ca = file("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    const message = configError(() =>
      loadApiConfig({ DATABASE_SSL_CA_FILE: ca, DATABASE_URL: "postgres://u:pw@db/x?sslmode=disable" }),
    );
    expect(message).toMatch(/DATABASE_URL="postgres:\/\/u:\*\*\*@db\/x\?sslmode=disable": sslmode=disable/);
    expect(loadApiConfig({ DATABASE_SSL_CA_FILE: ca }).DATABASE_SSL_CA_FILE).toBe(ca);
  });
});

describe("redaction helpers", () => {
  it("scrub the password of every URL in a text", () => {
    expect(scrubUrlPasswords("connect postgres://svc:p%40ss@db:5432/x failed")).toBe(
      "connect postgres://svc:***@db:5432/x failed",
    );
    expect(scrubUrlPasswords("nats://a:b@n1:4222,nats://c:d@n2:4222")).toBe(
      "nats://a:***@n1:4222,nats://c:***@n2:4222",
    );
    expect(scrubUrlPasswords("postgres://svc@db/x")).toBe("postgres://svc@db/x");
  });

  it("redact secret-named fields at any depth", () => {
    expect(
      redactSecrets({
        config: { NATS_PASSWORD: "x", DATABASE_URL: "postgres://a:b@h/d" },
        headers: { "x-auth-token": "t" },
      }),
    ).toEqual({
      config: { NATS_PASSWORD: "[redacted]", DATABASE_URL: "postgres://a:***@h/d" },
      headers: { "x-auth-token": "[redacted]" },
    });
  });
});

describe("the service logger", () => {
  function capture() {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
        done();
      },
    });
    const logger = createLogger({ service: "test", level: "info", destination });
    return { logger, text: () => lines.join("\n") };
  }

  it("never writes a known secret field", () => {
    const { logger, text } = capture();
    logger.info({ password: "pw1", user: { token: "tok1" }, NATS_TOKEN: "tok2", KEYSTONE_PASSWORD: "pw2" }, "hello");
    expect(text()).toContain("hello");
    for (const secret of ["pw1", "tok1", "tok2", "pw2"]) expect(text()).not.toContain(secret);
    expect(text()).toContain("[redacted]");
  });

  it("scrubs a URL's password from an error's message, stack and fields, a described error and the message", () => {
    const { logger, text } = capture();
    const error = Object.assign(new Error("cannot connect to postgres://svc:hunter2@db:5432/x"), {
      url: "nats://u:natspw@nats:4222",
      cause: new Error("via postgres://svc:hunter2@db:5432/x"),
    });
    logger.error({ err: error }, "failed");
    logger.warn({ err: "postgres://svc:hunter2@db/x: ECONNREFUSED" }, "waiting for dependency");
    logger.info({ address: "postgres://svc:hunter2@db/x" }, "connecting to postgres://svc:hunter2@db/x");
    expect(text()).not.toContain("hunter2");
    expect(text()).not.toContain("natspw");
    expect(text()).toContain("postgres://svc:***@db:5432/x");
    expect(JSON.parse(text().split("\n")[0] as string).err.type).toBe("Error");
  });
});
