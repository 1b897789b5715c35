import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { COMMANDS } from "./args.js";
import { connectionOptions, run } from "./cli.js";
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
    const noProject = await runCapturing(["quota", "show"], { USER: "u" });
    expect(noProject.code).toBe(EXIT.USAGE);
    expect(noProject.stderr).toContain("--project is required");
  });
});

describe("connectionOptions", () => {
  it("takes flags over the environment over defaults", () => {
    expect(connectionOptions({}, { CINDERBLOCK_PROJECT: "p", USER: "me" })).toEqual({
      address: "127.0.0.1:50051",
      projectId: "p",
      userId: "me",
      roles: [],
      timeoutMs: 30_000,
    });
    const env = {
      CINDERBLOCK_API: "http://10.0.0.1:9000",
      CINDERBLOCK_PROJECT: "p",
      CINDERBLOCK_USER: "u",
      CINDERBLOCK_ROLES: "member",
      CINDERBLOCK_ADMIN: "1",
    };
    expect(connectionOptions({}, env)).toMatchObject({
      address: "10.0.0.1:9000",
      userId: "u",
      roles: ["member", "admin"],
    });
    expect(
      connectionOptions({ api: "h:1", project: "q", user: "v", roles: "a,b", admin: true, timeout: "5" }, env),
    ).toEqual({ address: "h:1", projectId: "q", userId: "v", roles: ["a", "b", "admin"], timeoutMs: 5000 });
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
