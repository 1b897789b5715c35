import { describe, expect, it } from "vitest";
import { ConfigError, loadApiConfig, loadSchedulerConfig } from "./config.js";
import { formatPostgresUrl, parsePostgresUrl, postgresUrlProblem } from "./postgres-url.js";

describe("parsePostgresUrl", () => {
  it("takes one host as new URL does", () => {
    const { hosts, url } = parsePostgresUrl("postgres://u:p%40ss@db.example:6432/cinder?sslmode=require");
    expect(hosts).toEqual([{ host: "db.example", port: 6432 }]);
    expect([url.username, url.password, url.pathname]).toEqual(["u", "p%40ss", "/cinder"]);
    expect(url.searchParams.get("sslmode")).toBe("require");
  });

  it("takes a host list, each host's port or libpq's 5432", () => {
    const parsed = parsePostgresUrl("postgresql://u@h1:5433,h2,10.0.0.3:5434/x?target_session_attrs=read-write");
    expect(parsed.hosts).toEqual([
      { host: "h1", port: 5433 },
      { host: "h2", port: 5432 },
      { host: "10.0.0.3", port: 5434 },
    ]);
    expect(parsed.url.searchParams.get("target_session_attrs")).toBe("read-write");
  });

  it("writes the host list back with every port, after a change to the rest", () => {
    const parsed = parsePostgresUrl("postgres://u:secret@h1:5433,h2/x?target_session_attrs=read-write");
    parsed.url.pathname = "/other";
    parsed.url.password = "***";
    expect(formatPostgresUrl(parsed)).toBe("postgres://u:***@h1:5433,h2:5432/other?target_session_attrs=read-write");
  });

  it("keeps a lone IPv6 address and a URL with no host (a local socket)", () => {
    expect(parsePostgresUrl("postgres://u@[::1]:5433/x").hosts).toEqual([{ host: "::1", port: 5433 }]);
    expect(formatPostgresUrl(parsePostgresUrl("postgres://u@[::1]:5433/x"))).toBe("postgres://u@[::1]:5433/x");
    expect(parsePostgresUrl("postgres:///x").hosts).toEqual([]);
  });

  it("says what is wrong", () => {
    expect(() => parsePostgresUrl("mysql://h/x")).toThrow(/postgres:\/\//);
    expect(() => parsePostgresUrl("postgres://h1:5432,[::1]:5433/x")).toThrow(/IPv6 address \[::1\]:5433 in a list/);
    expect(() => parsePostgresUrl("postgres://h1:99999/x")).toThrow(/bad port in "h1:99999"/);
    expect(() => parsePostgresUrl("postgres://h1,,h2/x")).toThrow(/bad host ""/);
  });
});

describe("PostgreSQL URL settings", () => {
  it("accept a multi-host DATABASE_URL and DATABASE_MIGRATION_URL", () => {
    const url = "postgres://cinder@pg-a:5432,pg-b:5432/cinderblock?target_session_attrs=read-write";
    const config = loadSchedulerConfig({ DATABASE_URL: url, DATABASE_MIGRATION_URL: url.replace("cinder@", "owner@") });
    expect(config.DATABASE_URL).toBe(url);
  });

  it("refuse a target_session_attrs postgres.js does not know, naming the setting", () => {
    expect(postgresUrlProblem("postgres://h1,h2/x?target_session_attrs=primary")).toBeUndefined();
    // libpq's "any" (its default) is one postgres.js refuses at connect: leave the parameter out.
    expect(postgresUrlProblem("postgres://h/x?target_session_attrs=any")).toMatch(/unknown target_session_attrs=any/);
    expect(() => loadApiConfig({ DATABASE_URL: "postgres://h1,h2/x?target_session_attrs=readwrite" })).toThrow(
      /DATABASE_URL="postgres:\/\/h1,h2\/x\?target_session_attrs=readwrite": unknown target_session_attrs=readwrite \(expected one of read-write, read-only, primary, standby, prefer-standby\)/,
    );
  });

  it("refuse a URL that is not one, and check sslmode on every host list alike", () => {
    expect(() => loadApiConfig({ DATABASE_MIGRATION_URL: "pg-a,pg-b" })).toThrow(ConfigError);
    expect(() => loadApiConfig({ DATABASE_URL: "postgres://h1,h2/x?sslmode=strict" })).toThrow(
      /DATABASE_URL="postgres:\/\/h1,h2\/x\?sslmode=strict": unknown sslmode=strict/,
    );
  });
});
