import { describe, expect, it } from "vitest";
import { COMMANDS, intFlag, pairsFlag, parseCommandLine, UsageError } from "./args.js";

function usage(argv: string[]): UsageError {
  try {
    parseCommandLine(argv);
  } catch (error) {
    if (error instanceof UsageError) return error;
    throw error;
  }
  throw new Error(`expected a usage error for ${argv.join(" ")}`);
}

describe("parseCommandLine", () => {
  it("finds the command, its positional arguments and flags, global flags anywhere after it", () => {
    const parsed = parseCommandLine([
      "snapshot",
      "create",
      "vol-1",
      "--name",
      "n",
      "--json",
      "--wait",
      "--metadata",
      "a=1",
      "--metadata",
      "b=2",
    ]);
    expect(parsed).toMatchObject({
      kind: "command",
      command: { name: "snapshot create" },
      args: ["vol-1"],
      flags: { name: "n", json: true, wait: true, metadata: ["a=1", "b=2"] },
    });
    expect(parseCommandLine(["events", "--type", "a", "--type", "b"])).toMatchObject({
      command: { name: "events" },
      flags: { type: ["a", "b"] },
    });
  });

  it("gives help for the program, a group and a command", () => {
    expect(parseCommandLine(["--help"])).toMatchObject({ kind: "help", text: expect.stringContaining("exit codes:") });
    expect(parseCommandLine(["volume", "--help"])).toMatchObject({ text: expect.stringContaining("volume create") });
    const help = parseCommandLine(["volume", "create", "-h"]);
    expect(help).toMatchObject({ kind: "help", text: expect.stringContaining("--from-snapshot SNAPSHOT_ID") });
    // --help wins over a bad flag next to it.
    expect(parseCommandLine(["volume", "create", "--nope", "--help"])).toMatchObject({ kind: "help" });
  });

  it("names the flag or argument a usage error is about", () => {
    expect(usage(["volume", "create", "--sise", "1"]).message).toBe("unknown flag --sise");
    expect(usage(["volume", "create", "--size"]).message).toContain("'--size <value>'");
    expect(usage(["volume", "create", "--bootable=no"]).message).toContain("'--bootable'");
    expect(usage(["volume", "delete", "id", "--force"]).message).toBe("unknown flag --force");
    expect(usage(["volume", "show"]).message).toBe("missing VOLUME_ID");
    expect(usage(["volume", "show", "a", "b"]).message).toBe("unexpected argument 'b'");
    expect(usage(["volume", "grow"])).toMatchObject({ message: expect.stringContaining("'grow'"), command: "volume" });
    expect(usage(["volumes"]).message).toBe("unknown command 'volumes'");
    expect(usage([]).message).toBe("missing command");
  });

  it("has a handler name and help text for every command", () => {
    for (const spec of COMMANDS) {
      expect(parseCommandLine([...spec.name.split(" "), "--help"])).toMatchObject({ kind: "help" });
    }
  });
});

describe("flag values", () => {
  it("reads whole numbers within bounds, naming the flag otherwise", () => {
    expect(intFlag({ size: "3" }, "size", 0)).toBe(3);
    expect(intFlag({}, "size", 0)).toBeUndefined();
    for (const bad of ["-1", "1.5", "ten", "", "99999999999"]) {
      expect(() => intFlag({ size: bad }, "size", 0)).toThrow(/^--size: expected a whole number/);
    }
    expect(() => intFlag({ count: "0" }, "count", 1)).toThrow("--count");
  });

  it("reads KEY=VALUE pairs (the value may hold '=')", () => {
    expect(pairsFlag({ metadata: ["a=1", "b=x=y", "c="] }, "metadata")).toEqual({ a: "1", b: "x=y", c: "" });
    expect(() => pairsFlag({ metadata: ["=1"] }, "metadata")).toThrow("--metadata: expected KEY=VALUE, got '=1'");
  });
});
