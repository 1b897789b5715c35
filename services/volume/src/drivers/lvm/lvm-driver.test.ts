import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { DriverError, SnapshotBusyError } from "../driver.js";
import {
  type CommandResult,
  type CommandRunner,
  CommandRunnerError,
  createAgentRunner,
  createLocalRunner,
} from "./command-runner.js";
import { cowBytes, createLvmDriver } from "./lvm-driver.js";

// Unit tests with a scripted runner: the argument vectors the driver builds and how it reads
// LVM's answers. The real behaviour is proven against real LVM in lvm-driver.integration.test.ts.

const VOLUME = "0b5c1c8e-3c4f-4d5e-8f60-718293a4b5c6";
const SNAPSHOT = "7d1e2f30-4a5b-4c6d-8e9f-a0b1c2d3e4f5";
const GIB = 1024 ** 3;

type Reply = Partial<CommandResult> | Error;

/** A runner answering each command with the first reply whose key prefixes its command line. */
function scripted(replies: Array<[string, Reply]>) {
  const calls: string[][] = [];
  const runner: CommandRunner = {
    async run(argv) {
      calls.push([...argv]);
      const line = argv.join(" ");
      const index = replies.findIndex(([prefix]) => line.startsWith(prefix));
      if (index < 0) return { code: 0, stdout: "", stderr: "" };
      const [, reply] = replies.splice(index, 1)[0] as [string, Reply];
      if (reply instanceof Error) throw reply;
      return { code: 0, stdout: "", stderr: "", ...reply };
    },
  };
  return { runner, calls };
}

function lvsJson(lvs: Array<Record<string, string>>): string {
  return JSON.stringify({ report: [{ lv: lvs }] });
}

function vgsJson(free: number): string {
  return JSON.stringify({
    report: [
      {
        vg: [{ vg_name: "cinder-volumes", vg_size: String(8 * GIB), vg_free: String(free), vg_extent_size: "4194304" }],
      },
    ],
  });
}

async function rejection(promise: Promise<unknown>): Promise<DriverError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof DriverError)) throw new Error(`expected a DriverError, got ${String(outcome)}`);
  return outcome;
}

