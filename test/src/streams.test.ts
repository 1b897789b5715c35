import {
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  EventsServiceClient,
  type GetSnapshotResponse,
  ResetSnapshotStatusRequest,
  SnapshotStatus,
  UpdateVolumeRequest,
  type WatchEventsRequest,
  type WatchEventsResponse,
  type WatchSnapshotResponse,
} from "@cinderblock/proto";
import {
  availableVolume,
  call,
  identity,
  notificationsStreamName,
  type Stack,
  settle,
  startStack,
  uniqueName,
} from "@cinderblock/testing";
import { type ClientReadableStream, credentials, type Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Issue 14, bounded streams: a WatchEvents reader that falls behind is ended with RESOURCE_EXHAUSTED
// (the api holds at most the configured bytes for it) and resumes from the sequence it was given;
// idle WatchSnapshot streams cost no query; the per-project stream cap refuses the next stream.

const BUFFER_BYTES = 16 * 1024;
const PER_PROJECT = 60;

let stack: Stack;
let events: EventsServiceClient;

beforeAll(async () => {
  stack = await startStack({
    env: {
      CINDERBLOCK_QUOTA_SNAPSHOTS: "-1",
      CINDERBLOCK_STREAM_BUFFER_BYTES: String(BUFFER_BYTES),
      CINDERBLOCK_MAX_STREAMS_PER_PROJECT: String(PER_PROJECT),
      // Nothing but the watches under test reads snapshot rows while they idle.
      CINDERBLOCK_RECONCILE_INTERVAL: "3600",
      CINDERBLOCK_NOTIFICATIONS_MAX_AGE: "3600",
      CINDERBLOCK_NOTIFICATIONS_MAX_BYTES: String(64 * 1024 * 1024),
    },
  });
  events = new EventsServiceClient(stack.address, credentials.createInsecure());
});

afterAll(async () => {
  events?.close();
  await stack?.stop();
});

/** The api's metric `name` (a plain, unlabelled sample). */
async function apiMetric(name: string): Promise<number> {
  const text = await (await fetch(`http://${await stack.metricsAddress("api")}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1] ?? Number.NaN);
}

/** The sequence the next notification will get. */
async function nextSequence(): Promise<number> {
  const jsm = await jetstreamManager(stack.nc);
  return (await jsm.streams.info(notificationsStreamName(stack.prefix))).state.last_seq + 1;
}

function watchEvents(md: Metadata, request: Partial<WatchEventsRequest>) {
  return events.watchEvents({ resourceId: "", eventTypes: [], allProjects: false, startSequence: 0, ...request }, md);
}

/** Reads a stream into `got` until it ends; resolves with its error (undefined when it ended OK). */
function drain<T>(stream: ClientReadableStream<T>, got: T[]): Promise<ServiceError | undefined> {
  return new Promise((resolve) => {
    stream.on("data", (m: T) => got.push(m));
    stream.on("error", (e: ServiceError) => resolve(e));
    stream.on("end", () => resolve(undefined));
  });
}

/** Resolves with the stream's first message (the stream then stays open, idle). */
function firstMessage<T>(stream: ClientReadableStream<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    stream.once("data", resolve);
    stream.once("error", reject);
  });
}

async function renameVolume(md: Metadata, id: string, name: string): Promise<void> {
  await call((done) => stack.volumes.updateVolume(UpdateVolumeRequest.fromPartial({ id, name }), md, done));
}

describe("WatchEvents: a reader that falls behind", () => {
  it("is ended with RESOURCE_EXHAUSTED, the api holding no more than the bound, and resumes from the sequence given", async () => {
    const project = uniqueName("slow-");
    const md = identity(project);
    const volumeId = await availableVolume(stack.volumes, md);
    const eventTypes = ["volume.update.start", "volume.update.end"];
    const start = await nextSequence();

    // A client that reads nothing: grpc-js fills its own 16-message buffer and stops taking data,
    // HTTP/2 flow control then holds the api's writes, and what comes next piles up in the api's
    // buffer for this stream. (read(0) starts grpc-js reading; a stream never read at all would
    // make grpc-js buffer everything in the client instead.)
    const paused = watchEvents(md, { eventTypes, startSequence: start });
    paused.pause();
    paused.read(0);
    const overflowsBefore = await apiMetric("cinderblock_stream_overflows_total");
    let updates = 0;
    while (updates < 1000 && (await apiMetric("cinderblock_stream_overflows_total")) === overflowsBefore) {
      for (let i = 0; i < 10; i++) await renameVolume(md, volumeId, `n-${updates++}`);
    }
    expect(await apiMetric("cinderblock_stream_overflows_total")).toBe(overflowsBefore + 1);
    // Held bytes: never above the bound, all given back once the stream ended.
    const peak = await apiMetric("cinderblock_stream_buffered_bytes_peak");
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(BUFFER_BYTES);
    expect(await apiMetric("cinderblock_stream_buffered_bytes")).toBe(0);

    // The client reads again: what was sent before the end, then the status naming where to resume.
    const first: WatchEventsResponse[] = [];
    const ended = drain(paused, first);
    paused.resume();
    const error = await ended;
    expect(error?.code, error?.details).toBe(status.RESOURCE_EXHAUSTED);
    expect(error?.details).toMatch(/CINDERBLOCK_STREAM_BUFFER/);
    const named = Number(/start_sequence (\d+)/.exec(error?.details ?? "")?.[1]);
    expect(named).toBeGreaterThan(start);
    for (const m of first) expect(m.sequence).toBeLessThan(named);
    // NOTE: grpc-js drops the messages it had received but not yet handed over when an error
    // status arrives, so a client resumes after the last event it got, or from the one named.
    const last = first.at(-1)?.sequence;
    const resumeFrom = last === undefined ? start : Math.min(named, last + 1);

    // Resuming gives every event the first stream did not, once each, in order.
    const total = updates * 2;
    const resumed: WatchEventsResponse[] = [];
    const again = watchEvents(md, { eventTypes, startSequence: resumeFrom });
    const againEnded = drain(again, resumed);
    await settle(
      async () => first.length + resumed.length,
      (n) => n >= total,
    );
    again.cancel();
    expect((await againEnded)?.code).toBe(status.CANCELLED);
    expect(resumed[0]?.sequence).toBeGreaterThanOrEqual(resumeFrom);
    const sequences = [...first, ...resumed].map((m) => m.sequence);
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
    expect(new Set(sequences).size).toBe(total);
    expect([...first, ...resumed].every((m) => m.event?.payload?.tenant_id === project)).toBe(true);
    console.log(
      `paused stream: ended after ${updates * 2} events, peak ${peak} B held (bound ${BUFFER_BYTES}); ` +
        `${first.length} read before the end, ${resumed.length} after resuming from ${resumeFrom} (named ${named})`,
    );
  });

  it("refuses a start sequence past the next event with INVALID_ARGUMENT naming the field", async () => {
    const error = await drain(
      watchEvents(identity(uniqueName("p-")), { startSequence: (await nextSequence()) + 5 }),
      [],
    );
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toMatch(/^start_sequence: /);
  });
});

/** Statements on the snapshots table the api has sent (its db layer counts every statement). */
async function snapshotStatements(): Promise<number> {
  const text = await (await fetch(`http://${await stack.metricsAddress("api")}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith('cinderblock_db_statements_total{table="snapshots"}'));
  return Number(line?.split(" ")[1] ?? 0);
}

/** The api's statements on snapshots over `ms` of idling. */
async function statementsDuring(ms: number): Promise<number> {
  const before = await snapshotStatements();
  await new Promise((r) => setTimeout(r, ms));
  return (await snapshotStatements()) - before;
}

/** A snapshot of the project, reset by an admin to `creating`: a WatchSnapshot on it stays open. */
async function stuckSnapshot(project: string): Promise<string> {
  const md = identity(project);
  const volumeId = await availableVolume(stack.volumes, md);
  const created = await call<CreateSnapshotResponse>((done) =>
    stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: "s" }), md, done),
  );
  const id = created.snapshot?.id ?? "";
  await settle(
    () => call<GetSnapshotResponse>((done) => stack.snapshots.getSnapshot({ id }, md, done)),
    (r) => r.snapshot?.status === SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE,
  );
  await call((done) =>
    stack.snapshots.resetSnapshotStatus(
      ResetSnapshotStatusRequest.fromPartial({ id, status: SnapshotStatus.SNAPSHOT_STATUS_CREATING }),
      identity(project, "admin-user", "admin"),
      done,
    ),
  );
  return id;
}

