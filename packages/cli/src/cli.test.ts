import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { COMMANDS } from "./args.js";
import { connectionSettings, run } from "./cli.js";
import { HANDLERS } from "./commands.js";
import { EXIT, EXIT_CODE_TABLE, exitCodeForStatus } from "./exit-codes.js";

function capture() {
  let text = "";
  return {
    stream: {
      write(s: string) {
        text += s;
      },
    },
    text: () => text,
  };
}

async function runCapturing(argv: string[], env: Record<string, string> = {}) {
  const stdout = capture();
  const stderr = capture();
  const code = await run(argv, {
    env,
    stdout: stdout.stream,
    stderr: stderr.stream,
    signal: new AbortController().signal,
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

describe("run", () => {
  it("prints help on stdout with exit 0", async () => {
    const r = await runCapturing(["snapshot", "delete", "--help"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toContain("usage: cinderblock snapshot delete SNAPSHOT_ID [flags]");
  });

  it("exits 2 on a usage error, naming the flag, before connecting", async () => {
    const r = await runCapturing(["volume", "list", "--limit", "x"], { CINDERBLOCK_PROJECT: "p", USER: "u" });
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      "cinderblock volume list: --limit: expected a whole number from 0 to 2147483647, got 'x'\n" +
        "Run 'cinderblock volume list --help' for usage.\n",
    );
    const env = { CINDERBLOCK_PROJECT: "p", USER: "u" };
    const policy = await runCapturing(["volume", "retype", "v", "t", "--migration-policy", "sometimes"], env);
    expect(policy).toMatchObject({ code: EXIT.USAGE, stdout: "" });
    expect(policy.stderr).toContain("--migration-policy: expected never or on-demand, got 'sometimes'");
    const both = await runCapturing(["volume", "create", "--from-snapshot", "s", "--source-volume", "v"], env);
    expect(both).toMatchObject({ code: EXIT.USAGE, stdout: "" });
    expect(both.stderr).toContain("--from-snapshot and --source-volume: give one or the other");
    const noType = await runCapturing(["volume", "retype", "v"], env);
    expect(noType.code).toBe(EXIT.USAGE);
    expect(noType.stderr).toContain("missing TYPE");
    const noProject = await runCapturing(["quota", "show"], { USER: "u" });
    expect(noProject.code).toBe(EXIT.USAGE);
    expect(noProject.stderr).toContain("--project is required");
  });
});

describe("connectionSettings", () => {
  it("takes flags over the environment over defaults (noauth)", () => {
    expect(connectionSettings({}, { CINDERBLOCK_PROJECT: "p", USER: "me" })).toEqual({
      address: "127.0.0.1:50051",
      credentials: { kind: "noauth", projectId: "p", userId: "me", roles: [] },
      tls: undefined,
      timeoutMs: 30_000,
    });
    const env = {
      CINDERBLOCK_API: "http://10.0.0.1:9000",
      CINDERBLOCK_PROJECT: "p",
      CINDERBLOCK_USER: "u",
      CINDERBLOCK_ROLES: "member",
      CINDERBLOCK_ADMIN: "1",
    };
    expect(connectionSettings({}, env)).toMatchObject({
      address: "10.0.0.1:9000",
      credentials: { userId: "u", roles: ["member", "admin"] },
    });
    expect(
      connectionSettings({ api: "h:1", project: "q", user: "v", roles: "a,b", admin: true, timeout: "5" }, env),
    ).toEqual({
      address: "h:1",
      credentials: { kind: "noauth", projectId: "q", userId: "v", roles: ["a", "b", "admin"] },
      tls: undefined,
      timeoutMs: 5000,
    });
  });

  it("takes a token from --token or CINDERBLOCK_TOKEN, Keystone's unless --token-type bearer", () => {
    expect(connectionSettings({ token: "t1" }, {}).credentials).toEqual({
      kind: "token",
      token: "t1",
      tokenType: "keystone",
    });
    expect(connectionSettings({}, { CINDERBLOCK_TOKEN: "t2", CINDERBLOCK_TOKEN_TYPE: "bearer" }).credentials).toEqual({
      kind: "token",
      token: "t2",
      tokenType: "bearer",
    });
    // The flag wins over the environment, and a token wins over OS_* and noauth's project.
    expect(
      connectionSettings(
        { token: "t3" },
        { CINDERBLOCK_TOKEN: "t2", OS_AUTH_URL: "http://k:5000", CINDERBLOCK_PROJECT: "p" },
      ).credentials,
    ).toEqual({ kind: "token", token: "t3", tokenType: "keystone" });
    expect(() => connectionSettings({ token: "t", "token-type": "jwt" }, {})).toThrow(
      /--token-type: expected keystone or bearer, got 'jwt'/,
    );
    expect(() => connectionSettings({ token: "t", project: "p" }, {})).toThrow(/--project is for the api's noauth/);
    expect(() => connectionSettings({ token: "t", admin: true }, {})).toThrow(/--admin is for the api's noauth/);
  });

  it("logs in to Keystone with the OS_* variables of an openrc file when there is no token", () => {
    const openrc = {
      OS_AUTH_URL: "http://keystone:5000",
      OS_USERNAME: "demo",
      OS_PASSWORD: "secret",
      OS_PROJECT_NAME: "demo",
    };
    expect(connectionSettings({}, openrc).credentials).toEqual({
      kind: "keystone-password",
      login: {
        authUrl: "http://keystone:5000/v3",
        username: "demo",
        password: "secret",
        projectName: "demo",
        userDomainName: "Default",
        projectDomainName: "Default",
      },
    });
    expect(
      connectionSettings(
        {},
        {
          ...openrc,
          OS_AUTH_URL: "https://keystone/identity/v3/",
          OS_USER_DOMAIN_NAME: "users",
          OS_PROJECT_DOMAIN_NAME: "projects",
          OS_CACERT: "/etc/ca.pem",
        },
      ).credentials,
    ).toMatchObject({
      login: {
        authUrl: "https://keystone/identity/v3",
        userDomainName: "users",
        projectDomainName: "projects",
        caFile: "/etc/ca.pem",
      },
    });
    expect(() => connectionSettings({}, { OS_AUTH_URL: "http://k:5000", OS_USERNAME: "demo" })).toThrow(
      /OS_AUTH_URL is set, but OS_PASSWORD, OS_PROJECT_NAME are not/,
    );
  });

  it("uses TLS with --cacert, --tls, CINDERBLOCK_TLS or an https:// address, and not otherwise", () => {
    const noauth = { CINDERBLOCK_PROJECT: "p", USER: "u" };
    expect(connectionSettings({}, noauth).tls).toBeUndefined();
    expect(connectionSettings({ cacert: "/ca.pem" }, noauth).tls).toEqual({ caFile: "/ca.pem" });
    expect(connectionSettings({}, { ...noauth, CINDERBLOCK_CACERT: "/ca2.pem" }).tls).toEqual({ caFile: "/ca2.pem" });
    expect(connectionSettings({ tls: true }, noauth).tls).toEqual({});
    expect(connectionSettings({ tls: true }, { ...noauth, OS_CACERT: "/os.pem" }).tls).toEqual({ caFile: "/os.pem" });
    expect(connectionSettings({}, { ...noauth, CINDERBLOCK_TLS: "1" }).tls).toEqual({});
    const https = connectionSettings({ api: "https://api.example:443" }, noauth);
    expect(https).toMatchObject({ address: "api.example:443", tls: {} });
    // OS_CACERT alone is Keystone's CA: it does not turn TLS to the api on.
    expect(connectionSettings({}, { ...noauth, OS_CACERT: "/os.pem" }).tls).toBeUndefined();
    expect(() => connectionSettings({}, { ...noauth, CINDERBLOCK_TLS: "maybe" })).toThrow(/CINDERBLOCK_TLS: expected/);
  });
});

describe("exit codes", () => {
  it("maps each gRPC status to its documented code, anything else to 1", () => {
    expect(exitCodeForStatus(status.NOT_FOUND)).toBe(3);
    expect(exitCodeForStatus(status.INVALID_ARGUMENT)).toBe(4);
    expect(exitCodeForStatus(status.FAILED_PRECONDITION)).toBe(5);
    expect(exitCodeForStatus(status.RESOURCE_EXHAUSTED)).toBe(6);
    expect(exitCodeForStatus(status.ALREADY_EXISTS)).toBe(7);
    expect(exitCodeForStatus(status.PERMISSION_DENIED)).toBe(8);
    expect(exitCodeForStatus(status.UNAUTHENTICATED)).toBe(8);
    expect(exitCodeForStatus(status.UNAVAILABLE)).toBe(9);
    expect(exitCodeForStatus(status.DEADLINE_EXCEEDED)).toBe(10);
    expect(exitCodeForStatus(status.INTERNAL)).toBe(1);
    expect(exitCodeForStatus(status.UNKNOWN)).toBe(1);
    // The table the help prints lists every code once.
    const codes = EXIT_CODE_TABLE.map((r) => r.code);
    expect(new Set(codes).size).toBe(codes.length);
    expect([...codes].sort((a, b) => a - b)).toEqual([...new Set(Object.values(EXIT))].sort((a, b) => a - b));
  });

  it("has a handler for every command", () => {
    expect(Object.keys(HANDLERS).sort()).toEqual(COMMANDS.map((c) => c.name).sort());
  });
});