describe("createLvmDriver: commands", () => {
  it("creates thick and thin volumes with exactly these argument vectors", async () => {
    const thick = scripted([]);
    await createLvmDriver({ runner: thick.runner, volumeGroup: "cinder-volumes" }).createVolume({
      id: VOLUME,
      sizeGb: 4,
    });
    expect(thick.calls).toEqual([["lvcreate", "-q", "-y", "-n", `volume-${VOLUME}`, "-L", "4g", "cinder-volumes"]]);

    const thin = scripted([]);
    await createLvmDriver({ runner: thin.runner, volumeGroup: "cinder-volumes", lvmType: "thin" }).createVolume({
      id: VOLUME.toUpperCase(),
      sizeGb: 1,
    });
    expect(thin.calls).toEqual([
      ["lvcreate", "-q", "-y", "-n", `volume-${VOLUME}`, "-V", "1g", "-T", "cinder-volumes/cinder-volumes-pool"],
    ]);
  });

  it("sizes a thick snapshot's copy-on-write store for a full overwrite of its origin", async () => {
    // 64 MiB: 16384 data chunks, 65 metadata chunks, 1 header; LVM rounds that up to 68 MiB.
    expect(cowBytes(64 * 1024 ** 2)).toBe((1 + 16384 + 65) * 4096);
    const { runner, calls } = scripted([
      ["lvs", { stdout: lvsJson([{ lv_name: `volume-${VOLUME}`, lv_attr: "-wi-a-----", lv_size: String(GIB) }]) }],
    ]);
    const driver = createLvmDriver({ runner, volumeGroup: "cinder-volumes" });
    const update = await driver.createSnapshot({ id: SNAPSHOT, volumeId: VOLUME, volumeSizeGb: 1 });
    expect(update).toEqual({ providerLocation: `cinder-volumes/_snapshot-${SNAPSHOT}` });
    expect(calls[1]).toEqual([
      "lvcreate",
      "-q",
      "-y",
      "-s",
      "-n",
      `_snapshot-${SNAPSHOT}`,
      "-c",
      "4k",
      "-L",
      `${cowBytes(GIB)}b`,
      `cinder-volumes/volume-${VOLUME}`,
    ]);
  });

  it("takes a thin snapshot with a single command", async () => {
    const { runner, calls } = scripted([]);
    const driver = createLvmDriver({ runner, volumeGroup: "vg0", lvmType: "thin" });
    await driver.createSnapshot({ id: SNAPSHOT, volumeId: VOLUME, volumeSizeGb: 1 });
    expect(calls).toEqual([["lvcreate", "-q", "-y", "-s", "-n", `_snapshot-${SNAPSHOT}`, `vg0/volume-${VOLUME}`]]);
  });

  it("clones a thin volume with a thin snapshot of it, activated and grown", async () => {
    const CLONE = "3f2e1d0c-4b5a-4968-8776-a5b4c3d2e1f0";
    const { runner, calls } = scripted([
      [
        "lvs",
        {
          stdout: lvsJson([
            {
              lv_name: `volume-${CLONE}`,
              lv_attr: "Vwi---tz-k",
              lv_size: String(GIB),
              origin: `volume-${VOLUME}`,
              pool_lv: "vg0-pool",
            },
          ]),
        },
      ],
    ]);
    const driver = createLvmDriver({ runner, volumeGroup: "vg0", lvmType: "thin" });
    await driver.createClonedVolume({ id: CLONE, sizeGb: 2 }, { id: VOLUME, sizeGb: 1 });
    expect(calls.filter((c) => c[0] !== "lvs")).toEqual([
      ["lvcreate", "-q", "-y", "-s", "-kn", "-n", `volume-${CLONE}`, `vg0/volume-${VOLUME}`],
      ["lvchange", "-ay", `vg0/volume-${CLONE}`],
      ["lvextend", "-q", "-L", "2g", `vg0/volume-${CLONE}`],
    ]);
  });

  it("clones a thick volume by copying a temporary snapshot of it, which it then removes", async () => {
    const CLONE = "3f2e1d0c-4b5a-4968-8776-a5b4c3d2e1f0";
    const source = { lv_name: `volume-${VOLUME}`, lv_attr: "owi-a-----", lv_size: String(GIB) };
    const temp = {
      lv_name: `volume-${CLONE}.clone-snap`,
      lv_attr: "swi-a-s---",
      lv_size: String(cowBytes(GIB)),
      origin: `volume-${VOLUME}`,
      lv_active: "active",
    };
    const { runner, calls } = scripted([
      ["lvs", { stdout: lvsJson([source]) }], // is the clone there already?
      ["lvs", { stdout: lvsJson([source]) }], // the source's size for the snapshot's store
      ["lvs", { stdout: lvsJson([source, temp]) }], // the copy
      ["lvs", { stdout: lvsJson([source, temp]) }], // the temporary snapshot, to remove
    ]);
    const driver = createLvmDriver({ runner, volumeGroup: "vg0", volumeClear: "none" });
    await driver.createClonedVolume({ id: CLONE, sizeGb: 2 }, { id: VOLUME, sizeGb: 1 });
    expect(calls.filter((c) => c[0] !== "lvs").map((c) => c.join(" "))).toEqual([
      `lvcreate -q -y -s -n volume-${CLONE}.clone-snap -c 4k -L ${cowBytes(GIB)}b vg0/volume-${VOLUME}`,
      `lvcreate -q -y -n volume-${CLONE}.copying -L 2g vg0`,
      `dd if=/dev/vg0/volume-${CLONE}.clone-snap of=/dev/vg0/volume-${CLONE}.copying bs=1M iflag=direct oflag=direct conv=fsync status=none`,
      `lvrename -q vg0 volume-${CLONE}.copying volume-${CLONE}`,
      `lvremove -q -y vg0/volume-${CLONE}.clone-snap`,
    ]);
    const small = await rejection(driver.createClonedVolume({ id: CLONE, sizeGb: 1 }, { id: VOLUME, sizeGb: 2 }));
    expect(small.message).toBe("a 1 GiB volume cannot hold a clone of 2 GiB");
  });

  it("checks ids and sizes before any command runs", async () => {
    const { runner, calls } = scripted([]);
    const driver = createLvmDriver({ runner, volumeGroup: "vg0" });
    for (const id of ["", "../../etc", "-rf", `${VOLUME} x`, "x".repeat(500)]) {
      const error = await rejection(driver.createVolume({ id, sizeGb: 1 }));
      expect(error.message).toMatch(/^invalid volume id .*: expected a UUID$/);
      expect(error.retryable).toBe(false);
    }
    for (const sizeGb of [0, -1, 1.5, Number.NaN]) {
      expect((await rejection(driver.createVolume({ id: VOLUME, sizeGb }))).message).toMatch(/^invalid volume size/);
    }
    expect((await rejection(driver.createSnapshot({ id: "nope", volumeId: VOLUME, volumeSizeGb: 1 }))).message).toBe(
      'invalid snapshot id "nope": expected a UUID',
    );
    expect(
      (await rejection(driver.manageExistingSnapshot({ id: SNAPSHOT, volumeId: VOLUME, volumeSizeGb: 1 }, "-f")))
        .message,
    ).toMatch(/^invalid reference "-f"/);
    expect(calls).toEqual([]);
    expect(() => createLvmDriver({ runner, volumeGroup: "-vg" })).toThrow(/not a valid volume group name/);
    expect(() => createLvmDriver({ runner, volumeGroup: "vg0", thinPool: "a/b" })).toThrow(
      /not a valid logical volume/,
    );
  });
});

