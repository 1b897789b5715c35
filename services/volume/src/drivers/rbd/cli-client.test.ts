import { describe, expect, it } from "vitest";
import { DriverError } from "../driver.js";
import { CephError, Errno } from "./ceph-error.js";
import { type CommandOutput, createCliClient, type RunCommand } from "./cli-client.js";

// The CLI client against a faked `rbd`/`ceph`: which programs it runs with which arguments, how
// it reads their JSON, and how exit statuses, timeouts and a missing binary become errors.

interface Call {
  file: string;
  args: readonly string[];
  timeoutMs: number;
}

function fakeRun(answer: (call: Call) => CommandOutput | Promise<CommandOutput>): { run: RunCommand; calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    run: async (file, args, timeoutMs) => {
      const call = { file, args, timeoutMs };
      calls.push(call);
      return answer(call);
    },
  };
}

const ok = (stdout = ""): CommandOutput => ({ stdout, stderr: "" });

function client(run: RunCommand) {
  return createCliClient({
    pool: "volumes",
    user: "cinder",
    clusterName: "ceph",
    confPath: "/etc/ceph/ceph.conf",
    keyring: "/etc/ceph/ceph.client.cinder.keyring",
    connectTimeoutMs: 2000,
    timeoutMs: 5000,
    longTimeoutMs: 60_000,
    run,
  });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail");
}

const IDENTITY = ["--cluster", "ceph", "--id", "cinder", "--conf", "/etc/ceph/ceph.conf"];

describe("rbd CLI client", () => {
  it("runs rbd without a shell, with the pool spec, --no-progress and the cluster identity", async () => {
    const fake = fakeRun(() => ok());
    const rbd = client(fake.run);
    await rbd.createSnapshot("volume-a", "snapshot-b");
    await rbd.protectSnapshot("volume-a", "snapshot-b");
    await rbd.flatten({ image: "volume-c" });
    await rbd.flatten({ pool: "other", namespace: "ns", image: "volume-d" });
    await rbd.resize("volume-a", 2 * 1024 ** 3);
    expect(fake.calls.map((c) => c.file)).toEqual(["rbd", "rbd", "rbd", "rbd", "rbd"]);
    expect(fake.calls[0]?.args).toEqual([
      "snap",
      "create",
      "--no-progress",
      "volumes/volume-a@snapshot-b",
      ...IDENTITY,
      "--keyring",
      "/etc/ceph/ceph.client.cinder.keyring",
    ]);
    expect(fake.calls[1]?.args.slice(0, 3)).toEqual(["snap", "protect", "volumes/volume-a@snapshot-b"]);
    expect(fake.calls[2]?.args.slice(0, 3)).toEqual(["flatten", "--no-progress", "volumes/volume-c"]);
    expect(fake.calls[3]?.args[2]).toBe("other/ns/volume-d");
    expect(fake.calls[4]?.args.slice(0, 5)).toEqual([
      "resize",
      "--no-progress",
      "--size",
      "2147483648B",
      "volumes/volume-a",
    ]);
    // Calls that move data get the long timeout.
    expect(fake.calls.map((c) => c.timeoutMs)).toEqual([5000, 5000, 60_000, 60_000, 60_000]);
  });

  it("reads rbd's JSON: string booleans, parents, snapshots in `ls --long`, trashed children", async () => {
    const fake = fakeRun(({ args }) => {
      const command = args.slice(0, 2).join(" ");
      if (command === "snap ls")
        return ok('[{"id":4,"name":"s1","size":1073741824,"protected":"true","timestamp":"x"}]');
      if (args[0] === "info")
        return ok(
          '{"size":2147483648,"parent":{"pool":"volumes","pool_namespace":"","image":"volume-a","id":"1","snapshot":"s1","trash":false,"overlap":1}}',
        );
      if (args[0] === "ls")
        return ok(
          '[{"image":"volume-a","size":1073741824},{"image":"volume-a","snapshot":"s1","size":1073741824},{"image":"other","size":5}]',
        );
      if (args[0] === "children")
        return ok('[{"pool":"volumes","pool_namespace":"","image":"volume-b","id":"2","trash":true}]');
      throw new Error(`unexpected ${args.join(" ")}`);
    });
    const rbd = client(fake.run);
    expect(await rbd.listSnapshots("volume-a")).toEqual([{ name: "s1", size: 1073741824, protected: true }]);
    expect(await rbd.imageInfo("volume-b")).toEqual({
      size: 2147483648,
      parent: { pool: "volumes", namespace: "", image: "volume-a", snapshot: "s1" },
    });
    expect(await rbd.imageSizes("volume-")).toEqual([{ name: "volume-a", size: 1073741824 }]);
    expect(await rbd.listChildren("volume-a", "s1")).toEqual([
      { pool: "volumes", namespace: "", image: "volume-b", trash: true },
    ]);
    expect(fake.calls.every((c) => c.args.includes("--format") && c.args.includes("json"))).toBe(true);
    expect(fake.calls.find((c) => c.args[0] === "children")?.args).toContain("--all");
  });

  it("checks the pool answers at connect, within the connect timeout", async () => {
    const fake = fakeRun(() => ok("[]"));
    await client(fake.run).connect();
    expect(fake.calls).toEqual([
      expect.objectContaining({ file: "rbd", args: expect.arrayContaining(["ls", "volumes"]), timeoutMs: 2000 }),
    ]);
  });

  it("asks ceph for df and the pool quota with a connect timeout", async () => {
    const fake = fakeRun(() => ok("{}"));
    const rbd = client(fake.run);
    await rbd.df();
    await rbd.poolQuota();
    expect(fake.calls.map((c) => [c.file, ...c.args.slice(0, 4)])).toEqual([
      ["ceph", "df", "--format", "json", "--cluster"],
      ["ceph", "osd", "pool", "get-quota", "volumes"],
    ]);
    expect(fake.calls[0]?.args.slice(-2)).toEqual(["--connect-timeout", "5"]);
  });

  it("turns the exit status into the errno, keeping the end of stderr", async () => {
    const fake = fakeRun(() => {
      throw Object.assign(new Error("Command failed"), {
        code: 16,
        stderr: "2026-01-01 librbd: some log line\nrbd: unprotecting snap failed: (16) Device or resource busy\n",
      });
    });
    const error = (await rejection(client(fake.run).unprotectSnapshot("volume-a", "s1"))) as CephError;
    expect(error).toBeInstanceOf(CephError);
    expect(error.errno).toBe(Errno.EBUSY);
    expect(error.code).toBe("EBUSY");
    expect(error.message).toMatch(/rbd snap unprotect failed \(exit status 16\): .*Device or resource busy/);
  });

  it("reports a call killed by its timeout as ETIMEDOUT", async () => {
    const fake = fakeRun(() => {
      throw Object.assign(new Error("killed"), { code: null, killed: true, signal: "SIGKILL", stderr: "" });
    });
    const error = (await rejection(client(fake.run).createImage("volume-a", 1024 ** 3))) as CephError;
    expect(error.errno).toBe(Errno.ETIMEDOUT);
    expect(error.message).toMatch(/rbd create timed out after 5 s/);
  });

  it("reports a missing rbd binary as a terminal driver error, not as a missing image", async () => {
    const fake = fakeRun(() => {
      throw Object.assign(new Error("spawn rbd ENOENT"), { code: "ENOENT", path: "rbd" });
    });
    const error = (await rejection(client(fake.run).removeImage("volume-a"))) as DriverError;
    expect(error).toBeInstanceOf(DriverError);
    expect(error).not.toBeInstanceOf(CephError);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/cannot run rbd.*ceph-common/);
  });
});
