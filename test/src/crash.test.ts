import { createDb, type DbHandle } from "@cinderblock/db";
import { CreateSnapshotRequest, type CreateSnapshotResponse } from "@cinderblock/proto";
import { type Stack, startStack, uniqueName } from "@cinderblock/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, identity } from "./grpc.js";
import { availableVolume, statusOf } from "./waits.js";

// Crashes (SIGKILL) of each service at the worst moment: an accepted request is never lost and
// never left in `creating`.

let stack: Stack;
let db: DbHandle;

beforeAll(async () => {
  stack = await startStack();
  db = createDb({ url: stack.database.url, max: 2 });
});

afterAll(async () => {
  await db?.close();
  await stack?.stop();
});

async function snapshot(project: string, volumeId: string): Promise<string> {
  const { snapshot } = await call<CreateSnapshotResponse>((done) =>
    stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId, name: "s" }), identity(project), done),
  );
  return snapshot?.id ?? "";
}

describe("crashes lose nothing", () => {
  it("a snapshot accepted while the volume host is dead completes when it comes back", async () => {
    const project = uniqueName("crash-");
    const volumeId = await availableVolume(stack, db.db, project);
    await stack.volume.kill();
    const id = await snapshot(project, volumeId);
    // The cast waits in JetStream; nothing is lost while the host is down.
    await new Promise((r) => setTimeout(r, 500));
    expect(await statusOf(db.db, "snapshots", id, "available", 100)).toBe("creating");
    await stack.restart("volume");
    expect(await statusOf(db.db, "snapshots", id, "available")).toBe("available");
  });

  it("a snapshot accepted while the scheduler is dead completes when it comes back", async () => {
    const project = uniqueName("crash-");
    const volumeId = await availableVolume(stack, db.db, project);
    await stack.scheduler.kill();
    const id = await snapshot(project, volumeId);
    await stack.restart("scheduler");
    expect(await statusOf(db.db, "snapshots", id, "available")).toBe("available");
  });

  it("a snapshot whose api dies right after accepting it still completes", async () => {
    const project = uniqueName("crash-");
    const volumeId = await availableVolume(stack, db.db, project);
    const id = await snapshot(project, volumeId);
    await stack.api.kill();
    // Whatever the api's relay had not published yet, the scheduler's relay publishes from the outbox.
    expect(await statusOf(db.db, "snapshots", id, "available")).toBe("available");
    await stack.restart("api");
  });
});