describe("createLvmDriver: connections", () => {
  it("gives the storage host itself the LV's device node", async () => {
    const { runner } = scripted([
      ["lvs", { stdout: lvsJson([{ lv_name: `volume-${VOLUME}`, lv_attr: "-wi-a-----", lv_size: String(GIB) }]) }],
    ]);
    const driver = createLvmDriver({ runner, volumeGroup: "vg0" });
    expect(await driver.initializeConnection({ id: VOLUME, sizeGb: 1 }, {})).toEqual({
      driverVolumeType: "local",
      data: { device_path: `/dev/vg0/volume-${VOLUME}` },
    });
  });
});

describe("createLvmDriver: failures", () => {
  it("says how much room the volume group has and how much was needed", async () => {
    const { runner } = scripted([
      [
        "lvcreate",
        {
          code: 5,
          stderr: '  Volume group "cinder-volumes" has insufficient free space (307 extents): 1024 required.\n',
        },
      ],
      ["vgs", { stdout: vgsJson(307 * 4 * 1024 ** 2) }],
    ]);
    const error = await rejection(
      createLvmDriver({ runner, volumeGroup: "cinder-volumes" }).createVolume({ id: VOLUME, sizeGb: 4 }),
    );
    expect(error.message).toBe("volume group cinder-volumes has 1.19 GiB free, 4 GiB needed");
    expect(error.retryable).toBe(false);
  });

  it("keeps the command line and its stderr in an unexpected failure, and may retry it", async () => {
    const { runner } = scripted([
      [
        "lvcreate",
        {
          code: 5,
          stderr:
            "  WARNING: You have not turned on protection against thin pools running out of space.\n  Failed to lock VG.\n",
        },
      ],
    ]);
    const error = await rejection(
      createLvmDriver({ runner, volumeGroup: "vg0" }).createVolume({ id: VOLUME, sizeGb: 1 }),
    );
    expect(error.message).toBe(`lvcreate -q -y -n volume-${VOLUME} -L 1g vg0 failed (exit 5): Failed to lock VG.`);
    expect(error.retryable).toBe(true);
  });

  it("treats a timeout or an unreachable runner as retryable", async () => {
    const { runner } = scripted([
      [
        "lvcreate",
        new CommandRunnerError("lvcreate did not finish within 120000 ms and was killed", { timedOut: true }),
      ],
    ]);
    const error = await rejection(
      createLvmDriver({ runner, volumeGroup: "vg0" }).createVolume({ id: VOLUME, sizeGb: 1 }),
    );
    expect(error.message).toMatch(/^lvcreate .* did not complete: lvcreate did not finish within 120000 ms/);
    expect(error.retryable).toBe(true);
  });

  it("accepts a retried create when the LV it finds is the one asked for", async () => {
    const exists = { code: 5, stderr: `  Logical Volume "volume-${VOLUME}" already exists in volume group "vg0"\n` };
    const same = lvsJson([{ lv_name: `volume-${VOLUME}`, lv_attr: "-wi-a-----", lv_size: String(GIB) }]);
    const ok = scripted([
      ["lvcreate", exists],
      ["lvs", { stdout: same }],
    ]);
    await createLvmDriver({ runner: ok.runner, volumeGroup: "vg0" }).createVolume({ id: VOLUME, sizeGb: 1 });
    const clash = scripted([
      ["lvcreate", exists],
      ["lvs", { stdout: same }],
    ]);
    const error = await rejection(
      createLvmDriver({ runner: clash.runner, volumeGroup: "vg0" }).createVolume({ id: VOLUME, sizeGb: 2 }),
    );
    expect(error.message).toBe(`volume-${VOLUME} already exists in vg0 with ${GIB} bytes, not 2 GiB`);
  });

  it("deletes what is already gone without complaint, and reports a merging snapshot as busy", async () => {
    const gone = scripted([["lvs", { stdout: lvsJson([]) }]]);
    await createLvmDriver({ runner: gone.runner, volumeGroup: "vg0" }).deleteSnapshot({
      id: SNAPSHOT,
      volumeId: VOLUME,
      volumeSizeGb: 1,
    });
    expect(gone.calls.map((c) => c[0])).toEqual(["lvs"]);

    const merging = scripted([
      [
        "lvs",
        {
          stdout: lvsJson([
            {
              lv_name: `[_snapshot-${SNAPSHOT}]`,
              lv_attr: "Swi---tz-k",
              lv_size: String(GIB),
              origin: `volume-${VOLUME}`,
            },
          ]),
        },
      ],
    ]);
    const error = await rejection(
      createLvmDriver({ runner: merging.runner, volumeGroup: "vg0" }).deleteSnapshot({
        id: SNAPSHOT,
        volumeId: VOLUME,
        volumeSizeGb: 1,
      }),
    );
    expect(error).toBeInstanceOf(SnapshotBusyError);
    expect(error.message).toBe(`_snapshot-${SNAPSHOT} is being merged into volume-${VOLUME} (a revert is in progress)`);
  });

  it("reports the backend down when LVM does not answer", async () => {
    const { runner } = scripted([["vgs", { code: 5, stderr: '  Volume group "vg0" not found\n' }]]);
    const stats = await createLvmDriver({ runner, volumeGroup: "vg0" }).getStats();
    expect(stats).toMatchObject({ driver: "lvm", backendState: "down", totalCapacityGb: 0 });
  });
});