describe("WatchSnapshot", () => {
  it("50 idle watches cost no query: the api sends no more statements on snapshots than with none", async () => {
    const project = uniqueName("idle-");
    const md = identity(project);
    const id = await stuckSnapshot(project);
    const withNone = await statementsDuring(4000);
    const watches = Array.from({ length: 50 }, () => stack.snapshots.watchSnapshot({ id }, md));
    try {
      const first = await Promise.all(watches.map((w) => firstMessage<WatchSnapshotResponse>(w)));
      expect(first.every((m) => m.snapshot?.status === SnapshotStatus.SNAPSHOT_STATUS_CREATING)).toBe(true);
      const withFifty = await statementsDuring(4000);
      console.log(`statements on snapshots in 4 s: ${withNone} with no watch, ${withFifty} with 50 idle watches`);
      expect(withFifty).toBeLessThanOrEqual(withNone);

      // A change still reaches every watcher (one read each), with no polling behind it.
      const next = watches.map((w) => firstMessage<WatchSnapshotResponse>(w));
      const beforeChange = await snapshotStatements();
      await call((done) =>
        stack.snapshots.resetSnapshotStatus(
          ResetSnapshotStatusRequest.fromPartial({ id, status: SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE }),
          identity(project, "admin-user", "admin"),
          done,
        ),
      );
      const changed = await Promise.all(next);
      expect(changed.every((m) => m.snapshot?.status === SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE)).toBe(true);
      // The counter does see the watches' reads: one per watch for the change.
      expect((await snapshotStatements()) - beforeChange).toBeGreaterThanOrEqual(50);
    } finally {
      for (const w of watches) w.cancel();
    }
  });
});

