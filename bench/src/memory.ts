/**
 * The memory bound (issue 14): api, scheduler and a file-backed volume host on the real PostgreSQL
 * and NATS; 200 paused WatchEvents streams (they read nothing) and 200 idle WatchSnapshot watches
 * open during a burst of CreateSnapshot calls. Prints (never asserts):
 *   - the database's transaction rate (pg_stat_database xact_commit) with 0 and with 200 idle watches;
 *   - the api's RSS before the streams, with them open, and after the burst;
 *   - what the api held for the paused readers (cinderblock_stream_buffered_bytes and its peak) and
 *     how many it ended with RESOURCE_EXHAUSTED.
 * Usage: node bench/dist/memory.js [--streams N] [--watches N] [--creates N] [--buffer-bytes B]
 */
import {
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  EventsServiceClient,
  ResetSnapshotStatusRequest,
  SnapshotStatus,
  SnapshotsServiceClient,
} from "@cinderblock/proto";
import { availableVolumes, call, NO_RATE_LIMITS, type Stack, startStack } from "@cinderblock/testing";
import { type ClientReadableStream, credentials } from "@grpc/grpc-js";
import postgres from "postgres";
import { callerMetadata, rssMiB, table, trackCompletions } from "./lib.js";

interface Options {
  streams: number;
  watches: number;
  creates: number;
  bufferBytes: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { streams: 200, watches: 200, creates: 1000, bufferBytes: 256 * 1024 };
  const names: Record<string, keyof Options> = {
    "--streams": "streams",
    "--watches": "watches",
    "--creates": "creates",
    "--buffer-bytes": "bufferBytes",
  };
  for (let i = 0; i < argv.length; i++) {
    const key = names[argv[i] ?? ""];
    const value = Number(argv[++i]);
    if (!key || !Number.isInteger(value) || value < 0) {
      throw new Error(`usage: [--streams N] [--watches N] [--creates N] [--buffer-bytes B] (at ${argv[i - 1]})`);
    }
    options[key] = value;
  }
  return options;
}

/** Calls per client connection stay under grpc.max_concurrent_streams (100 by default). */
const STREAMS_PER_CONNECTION = 50;

/** Options making a client's own connection (grpc-js shares a connection only between equal options). */
function ownConnection(n: number): Record<string, number> {
  return { "cinderblock.bench.connection": n };
}

