import type { Db } from "@cinderblock/db";
import { CreateVolumeRequest, type CreateVolumeResponse } from "@cinderblock/proto";
import type { Stack } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { call, identity } from "./grpc.js";

/**
 * Waits until a row has status `want`, reading the database (the truth), not the api, which may be
 * down or stopping. Returns the status it saw last (`want`, or what it was at the timeout).
 */
export async function statusOf(
  db: Db,
  table: "snapshots" | "volumes",
  id: string,
  want: string,
  timeoutMs = 45_000,
): Promise<string> {
  const end = Date.now() + timeoutMs;
  let current = "";
  while (Date.now() < end) {
    const [row] = await db.execute<{ status: string }>(
      table === "snapshots"
        ? sql`select status from snapshots where id = ${id}`
        : sql`select status from volumes where id = ${id}`,
    );
    current = row?.status ?? "";
    if (current === want) return current;
    await new Promise((r) => setTimeout(r, 50));
  }
  return current;
}

/** Creates a 1 GiB volume in `project` and waits until it is available; returns its id. */
export async function availableVolume(stack: Stack, db: Db, project: string): Promise<string> {
  const { volume } = await call<CreateVolumeResponse>((done) =>
    stack.volumes.createVolume(CreateVolumeRequest.fromPartial({ name: "v", sizeGb: 1 }), identity(project), done),
  );
  const id = volume?.id ?? "";
  const status = await statusOf(db, "volumes", id, "available");
  if (status !== "available") throw new Error(`volume ${id} is ${status}, not available`);
  return id;
}