describe("notifications stream", () => {
  it("keeps what the api's retention settings say (age and bytes, the oldest dropped first)", async () => {
    const jsm = await jetstreamManager(stack.nc);
    const { config } = await jsm.streams.info(notificationsStreamName(stack.prefix));
    expect(config.max_age).toBe(3600 * 1e9);
    expect(config.max_bytes).toBe(64 * 1024 * 1024);
    expect(config.discard).toBe("old");
  });
});

describe("stream caps", () => {
  it(`refuses a project's stream number ${PER_PROJECT + 1} with RESOURCE_EXHAUSTED naming the limit, not another project's`, async () => {
    const project = uniqueName("cap-");
    const md = identity(project);
    const id = await stuckSnapshot(project);
    const open = Array.from({ length: PER_PROJECT }, () => stack.snapshots.watchSnapshot({ id }, md));
    try {
      await Promise.all(open.map((w) => firstMessage(w)));
      const refused = await drain(watchEvents(md, {}), []);
      expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(refused?.details).toMatch(/CINDERBLOCK_MAX_STREAMS_PER_PROJECT/);
      expect(refused?.details).toContain(String(PER_PROJECT));

      // Another project is not held back by this one's streams.
      const other = watchEvents(identity(uniqueName("cap-other-")), {});
      const otherEnded = drain(other, []);
      // Ending one of the project's streams gives its slot back.
      open.pop()?.cancel();
      const again = await settle(
        async () => {
          const s = stack.snapshots.watchSnapshot({ id }, md);
          const outcome = await firstMessage(s).then(
            () => "open",
            (e: ServiceError) => e.code,
          );
          if (outcome === "open") open.push(s);
          return outcome;
        },
        (o) => o === "open",
      );
      expect(again).toBe("open");
      other.cancel();
      expect((await otherEnded)?.code).toBe(status.CANCELLED);
    } finally {
      for (const w of open) w.cancel();
    }
  });
});
