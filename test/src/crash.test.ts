import { CreateSnapshotRequest, type CreateSnapshotResponse } from "@cinderblock/proto";
import { availableVolume, call, identity, type Stack, startStack, statusOf, uniqueName } from "@cinderblock/testing";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Crashes (SIGKILL) of each service at the worst moment: an accepted request is never lost and
// never left in `creating`.

let stack: Stack;
let db: postgres.Sql;

beforeAll(async () => {
  stack = await startStack();
  db = postgres(stack.database.url, { max: 2, onnotice: () => {} });
});

afterAll(async () => {
  await db?.end();
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
    const volumeId = await availableVolume(stack.volumes, identity(project));
    await stack.volume.kill();
    const id = await snapshot(project, volumeId);
    // The cast waits in JetStream; nothing is lost while the host is down.
    await new Promise((r) => setTimeout(r, 500));
    expect(await statusOf(db, "snapshots", id, "available", 100)).toBe("creating");
    await stack.restart("volume");
    expect(await statusOf(db, "snapshots", id, "available")).toBe("available");
  });

  it("a snapshot accepted while the scheduler is dead completes when it comes back", async () => {
    const project = uniqueName("crash-");
    const volumeId = await availableVolume(stack.volumes, identity(project));
    await stack.scheduler.kill();
    const id = await snapshot(project, volumeId);
    await stack.restart("scheduler");
    expect(await statusOf(db, "snapshots", id, "available")).toBe("available");
  });

  it("a snapshot whose api dies right after accepting it still completes", async () => {
    const project = uniqueName("crash-");
    const volumeId = await availableVolume(stack.volumes, identity(project));
    const id = await snapshot(project, volumeId);
    await stack.api.kill();
    // Whatever the api's relay had not published yet, the scheduler's relay publishes from the outbox.
    expect(await statusOf(db, "snapshots", id, "available")).toBe("available");
    await stack.restart("api");
  });
});
