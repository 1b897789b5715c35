import {
  type Executor,
  getSnapshot,
  getVolume,
  getVolumeElevated,
  type SnapshotRow,
  type VolumeRow,
} from "@cinderblock/db";
import type { RequestContext } from "./context.js";
import { CinderblockError } from "./errors.js";
import type { Announcer } from "./ports.js";
import { snapshotUsage, volumeUsage } from "./usage.js";

/** The project's snapshot, or NOT_FOUND; `lock: "update"` to lock it for the rest of `tx`. */
export async function mustGetSnapshot(
  tx: Executor,
  ctx: RequestContext,
  id: string,
  lock?: "update",
): Promise<SnapshotRow> {
  const row = await getSnapshot(tx, ctx.projectId, id, lock ? { lock } : {});
  if (!row) throw new CinderblockError("NOT_FOUND", `snapshot ${id} not found`);
  return row;
}

/** The project's volume; `lock: "update"` before reading what else is going on around it. */
export async function mustGetVolume(
  tx: Executor,
  ctx: RequestContext,
  id: string,
  lock?: "update",
): Promise<VolumeRow> {
  const row = await getVolume(tx, ctx.projectId, id, lock ? { lock } : {});
  if (!row) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
  return row;
}

/** Announces a snapshot event (INFO) in `tx`, with its volume's availability zone. */
async function snapshotEvent(
  notifications: Announcer,
  tx: Executor,
  eventType: string,
  row: SnapshotRow,
): Promise<void> {
  const volume = await getVolumeElevated(tx, row.volumeId);
  await notifications.announce(tx, "INFO", eventType, snapshotUsage(row, volume));
}

/** Announces a volume event (INFO) in `tx`. */
async function volumeEvent(notifications: Announcer, tx: Executor, eventType: string, row: VolumeRow): Promise<void> {
  await notifications.announce(tx, "INFO", eventType, volumeUsage(row));
}

/** Announces `<resource>.<op>.start`, applies `change`, then announces `.end` with the row after it. */
export async function announced<T extends SnapshotRow | VolumeRow>(
  notifications: Announcer,
  tx: Executor,
  kind: "snapshot" | "volume",
  op: string,
  before: T,
  change: () => Promise<T>,
): Promise<T> {
  const event = (row: T, phase: string) =>
    kind === "snapshot"
      ? snapshotEvent(notifications, tx, `${op}.${phase}`, row as SnapshotRow)
      : volumeEvent(notifications, tx, `${op}.${phase}`, row as VolumeRow);
  await event(before, "start");
  const after = await change();
  await event(after, "end");
  return after;
}