async function apiMetric(stack: Stack, name: string): Promise<number> {
  const text = await (await fetch(`http://${await stack.metricsAddress("api")}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1] ?? Number.NaN);
}

/** Transactions committed in the stack's database per second, over `seconds`. */
async function xactRate(db: postgres.Sql, name: string, seconds: number): Promise<number> {
  const read = async () => {
    const [row] = await db<{ n: string }[]>`select xact_commit as n from pg_stat_database where datname = ${name}`;
    return Number(row?.n ?? 0);
  };
  // NOTE: backends flush their statistics within about a second of going idle.
  await new Promise((r) => setTimeout(r, 1500));
  const before = await read();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return ((await read()) - before) / seconds;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const stack = await startStack({
    env: {
      CINDERBLOCK_QUOTA_VOLUMES: "-1",
      CINDERBLOCK_QUOTA_SNAPSHOTS: "-1",
      CINDERBLOCK_QUOTA_GIGABYTES: "-1",
      CINDERBLOCK_MAX_STREAMS_PER_PROJECT: String(options.streams + options.watches + 10),
      CINDERBLOCK_MAX_STREAMS: String(options.streams + options.watches + 10),
      CINDERBLOCK_STREAM_BUFFER_BYTES: String(options.bufferBytes),
      // It measures what streams cost, not the per-project rate limits (a 1000-create burst passes them).
      ...NO_RATE_LIMITS,
    },
  });
  const db = postgres(stack.database.url, { max: 1, onnotice: () => {} });
  const dbName = new URL(stack.database.url).pathname.slice(1);
  const md = callerMetadata("bench-memory");
  const admin = callerMetadata("bench-memory", true);
  const apiPid = stack.api.child.pid;
  const opened: ClientReadableStream<unknown>[] = [];
  const clients: { close(): void }[] = [];
  const tracker = trackCompletions(stack.nc, stack.prefix);
  try {
    const volumeIds = await availableVolumes(stack.volumes, md, 8, "mem");
    // Snapshots an admin put back to `creating`: nothing moves them, so a watch on one stays idle.
    const watched: string[] = [];
    for (const volumeId of volumeIds.slice(0, 4)) {
      const created = await call<CreateSnapshotResponse>((done) =>
        stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: "watched" }), md, done),
      );
      const id = created.snapshot?.id ?? "";
      await tracker.wait(id);
      await call((done) =>
        stack.snapshots.resetSnapshotStatus(
          ResetSnapshotStatusRequest.fromPartial({ id, status: SnapshotStatus.SNAPSHOT_STATUS_CREATING }),
          admin,
          done,
        ),
      );
      watched.push(id);
    }
    console.error("memory: measuring the idle transaction rate with no watch");
    const rssBefore = await rssMiB(apiPid);
    const rateNone = await xactRate(db, dbName, 10);

    console.error(`memory: ${options.watches} idle watches`);
    for (let i = 0; i < options.watches; i++) {
      const connection = Math.floor(i / STREAMS_PER_CONNECTION);
      if (i % STREAMS_PER_CONNECTION === 0) {
        clients.push(
          new SnapshotsServiceClient(stack.address, credentials.createInsecure(), ownConnection(connection)),
        );
      }
      const snapshots = clients.at(-1) as SnapshotsServiceClient;
      const watch = snapshots.watchSnapshot({ id: watched[i % watched.length] ?? "" }, md);
      watch.on("error", () => {});
      opened.push(watch);
      await new Promise((resolve) => watch.once("data", resolve));
    }
    const rateWatched = await xactRate(db, dbName, 10);

    console.error(`memory: ${options.streams} paused event streams`);
    for (let i = 0; i < options.streams; i++) {
      const connection = 1000 + Math.floor(i / STREAMS_PER_CONNECTION);
      if (i % STREAMS_PER_CONNECTION === 0) {
        clients.push(new EventsServiceClient(stack.address, credentials.createInsecure(), ownConnection(connection)));
      }
      const events = clients.at(-1) as EventsServiceClient;
      const stream = events.watchEvents({ resourceId: "", eventTypes: [], allProjects: false, startSequence: 0 }, md);
      stream.on("error", () => {});
      // Reads nothing: grpc-js takes 16 messages, then HTTP/2 flow control holds the api's writes.
      stream.pause();
      stream.read(0);
      opened.push(stream);
    }
    await new Promise((r) => setTimeout(r, 2000));
    const rssOpen = await rssMiB(apiPid);

    console.error(`memory: a burst of ${options.creates} creates`);
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < options.creates) {
          const volumeId = volumeIds[next++ % volumeIds.length] ?? "";
          const res = await call<CreateSnapshotResponse>((done) =>
            stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: "burst" }), md, done),
          );
          await tracker.wait(res.snapshot?.id ?? "");
        }
      }),
    );
    const burstSeconds = (performance.now() - started) / 1000;
    const rssAfter = await rssMiB(apiPid);
    const held = await apiMetric(stack, "cinderblock_stream_buffered_bytes");
    const peak = await apiMetric(stack, "cinderblock_stream_buffered_bytes_peak");
    const overflows = await apiMetric(stack, "cinderblock_stream_overflows_total");
    const rateAfter = await xactRate(db, dbName, 10);

    const mib = (n: number) => (n / 1024 / 1024).toFixed(2);
    console.log(
      table([
        ["figure", "value"],
        ["db transactions/s, idle, 0 watches", rateNone.toFixed(1)],
        [`db transactions/s, idle, ${options.watches} watches`, rateWatched.toFixed(1)],
        [`db transactions/s, idle, after the burst (all streams open)`, rateAfter.toFixed(1)],
        ["api RSS MiB before the streams", rssBefore.toFixed(1)],
        [`api RSS MiB with ${options.watches} watches + ${options.streams} paused streams`, rssOpen.toFixed(1)],
        [`api RSS MiB after ${options.creates} creates (${burstSeconds.toFixed(1)} s)`, rssAfter.toFixed(1)],
        ["bytes held for readers now (MiB)", mib(held)],
        [`most one stream held (MiB; bound ${mib(options.bufferBytes)})`, mib(peak)],
        ["paused streams ended RESOURCE_EXHAUSTED", String(overflows)],
        [`worst case held: streams × bound (MiB)`, mib(options.streams * options.bufferBytes)],
      ]),
    );
  } finally {
    for (const s of opened) s.cancel();
    for (const c of clients) c.close();
    tracker.close();
    await db.end();
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
