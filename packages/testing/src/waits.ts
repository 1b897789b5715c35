import { CreateVolumeRequest, type Volume, VolumeStatus, type VolumesServiceClient } from "@cinderblock/proto";
import type { Metadata } from "@grpc/grpc-js";
import type postgres from "postgres";
import { call } from "./grpc.js";

/** Options for {@link settle}. */
export interface SettleOptions {
  /** How long to keep reading (default 20 s). */
  timeoutMs?: number;
  /** Pause between reads (default 50 ms). */
  intervalMs?: number;
}

/**
 * Reads `read` until `done` holds for its value or the time is up, and returns the last value
 * read either way: the caller asserts on it, so a timeout fails with what was actually seen.
 */
export async function settle<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  options: SettleOptions = {},
): Promise<T> {
  const end = Date.now() + (options.timeoutMs ?? 20_000);
  let value = await read();
  while (!done(value) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
    value = await read();
  }
  return value;
}

/** The volume once it has left `creating` (available, or error with its reason), through GetVolume. */
export async function settledVolume(
  volumes: VolumesServiceClient,
  md: Metadata,
  id: string,
  options: SettleOptions = {},
): Promise<Volume> {
  const get = () => call<{ volume?: Volume }>((done) => volumes.getVolume({ id }, md, done)).then((r) => r.volume);
  const volume = await settle(get, (v) => v !== undefined && v.status !== VolumeStatus.VOLUME_STATUS_CREATING, {
    timeoutMs: 30_000,
    ...options,
  });
  if (!volume || volume.status === VolumeStatus.VOLUME_STATUS_CREATING) throw new Error(`volume ${id} stayed creating`);
  return volume;
}

/** Creates a volume (1 GiB named "v" unless `request` says otherwise) and returns it once settled. */
export async function createSettledVolume(
  volumes: VolumesServiceClient,
  md: Metadata,
  request: Partial<CreateVolumeRequest> = {},
  options: SettleOptions = {},
): Promise<Volume> {
  const created = await call<{ volume?: Volume }>((done) =>
    volumes.createVolume(CreateVolumeRequest.fromPartial({ name: "v", sizeGb: 1, ...request }), md, done),
  );
  return settledVolume(volumes, md, created.volume?.id ?? "", options);
}

/**
 * Creates `count` volumes (named `<name>-<i>`), then waits until every one is available; throws
 * naming the first that is not. Returns their ids in creation order.
 */
export async function availableVolumes(
  volumes: VolumesServiceClient,
  md: Metadata,
  count: number,
  name = "v",
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const created = await call<{ volume?: Volume }>((done) =>
      volumes.createVolume(CreateVolumeRequest.fromPartial({ name: `${name}-${i}`, sizeGb: 1 }), md, done),
    );
    ids.push(created.volume?.id ?? "");
  }
  for (const id of ids) {
    const volume = await settledVolume(volumes, md, id, { timeoutMs: 120_000, intervalMs: 20 });
    if (volume.status !== VolumeStatus.VOLUME_STATUS_AVAILABLE)
      throw new Error(`volume ${id}: ${VolumeStatus[volume.status]} (${volume.statusReason})`);
  }
  return ids;
}

/**
 * Waits until a snapshot's or volume's row has status `want`, reading the database (the truth),
 * not the api, which may be down or stopping. Returns the status it saw last (`want`, or what it
 * was at the timeout).
 */
export async function statusOf(
  sql: postgres.Sql,
  table: "snapshots" | "volumes",
  id: string,
  want: string,
  timeoutMs = 45_000,
): Promise<string> {
  const read = async () => {
    const [row] = await sql<{ status: string }[]>`select status from ${sql(table)} where id = ${id}`;
    return row?.status ?? "";
  };
  return settle(read, (status) => status === want, { timeoutMs });
}

/** Creates one 1 GiB volume and waits until it is available; returns its id. */
export async function availableVolume(volumes: VolumesServiceClient, md: Metadata, name = "v"): Promise<string> {
  const [id] = await availableVolumes(volumes, md, 1, name);
  return id ?? "";
}
