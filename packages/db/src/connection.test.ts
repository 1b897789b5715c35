import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConnectionOptions, PeerCertificate } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postgresConnection } from "./connection.js";

let dir: string;
let ca: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cinderblock-conn-"));
  ca = join(dir, "ca.pem");
  writeFileSync(ca, "CA PEM");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("postgresConnection", () => {
  it("leaves a URL without sslmode or CA in plain text, as before", () => {
    expect(postgresConnection("postgres://u:p@db:5432/x")).toEqual({ url: "postgres://u:p@db:5432/x", ssl: false });
  });

  it("takes the ssl parameters out of the URL (the server would refuse them as settings)", () => {
    const { url, ssl } = postgresConnection(
      `postgres://u:p@db/x?sslmode=verify-full&sslrootcert=${ca}&application_name=a`,
    );
    expect(url).toBe("postgres://u:p@db:5432/x?application_name=a");
    expect(ssl).toMatchObject({ ca: "CA PEM", rejectUnauthorized: true, servername: "db" });
  });

  it("verifies chain and host name under verify-full, the chain only under verify-ca", () => {
    const full = postgresConnection("postgres://u@db.example/x?sslmode=verify-full", { sslCaFile: ca }).ssl;
    expect(full).toMatchObject({ rejectUnauthorized: true, servername: "db.example", ca: "CA PEM" });
    const chain = postgresConnection("postgres://u@db.example/x?sslmode=verify-ca", { sslCaFile: ca }).ssl;
    expect(chain).toMatchObject({ rejectUnauthorized: true, ca: "CA PEM" });
    expect(typeof (chain as { checkServerIdentity?: unknown }).checkServerIdentity).toBe("function");
  });

  it("reads a CA file alone as verify-full, and require with a CA as verify-ca (libpq)", () => {
    expect(postgresConnection("postgres://u@db/x", { sslCaFile: ca }).ssl).toMatchObject({ servername: "db" });
    const required = postgresConnection("postgres://u@db/x?sslmode=require", { sslCaFile: ca }).ssl;
    expect(required).toMatchObject({ rejectUnauthorized: true, ca: "CA PEM" });
    expect(required).not.toHaveProperty("servername");
    expect(postgresConnection("postgres://u@db/x?sslmode=require").ssl).toBe("require");
    expect(postgresConnection("postgres://u@db/x?sslmode=prefer").ssl).toBe("prefer");
  });

  it("checks the URL's host, not the name Node would guess, and sends no SNI name for an IP", () => {
    const cert = { subject: { CN: "localhost" }, subjectaltname: "DNS:localhost" } as PeerCertificate;
    const byIp = postgresConnection("postgres://u@127.0.0.1/x?sslmode=verify-full", { sslCaFile: ca }).ssl;
    expect(byIp).not.toHaveProperty("servername");
    const checkIp = (byIp as ConnectionOptions).checkServerIdentity;
    expect(checkIp?.("localhost", cert)).toBeInstanceOf(Error);
    const byName = postgresConnection("postgres://u@localhost/x?sslmode=verify-full", { sslCaFile: ca }).ssl;
    expect((byName as ConnectionOptions).checkServerIdentity?.("localhost", cert)).toBeUndefined();
    const chain = postgresConnection("postgres://u@127.0.0.1/x?sslmode=verify-ca", { sslCaFile: ca }).ssl;
    expect((chain as ConnectionOptions).checkServerIdentity?.("localhost", cert)).toBeUndefined();
  });

  it("hands postgres.js a host list intact, each host with its port", () => {
    const { url, ssl } = postgresConnection(
      "postgres://u:p@pg-a:5433,pg-b,10.0.0.3:5434/x?sslmode=disable&target_session_attrs=read-write",
    );
    expect(url).toBe("postgres://u:p@pg-a:5433,pg-b:5432,10.0.0.3:5434/x?target_session_attrs=read-write");
    expect(ssl).toBe(false);
  });

  it("checks a multi-host verify-full certificate against the host connected, else any listed host", () => {
    const { ssl } = postgresConnection("postgres://u@pg-a,10.0.0.3/x?sslmode=verify-full", { sslCaFile: ca });
    const options = ssl as ConnectionOptions;
    // postgres.js sets the SNI name of each host itself.
    expect(options).not.toHaveProperty("servername");
    const check = options.checkServerIdentity as (this: unknown, name: string, cert: PeerCertificate) => unknown;
    const forA = { subject: { CN: "pg-a" }, subjectaltname: "DNS:pg-a" } as PeerCertificate;
    const forIp = { subject: { CN: "x" }, subjectaltname: "IP Address:10.0.0.3" } as PeerCertificate;
    const stranger = { subject: { CN: "evil" }, subjectaltname: "DNS:evil" } as PeerCertificate;
    // Connected to pg-a by name: its certificate must name pg-a.
    expect(check.call({ servername: "pg-a" }, "pg-a", forA)).toBeUndefined();
    expect(check.call({ servername: "pg-a" }, "pg-a", forIp)).toBeInstanceOf(Error);
    // Connected to the address (no SNI name; Node says "localhost"): checked against the address.
    expect(check.call({ socket: { remoteAddress: "10.0.0.3" } }, "localhost", forIp)).toBeUndefined();
    expect(check.call({ socket: { remoteAddress: "10.0.0.3" } }, "localhost", forA)).toBeInstanceOf(Error);
    // The host cannot be told: any listed host's certificate passes, no other.
    expect(check.call(undefined, "localhost", forA)).toBeUndefined();
    expect(check.call(undefined, "localhost", stranger)).toBeInstanceOf(Error);
  });
});
