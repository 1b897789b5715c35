import { readFileSync } from "node:fs";
import { CreateSnapshotRequest, type CreateSnapshotResponse, EventsServiceClient } from "@cinderblock/proto";
import {
  availableVolume,
  call,
  identity,
  type ServiceName,
  type Stack,
  startStack,
  statusOf,
  uniqueName,
} from "@cinderblock/testing";
import { type ClientReadableStream, credentials, type ServiceError, type StatusObject, status } from "@grpc/grpc-js";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { watchHealth } from "./health.js";

// Graceful stops (SIGTERM, as Kubernetes sends) of each service in the middle of a burst of
// CreateSnapshot calls: the service says NOT_SERVING, finishes or hands back what it was doing, exits
// 0, and once it is back every snapshot whose create was accepted ends `available`.

const BURST = 30;

let stack: Stack;
let db: postgres.Sql;

beforeAll(async () => {
  stack = await startStack({ env: { CINDERBLOCK_QUOTA_SNAPSHOTS: "-1" } });
  db = postgres(stack.database.url, { max: 2, onnotice: () => {} });
});

afterAll(async () => {
  await db?.end();
  await stack?.stop();
});

/** The address of a service's gRPC server (the api's public one; the others' health/internal one). */
async function grpcAddress(name: ServiceName): Promise<string> {
  if (name === "api") return stack.address;
  const bound = await stack[name].waitFor("grpc listening");
  return `127.0.0.1:${String(bound.port)}`;
}

describe("graceful stop during a burst of creates", () => {
  for (const name of ["api", "scheduler", "volume"] as const) {
    it(`${name}: NOT_SERVING, exit 0, and every accepted snapshot ends available`, async () => {
      const project = uniqueName("drain-");
      const volumeId = await availableVolume(stack.volumes, identity(project));
      // NOTE: the volume host's gRPC server is mutual TLS only: its health is asked with the api's certificate.
      const { pki } = stack;
      const channel =
        name === "volume"
          ? credentials.createSsl(
              readFileSync(pki.caFile),
              readFileSync(pki.apiClient.keyFile),
              readFileSync(pki.apiClient.certFile),
            )
          : credentials.createInsecure();
      const health = watchHealth(await grpcAddress(name), channel);
      try {
        await health.until("SERVING");
        // SIGTERM as soon as the first create is accepted: the rest of the burst is then in flight
        // at the api, or its casts queued at or running in the scheduler and the volume host.
        let stopped: Promise<number | null> | undefined;
        const outcomes = await Promise.all(
          Array.from({ length: BURST }, (_, i) =>
            call<CreateSnapshotResponse>((done) =>
              stack.snapshots.createSnapshot(
                CreateSnapshotRequest.fromPartial({ volumeId, name: `burst-${i}` }),
                identity(project),
                done,
              ),
            ).then(
              (res) => {
                stopped ??= stack[name].stop();
                return { id: res.snapshot?.id ?? "" };
              },
              (err: ServiceError) => ({ code: err.code, details: err.details }),
            ),
          ),
        );
        expect(await stopped).toBe(0);
        await health.ended;
        const serving = health.seen.indexOf("SERVING");
        expect(health.seen.slice(serving)).toEqual(["SERVING", "NOT_SERVING"]);

        // A create is either accepted or refused before it started (the api no longer listening).
        const refused = outcomes.flatMap((o) => ("code" in o ? [o] : []));
        for (const r of refused) expect(r, r.details).toMatchObject({ code: status.UNAVAILABLE });
        const accepted = outcomes.flatMap((o) => ("id" in o ? [o.id] : []));
        expect(accepted.length).toBeGreaterThan(0);

        await stack.restart(name);
        for (const id of accepted) expect(await statusOf(db, "snapshots", id, "available")).toBe("available");
      } finally {
        health.close();
      }
    });
  }
});

describe("graceful stop with open streams", () => {
  it("api: WatchSnapshot and WatchEvents end with UNAVAILABLE as the drain starts, not after the grace period", async () => {
    const project = uniqueName("drain-streams-");
    const md = identity(project);
    const volumeId = await availableVolume(stack.volumes, md);
    const created = await call<CreateSnapshotResponse>((done) =>
      stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: "watched" }), md, done),
    );
    const id = created.snapshot?.id ?? "";
    expect(await statusOf(db, "snapshots", id, "available")).toBe("available");
    // Back to a status that is not terminal, so that WatchSnapshot stays open.
    await db`update snapshots set status = 'creating' where id = ${id}`;

    const events = new EventsServiceClient(stack.address, credentials.createInsecure());
    try {
      const opened = (stream: ClientReadableStream<unknown>) => {
        stream.on("error", () => {});
        return {
          first: new Promise((resolve) => stream.once("data", resolve)),
          ended: new Promise<StatusObject>((resolve) => stream.on("status", resolve)),
        };
      };
      const snapshot = opened(stack.snapshots.watchSnapshot({ id }, md));
      const event = opened(
        events.watchEvents({ resourceId: "", eventTypes: [], allProjects: false, startSequence: 0 }, md),
      );
      await snapshot.first;
      await new Promise((resolve) => setTimeout(resolve, 200)); // the event subscription is live

      const started = Date.now();
      const exited = stack.api.stop();
      for (const stream of [snapshot, event]) {
        expect(await stream.ended).toMatchObject({ code: status.UNAVAILABLE, details: "server shutting down" });
      }
      expect(await exited).toBe(0);
      // The grace period is 20 s; with the streams ended nothing holds the drain.
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      events.close();
      await stack.restart("api");
    }
  });
});
