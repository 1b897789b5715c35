/**
 * How fast a backlog drains (issue 6's "a backlog of 20,000 queued operations"): with the scheduler
 * stopped, 64 callers queue `count` CreateSnapshot requests (each accepted, committed and relayed
 * onto JetStream); then the scheduler starts and the drain is timed until the last
 * `snapshot.create.end`. The volume host keeps running: stopped, its heartbeat would go stale and
 * the scheduler would rightly fail every create with "backend down".
 *
 * Usage (after a build; alone on the machine): node bench/dist/backlog.js [count=20000]
 */

import { CreateSnapshotRequest, QuotasServiceClient } from "@cinderblock/proto";
import { availableVolumes, call, NO_RATE_LIMITS, startStack } from "@cinderblock/testing";
import { credentials } from "@grpc/grpc-js";
import { jetstreamManager } from "@nats-io/jetstream";
import postgres from "postgres";
import { callerMetadata, closedLoop, round, trackCompletions } from "./lib.js";

const CALLERS = 64;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 900_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 20_000);
  if (!Number.isInteger(count) || count < 1) throw new Error("count: must be a positive integer");
  const stack = await startStack({ env: { CINDERBLOCK_QUOTA_VOLUMES: "1000", ...NO_RATE_LIMITS } });
  const sql = postgres(stack.database.url, { max: 1 });
  const quotas = new QuotasServiceClient(stack.address, credentials.createInsecure());
  const md = callerMetadata("backlog");
  try {
    await call((done) =>
      quotas.updateQuotas(
        { projectId: "backlog", limits: { snapshots: 10_000_000, gigabytes: 100_000_000, volumes: 1_000 } },
        callerMetadata("backlog", true),
        done,
      ),
    );
    const volumes = await availableVolumes(stack.volumes, md, CALLERS, "bench");
    // The scheduler's consumer exists (it made it at start), so the casts queue in JetStream.
    await stack.scheduler.stop();
    const tracker = trackCompletions(stack.nc, stack.prefix, 900_000);
    const ids: string[] = [];
    const queued = await closedLoop(CALLERS, count, async (worker, seq) => {
      const t0 = performance.now();
      const res = await call<{ snapshot?: { id: string } }>((done) =>
        stack.snapshots.createSnapshot(
          CreateSnapshotRequest.fromPartial({ volumeId: volumes[worker], name: `backlog-${seq}` }),
          md,
          done,
        ),
      );
      ids.push(res.snapshot?.id ?? "");
      return performance.now() - t0;
    });
    await until("the outbox to empty", async () => (await sql`select count(*)::int as n from outbox`)[0]?.n === 0);
    const jsm = await jetstreamManager(stack.nc);
    const stream = `${stack.prefix.toUpperCase().replace(/-/g, "_")}_CASTS`;
    const pending = async (durable: string) => (await jsm.consumers.info(stream, durable)).num_pending;
    const queuedAtScheduler = await pending("scheduler");

    const start = performance.now();
    await stack.restart("scheduler");
    const ready = performance.now();
    const completions = await Promise.all(ids.map((id) => tracker.wait(id)));
    const last = Math.max(...completions.map((c) => c.at));
    const failed = completions.filter((c) => !c.ok).length;
    const [available] = await sql`select count(*)::int as n from snapshots where status = 'available'`;

    const rate = (n: number, ms: number) => round(n / (ms / 1000), 0);
    console.log(`backlog of ${count} CreateSnapshot (64 callers; queued at ${rate(count, queued.seconds * 1000)}/s)`);
    console.log(`queued in the scheduler's consumer when it started: ${queuedAtScheduler}`);
    console.log(
      `drained: last snapshot available ${round((last - start) / 1000, 1)} s after the scheduler's restart: ${rate(count, last - start)}/s (restart included; it was ready after ${round(ready - start, 0)} ms)`,
    );
    console.log(`failed: ${failed}; available in the database: ${available?.n ?? 0} of ${count}`);
  } finally {
    quotas.close();
    await sql.end();
    await stack.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