describe("command runners", () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server = undefined;
  });

  it("local: passes arguments verbatim, keeps stderr and the exit status", async () => {
    const runner = createLocalRunner();
    const script =
      "process.stdout.write(JSON.stringify(process.argv.slice(1))); process.stderr.write('oops'); process.exit(3)";
    const result = await runner.run([process.execPath, "-e", script, "a b", "'; rm -rf /", "$(x)"], {
      timeoutMs: 10_000,
    });
    expect(result).toEqual({ code: 3, stdout: JSON.stringify(["a b", "'; rm -rf /", "$(x)"]), stderr: "oops" });
  });

  it("local: kills a command at its timeout and says so", async () => {
    const error = await createLocalRunner()
      .run([process.execPath, "-e", "setTimeout(() => {}, 10000)"], { timeoutMs: 200 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandRunnerError);
    expect((error as CommandRunnerError).timedOut).toBe(true);
  });

  it("local: a missing program is an error, not an exit status", async () => {
    const error = await createLocalRunner()
      .run(["/nonexistent/lvcreate"], { timeoutMs: 1000 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandRunnerError);
    expect((error as Error).message).toBe("cannot run /nonexistent/lvcreate: ENOENT");
  });

  it("agent: sends each argument single-quoted under the guest's timeout, and parses the reply", async () => {
    let request = "";
    server = createServer((socket) => {
      socket.on("data", (chunk) => {
        request += chunk.toString();
        if (!request.endsWith("\n")) return;
        socket.end("RC 5 7\nerr\nmsgout");
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const result = await createAgentRunner({ host: "127.0.0.1", port }).run(["lvs", "it's", "a b"], {
      timeoutMs: 1500,
    });
    expect(Buffer.from(request.trim(), "base64").toString()).toBe(`exec timeout -s KILL 2 'lvs' 'it'\\''s' 'a b'`);
    expect(result).toEqual({ code: 5, stderr: "err\nmsg", stdout: "out" });
  });

  it("local: hands `input` to the command as its stdin, byte for byte", async () => {
    const input = Buffer.from([0, 1, 2, 255, 10, 13, 0]);
    const script = "process.stdin.on('data', (d) => process.stdout.write(d.toString('hex')))";
    const result = await createLocalRunner().run([process.execPath, "-e", script], { timeoutMs: 10_000, input });
    expect(result).toEqual({ code: 0, stdout: input.toString("hex"), stderr: "" });
  });

  it("agent: sends `input` after the script line with its byte count", async () => {
    let request = Buffer.alloc(0);
    server = createServer((socket) => {
      socket.on("data", (chunk: Buffer) => {
        request = Buffer.concat([request, chunk]);
      });
      socket.on("end", () => socket.end("RC 0 0\nok"));
    });
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const input = Buffer.from([0, 10, 255, 0]);
    const result = await createAgentRunner({ host: "127.0.0.1", port }).run(["dd", "of=/dev/x"], {
      timeoutMs: 1500,
      input,
    });
    const newline = request.indexOf(10);
    const [script, count] = request.subarray(0, newline).toString().split(" ");
    expect(Buffer.from(script ?? "", "base64").toString()).toBe(`exec timeout -s KILL 2 'dd' 'of=/dev/x'`);
    expect(count).toBe("4");
    expect(request.subarray(newline + 1).equals(input)).toBe(true);
    expect(result.stdout).toBe("ok");
  });

  it("agent: an unreachable guest is a runner error", async () => {
    server = createServer();
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    server.close();
    server = undefined;
    const error = await createAgentRunner({ host: "127.0.0.1", port })
      .run(["true"], { timeoutMs: 1000 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandRunnerError);
    expect((error as Error).message).toMatch(/^cannot reach the LVM guest agent at 127\.0\.0\.1:\d+: /);
  });
});
