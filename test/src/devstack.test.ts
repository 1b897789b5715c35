import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runMigrations } from "@cinderblock/db";
import { createTestDatabase, REPO_ROOT, TEST_NATS_URL, type TestDatabase, uniqueName } from "@cinderblock/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

// The `npm start` launcher (packages/devstack) as a process, on the test PostgreSQL and NATS: a
// closed terminal (SIGHUP) stops the services with it, and a second launcher on a port that is
// held says what holds it and how to stop that.

const LAUNCHER = join(REPO_ROOT, "packages", "devstack", "dist", "main.js");
const SERVICES = ["api", "scheduler", "volume"] as const;

let database: TestDatabase;
let fileDir: string;
/** Launcher and service pids to SIGKILL after each test, whatever happened. */
const leftovers = new Set<number>();

beforeAll(async () => {
  database = await createTestDatabase(runMigrations);
  fileDir = await mkdtemp(join(tmpdir(), "cinderblock-devstack-"));
});

afterEach(() => {
  for (const pid of leftovers) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  leftovers.clear();
});

afterAll(async () => {
  await database?.drop();
  if (fileDir) await rm(fileDir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Launcher {
  child: ChildProcess;
  output: string[];
  exited: Promise<number | null>;
  /** Each service's pid, from its first log line. */
  pids: Partial<Record<(typeof SERVICES)[number], number>>;
  /** Resolves once a line of output matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

function launch(apiListen: string): Launcher {
  const child = spawn(process.execPath, [LAUNCHER], {
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      NATS_URL: TEST_NATS_URL,
      CINDERBLOCK_NATS_PREFIX: uniqueName("cbdev"),
      CINDERBLOCK_API_LISTEN: apiListen,
      CINDERBLOCK_REST_LISTEN: "127.0.0.1:0",
      CINDERBLOCK_METRICS_LISTEN: "",
      CINDERBLOCK_FILE_DIR: fileDir,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (child.pid) leftovers.add(child.pid);
  const output: string[] = [];
  const pids: Launcher["pids"] = {};
  const waiters: Array<() => void> = [];
  const onLine = (line: string) => {
    output.push(line);
    const match = /^(api|scheduler|volume)\s*\| (\{.*)$/.exec(line);
    if (match?.[1] && match[2] && pids[match[1] as keyof typeof pids] === undefined) {
      try {
        const pid = (JSON.parse(match[2]) as { pid?: number }).pid;
        if (pid) {
          pids[match[1] as keyof typeof pids] = pid;
          leftovers.add(pid);
        }
      } catch {
        // Not a log line.
      }
    }
    for (const w of waiters.splice(0)) w();
  };
  for (const stream of [child.stdout, child.stderr]) {
    let buffer = "";
    stream?.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    });
  }
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return {
    child,
    output,
    exited,
    pids,
    async waitFor(pattern, timeoutMs = 45_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const line = output.find((l) => pattern.test(l));
        if (line) return line;
        if (Date.now() > end || child.exitCode !== null) {
          throw new Error(`no line matching ${pattern} in:\n${output.slice(-30).join("\n")}`);
        }
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
  };
}

async function running(apiListen: string): Promise<Launcher> {
  const launcher = launch(apiListen);
  await launcher.waitFor(/Cinderblock is running/);
  // npm start runs without authentication, and says so plainly.
  await launcher.waitFor(/Identity {4}noauth: NO AUTHENTICATION/);
  // The Cinder v3 REST listener is on, at the port it bound (here a free one).
  await launcher.waitFor(/Cinder API {2}http:\/\/127\.0\.0\.1:[1-9]\d*\/v3 /);
  // The banner waits for the api only: the others' first log lines may come a little later.
  for (const name of SERVICES) await launcher.waitFor(new RegExp(`^${name}\\s*\\| \\{`));
  for (const name of SERVICES) expect(launcher.pids[name], `${name} pid`).toBeGreaterThan(0);
  return launcher;
}

describe("npm start's launcher", { timeout: 120_000 }, () => {
  it("stops the services when its terminal closes (SIGHUP), and says who holds the port meanwhile", async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const first = await running(address);

    // A second launcher on the same port names the first one.
    const second = launch(address);
    expect(await second.exited).toBe(1);
    expect(second.output.join("\n")).toContain(`launcher pid ${first.child.pid}`);

    first.child.kill("SIGHUP");
    expect(await first.exited).toBe(0);
    for (const name of SERVICES) expect(alive(first.pids[name] ?? 0), `${name} still running`).toBe(false);
  });

  it("names the services a killed launcher left behind, with the command that stops them", async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const lost = await running(address);
    lost.child.kill("SIGKILL");
    await lost.exited;

    const next = launch(address);
    expect(await next.exited).toBe(1);
    const message = next.output.join("\n");
    expect(message).toContain(`a Cinderblock api (pid ${lost.pids.api}) that no running \`npm start\` owns`);
    const kill = /`kill ([\d ]+)`/.exec(message)?.[1]?.split(" ").map(Number);
    expect(kill?.sort()).toEqual(SERVICES.map((name) => lost.pids[name]).sort());

    // The hint works: SIGTERM, and they drain and exit.
    for (const pid of kill ?? []) process.kill(pid, "SIGTERM");
    const end = Date.now() + 30_000;
    while (kill?.some(alive) && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(kill?.filter(alive)).toEqual([]);
  });
});
