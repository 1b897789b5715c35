import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer as createHttp2Server } from "node:http2";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { answersAsCinderblock, describePortHolder, listenersOf } from "./port-holder.js";

// What holds the api's port, read from a fake /proc (the launcher, orphans, strangers) and from
// this process's own listeners in the real one.

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

interface FakeProcess {
  pid: number;
  ppid: number;
  argv: string[];
  /** Socket inodes it holds open. */
  sockets?: number[];
}

/** A /proc with these processes and these listening sockets (port → inode). */
function fakeProc(processes: FakeProcess[], listening: Record<number, number>): string {
  const root = mkdtempSync(join(tmpdir(), "cinderblock-proc-"));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, "net"));
  const rows = Object.entries(listening).map(
    ([port, inode], i) =>
      `   ${i}: 0100007F:${Number(port).toString(16).toUpperCase().padStart(4, "0")} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0`,
  );
  // A connection (state 01) on the same port must not count as a listener.
  rows.push(
    "   9: 0100007F:C383 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 20 4 30 10 -1",
  );
  writeFileSync(join(root, "net", "tcp"), `  sl  local_address rem_address   st ...\n${rows.join("\n")}\n`);
  writeFileSync(join(root, "net", "tcp6"), "  sl  local_address rem_address   st ...\n");
  for (const p of processes) {
    const dir = join(root, String(p.pid));
    mkdirSync(join(dir, "fd"), { recursive: true });
    writeFileSync(join(dir, "cmdline"), `${p.argv.join("\0")}\0`);
    writeFileSync(join(dir, "stat"), `${p.pid} (node (x)) S ${p.ppid} ${p.pid} ${p.pid} 0 -1 4194560`);
    (p.sockets ?? []).forEach((inode, i) => {
      symlinkSync(`socket:[${inode}]`, join(dir, "fd", String(10 + i)));
    });
  }
  return root;
}

const NODE = "/usr/bin/node";
const service = (name: string, root = "/home/me/cinderblock") => [
  NODE,
  "--max-semi-space-size=8",
  `${root}/services/${name}/dist/main.js`,
];
const launcher = [NODE, "/home/me/cinderblock/packages/devstack/dist/main.js"];
const API = { host: "127.0.0.1", port: 50051 };

describe("what holds the api's port", () => {
  it("names the launcher of an `npm start` that is still running", async () => {
    const proc = fakeProc(
      [
        { pid: 100, ppid: 1, argv: launcher },
        { pid: 101, ppid: 100, argv: service("volume") },
        { pid: 103, ppid: 100, argv: service("api"), sockets: [5555] },
      ],
      { 50051: 5555 },
    );
    expect(listenersOf(50051, proc).map((p) => p.pid)).toEqual([103]);
    const message = await describePortHolder(API, proc);
    expect(message).toMatch(/^127\.0\.0\.1:50051 is in use by the api of a Cinderblock that an earlier `npm start`/);
    expect(message).toContain("launcher pid 100");
    expect(message).toContain("`kill 100`");
  });

  it("names the services a lost launcher left behind, with the command that stops them", async () => {
    const proc = fakeProc(
      [
        { pid: 201, ppid: 1, argv: service("volume") },
        { pid: 202, ppid: 1, argv: service("scheduler") },
        { pid: 203, ppid: 1, argv: service("api"), sockets: [7777] },
        // Another checkout's services are not this one's to kill.
        { pid: 301, ppid: 1, argv: service("volume", "/srv/other") },
        { pid: 400, ppid: 1, argv: ["/usr/sbin/sshd"] },
      ],
      { 50051: 7777 },
    );
    const message = await describePortHolder(API, proc);
    expect(message).toContain("a Cinderblock api (pid 203) that no running `npm start` owns");
    expect(message).toContain("`kill 203 201 202`");
  });

  it("names any other process by its pid and command", async () => {
    const proc = fakeProc([{ pid: 500, ppid: 1, argv: ["/usr/bin/envoy", "-c", "x.yaml"], sockets: [8888] }], {
      50051: 8888,
    });
    expect(await describePortHolder(API, proc)).toContain("in use by pid 500 (/usr/bin/envoy -c x.yaml)");
  });

  it("finds this process's own listener in the real /proc", async () => {
    const server = await listening(createServer());
    const port = (server.address() as { port: number }).port;
    expect(listenersOf(port).map((p) => p.pid)).toContain(process.pid);
    expect(await describePortHolder({ host: "127.0.0.1", port })).toContain(`in use by pid ${process.pid}`);
  });
});

describe("answersAsCinderblock", () => {
  it("is true where grpc.health.v1 knows cinderblock.v1.VolumesService, false for other servers", async () => {
    const grpcLike = (grpcStatus: string) =>
      createHttp2Server((req, res) => {
        req.resume();
        req.on("end", () => {
          res.writeHead(200, { "content-type": "application/grpc" });
          res.addTrailers({ "grpc-status": grpcStatus });
          res.end();
        });
      });
    const cinderblock = await listening(grpcLike("0"));
    const other = await listening(grpcLike("5"));
    const plain = await listening(createServer((socket) => socket.end("hello\n")));
    const at = (s: Server | ReturnType<typeof createHttp2Server>) => ({
      host: "127.0.0.1",
      port: (s.address() as { port: number }).port,
    });
    expect(await answersAsCinderblock(at(cinderblock))).toBe(true);
    expect(await answersAsCinderblock(at(other))).toBe(false);
    expect(await answersAsCinderblock(at(plain))).toBe(false);
  });
});

async function listening<S extends Server | ReturnType<typeof createHttp2Server>>(server: S): Promise<S> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => server.close());
  return server;
}
