import { setTimeout as sleep } from "node:timers/promises";
import {
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  CreateVolumeRequest,
  type CreateVolumeResponse,
  CreateVolumeTypeRequest,
  type CreateVolumeTypeResponse,
  type DeleteSnapshotResponse,
  type DeleteVolumeResponse,
  type GetQuotasResponse,
  type GetSnapshotResponse,
  type GetVolumeResponse,
  type GetVolumeTypeResponse,
  ListSnapshotsRequest,
  type ListSnapshotsResponse,
  ListVolumesRequest,
  type ListVolumesResponse,
  type ListVolumeTypesResponse,
  Notification,
  type RetypeVolumeResponse,
  type Snapshot,
  SnapshotStatus,
  type Volume,
  VolumeStatus,
  type VolumeType,
} from "@cinderblock/proto";
import { status as grpcStatus } from "@grpc/grpc-js";
import { type FlagValues, intFlag, listFlag, pairsFlag, stringFlag, UsageError } from "./args.js";
import { type Connection, isServiceError, messages } from "./client.js";
import { EXIT } from "./exit-codes.js";
import {
  eventLine,
  parseSnapshotStatus,
  parseVolumeStatus,
  quotaTable,
  snapshotDetail,
  snapshotJson,
  snapshotStatusName,
  snapshotTable,
  volumeDetail,
  volumeJson,
  volumeStatusName,
  volumeTable,
  volumeTypeDetail,
  volumeTypeJson,
  volumeTypeTable,
} from "./format.js";
import type { Output } from "./output.js";

/** A failure with its own exit code (a wait that timed out or ended in error, an interrupt). */
export class CliFailure extends Error {
  override readonly name = "CliFailure";
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** What a command runs with. */
interface CommandContext {
  conn: Connection;
  args: string[];
  flags: FlagValues;
  out: Output;
  /** Aborts on SIGINT/SIGTERM. */
  signal: AbortSignal;
}

type Handler = (ctx: CommandContext) => Promise<number>;

const DEFAULT_WAIT_TIMEOUT_S = 600;
/** Polling a volume: first after 200 ms, then 1.5 times longer each time, at most every 2 s. */
const POLL_FIRST_MS = 200;
const POLL_MAX_MS = 2000;

/** When a --wait gives up: --wait-timeout from now (checked before anything is sent). */
interface Deadline {
  at: number;
  seconds: number;
}

function waitDeadline(flags: FlagValues): Deadline {
  const seconds = intFlag(flags, "wait-timeout", 1, 86_400) ?? DEFAULT_WAIT_TIMEOUT_S;
  return { at: Date.now() + seconds * 1000, seconds };
}

function interrupted(): CliFailure {
  return new CliFailure("interrupted", EXIT.INTERRUPTED);
}

function elapsed(start: number): string {
  return `${Math.round((Date.now() - start) / 1000)} s`;
}

function printVolume(out: Output, volume: Volume): void {
  if (out.json) out.jsonLine(volumeJson(volume));
  else out.text(volumeDetail(volume));
}

function printSnapshot(out: Output, snapshot: Snapshot): void {
  if (out.json) out.jsonLine(snapshotJson(snapshot));
  else out.text(snapshotDetail(snapshot));
}

function reason(text: string): string {
  return text ? `: ${text}` : "";
}

/**
 * Polls GetVolume until the volume leaves `transitional`: for a delete, until it is gone
 * (NOT_FOUND, reported as status deleted). Shows each change on stderr.
 */
async function followVolume(
  ctx: CommandContext,
  first: Volume,
  transitional: VolumeStatus,
  deadline: Deadline,
): Promise<Volume> {
  const { conn, out, signal } = ctx;
  const start = Date.now();
  let volume = first;
  let delay = POLL_FIRST_MS;
  for (;;) {
    const status = volumeStatusName(volume.status);
    out.progress(`volume ${volume.id}: ${status} (${elapsed(start)})`, status);
    if (volume.status !== transitional) break;
    if (Date.now() > deadline.at) {
      throw new CliFailure(`gave up waiting for volume ${volume.id} after ${deadline.seconds} s`, EXIT.TIMEOUT);
    }
    try {
      await sleep(delay, undefined, { signal });
    } catch {
      throw interrupted();
    }
    delay = Math.min(POLL_MAX_MS, delay * 1.5);
    try {
      const res = await conn.call<GetVolumeResponse>((md, o, done) =>
        conn.volumes.getVolume({ id: volume.id }, md, o, done),
      );
      if (res.volume) volume = res.volume;
    } catch (error) {
      if (transitional === VolumeStatus.VOLUME_STATUS_DELETING && isServiceError(error)) {
        if (error.code === grpcStatus.NOT_FOUND) {
          volume = { ...volume, status: VolumeStatus.VOLUME_STATUS_DELETED, updatedAt: new Date() };
          continue;
        }
      }
      throw error;
    }
  }
  out.endProgress();
  return volume;
}

/** Follows a snapshot through WatchSnapshot to its terminal status, showing progress on stderr. */
async function followSnapshot(ctx: CommandContext, id: string, deadline: Deadline): Promise<Snapshot> {
  const { conn, out, signal } = ctx;
  const start = Date.now();
  let last: Snapshot | undefined;
  try {
    const stream = conn.snapshots.watchSnapshot({ id }, conn.metadata(), { deadline: deadline.at });
    for await (const message of messages(stream, signal)) {
      if (!message.snapshot) continue;
      last = message.snapshot;
      const state = `${snapshotStatusName(last.status)} ${last.progress || "-"}`;
      out.progress(`snapshot ${id}: ${state} (${elapsed(start)})`, state);
    }
  } catch (error) {
    if (isServiceError(error) && error.code === grpcStatus.DEADLINE_EXCEEDED) {
      throw new CliFailure(`gave up waiting for snapshot ${id} after ${deadline.seconds} s`, EXIT.TIMEOUT);
    }
    throw error;
  }
  if (signal.aborted) throw interrupted();
  out.endProgress();
  if (!last) throw new Error(`WatchSnapshot ended without sending snapshot ${id}`);
  return last;
}

function pageSize(flags: FlagValues): number {
  // NOTE: the api checks 1-1000 and names page_size; here only the number's form is checked.
  return intFlag(flags, "limit", 0) ?? 0;
}

/** Fetches one page, or every page with --all-pages (stopping should a token ever repeat). */
async function pages<T>(
  flags: FlagValues,
  fetch: (pageToken: string) => Promise<{ items: T[]; next: string }>,
): Promise<{ items: T[]; next: string }> {
  let token = stringFlag(flags, "page-token");
  if (!flags["all-pages"]) return fetch(token);
  const items: T[] = [];
  const seen = new Set<string>();
  for (;;) {
    const page = await fetch(token);
    items.push(...page.items);
    if (page.next === "" || seen.has(page.next)) return { items, next: "" };
    seen.add(page.next);
    token = page.next;
  }
}

const volumeCreate: Handler = async (ctx) => {
  const { conn, flags, out } = ctx;
  const fromSnapshot = stringFlag(flags, "from-snapshot");
  const sourceVolume = stringFlag(flags, "source-volume");
  const size = intFlag(flags, "size", 0);
  if (fromSnapshot && sourceVolume) {
    throw new UsageError("--from-snapshot and --source-volume: give one or the other", "volume create");
  }
  if (size === undefined && !fromSnapshot && !sourceVolume) {
    throw new UsageError("--size is required (unless --from-snapshot or --source-volume)", "volume create");
  }
  const request = CreateVolumeRequest.fromPartial({
    name: stringFlag(flags, "name"),
    description: stringFlag(flags, "description"),
    sizeGb: size ?? 0,
    volumeType: stringFlag(flags, "type"),
    availabilityZone: stringFlag(flags, "availability-zone"),
    bootable: flags.bootable === true,
    multiattach: flags.multiattach === true,
    snapshotId: fromSnapshot,
    sourceVolumeId: sourceVolume,
    metadata: pairsFlag(flags, "metadata"),
    imageMetadata: pairsFlag(flags, "image-metadata"),
    clientRequestId: stringFlag(flags, "client-request-id"),
  });
  const deadline = waitDeadline(flags);
  const res = await conn.call<CreateVolumeResponse>((md, o, done) => conn.volumes.createVolume(request, md, o, done));
  let volume = res.volume as Volume;
  if (flags.wait) volume = await followVolume(ctx, volume, VolumeStatus.VOLUME_STATUS_CREATING, deadline);
  printVolume(out, volume);
  if (flags.wait && volume.status === VolumeStatus.VOLUME_STATUS_ERROR) {
    throw new CliFailure(`volume ${volume.id} ended in error${reason(volume.statusReason)}`, EXIT.OPERATION_FAILED);
  }
  return EXIT.OK;
};

const volumeList: Handler = async ({ conn, flags, out }) => {
  const status = flags.status === undefined ? 0 : parseVolumeStatus(stringFlag(flags, "status"));
  const base = {
    pageSize: pageSize(flags),
    status,
    name: stringFlag(flags, "name"),
    metadata: pairsFlag(flags, "metadata"),
    sortKey: stringFlag(flags, "sort-key"),
    sortDir: stringFlag(flags, "sort-dir"),
    allProjects: flags["all-projects"] === true,
  };
  const { items, next } = await pages(flags, async (pageToken) => {
    const request = ListVolumesRequest.fromPartial({ ...base, pageToken });
    const res = await conn.call<ListVolumesResponse>((md, o, done) => conn.volumes.listVolumes(request, md, o, done));
    return { items: res.volumes, next: res.nextPageToken };
  });
  if (out.json) {
    out.jsonLine({ volumes: items.map(volumeJson), nextPageToken: next });
  } else {
    out.text(volumeTable(items));
    if (next) out.note(`more: --page-token ${next} (or --all-pages)`);
  }
  return EXIT.OK;
};

const volumeShow: Handler = async ({ conn, args, out }) => {
  const id = args[0] ?? "";
  const res = await conn.call<GetVolumeResponse>((md, o, done) => conn.volumes.getVolume({ id }, md, o, done));
  printVolume(out, res.volume as Volume);
  return EXIT.OK;
};

const volumeDelete: Handler = async (ctx) => {
  const { conn, args, flags, out } = ctx;
  const id = args[0] ?? "";
  const deadline = waitDeadline(flags);
  const res = await conn.call<DeleteVolumeResponse>((md, o, done) =>
    conn.volumes.deleteVolume({ id, cascade: flags.cascade === true, force: false }, md, o, done),
  );
  let volume = res.volume as Volume;
  if (flags.wait) volume = await followVolume(ctx, volume, VolumeStatus.VOLUME_STATUS_DELETING, deadline);
  if (out.json) out.jsonLine(volumeJson(volume));
  else out.text(`volume ${volume.id} ${volumeStatusName(volume.status)}\n`);
  if (flags.wait && volume.status !== VolumeStatus.VOLUME_STATUS_DELETED) {
    throw new CliFailure(
      `volume ${volume.id} was not deleted: ${volumeStatusName(volume.status)}${reason(volume.statusReason)}`,
      EXIT.OPERATION_FAILED,
    );
  }
  return EXIT.OK;
};

const MIGRATION_POLICIES = ["never", "on-demand"];

const volumeRetype: Handler = async (ctx) => {
  const { conn, args, flags, out } = ctx;
  const [id = "", newType = ""] = args;
  const policy = stringFlag(flags, "migration-policy");
  if (flags["migration-policy"] !== undefined && !MIGRATION_POLICIES.includes(policy)) {
    throw new UsageError(
      `--migration-policy: expected ${MIGRATION_POLICIES.join(" or ")}, got '${policy}'`,
      "volume retype",
    );
  }
  const deadline = waitDeadline(flags);
  const res = await conn.call<RetypeVolumeResponse>((md, o, done) =>
    conn.volumes.retypeVolume({ id, newType, migrationPolicy: policy }, md, o, done),
  );
  let volume = res.volume as Volume;
  if (flags.wait) volume = await followVolume(ctx, volume, VolumeStatus.VOLUME_STATUS_RETYPING, deadline);
  printVolume(out, volume);
  // A retype that fails puts the volume back in its status and type, with the reason.
  const retyped = volume.volumeType === newType || volume.volumeTypeId === newType.toLowerCase();
  if (flags.wait && !retyped) {
    throw new CliFailure(
      `volume ${volume.id} was not retyped: still ${volume.volumeType}${reason(volume.statusReason)}`,
      EXIT.OPERATION_FAILED,
    );
  }
  return EXIT.OK;
};

const snapshotCreate: Handler = async (ctx) => {
  const { conn, args, flags, out } = ctx;
  const request = CreateSnapshotRequest.fromPartial({
    volumeId: args[0] ?? "",
    name: stringFlag(flags, "name"),
    description: stringFlag(flags, "description"),
    force: flags.force === true,
    metadata: pairsFlag(flags, "metadata"),
    clientRequestId: stringFlag(flags, "client-request-id"),
  });
  const deadline = waitDeadline(flags);
  const res = await conn.call<CreateSnapshotResponse>((md, o, done) =>
    conn.snapshots.createSnapshot(request, md, o, done),
  );
  let snapshot = res.snapshot as Snapshot;
  if (flags.wait) snapshot = await followSnapshot(ctx, snapshot.id, deadline);
  printSnapshot(out, snapshot);
  if (flags.wait && snapshot.status !== SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE) {
    throw new CliFailure(
      `snapshot ${snapshot.id} ended in ${snapshotStatusName(snapshot.status)}${reason(snapshot.statusReason)}`,
      EXIT.OPERATION_FAILED,
    );
  }
  return EXIT.OK;
};

const snapshotList: Handler = async ({ conn, flags, out }) => {
  const status = flags.status === undefined ? 0 : parseSnapshotStatus(stringFlag(flags, "status"));
  const base = {
    pageSize: pageSize(flags),
    volumeId: stringFlag(flags, "volume"),
    status,
    name: stringFlag(flags, "name"),
    metadata: pairsFlag(flags, "metadata"),
    sortKey: stringFlag(flags, "sort-key"),
    sortDir: stringFlag(flags, "sort-dir"),
    allProjects: flags["all-projects"] === true,
  };
  const { items, next } = await pages(flags, async (pageToken) => {
    const request = ListSnapshotsRequest.fromPartial({ ...base, pageToken });
    const res = await conn.call<ListSnapshotsResponse>((md, o, done) =>
      conn.snapshots.listSnapshots(request, md, o, done),
    );
    return { items: res.snapshots, next: res.nextPageToken };
  });
  if (out.json) {
    out.jsonLine({ snapshots: items.map(snapshotJson), nextPageToken: next });
  } else {
    out.text(snapshotTable(items));
    if (next) out.note(`more: --page-token ${next} (or --all-pages)`);
  }
  return EXIT.OK;
};

const snapshotShow: Handler = async ({ conn, args, out }) => {
  const id = args[0] ?? "";
  const res = await conn.call<GetSnapshotResponse>((md, o, done) => conn.snapshots.getSnapshot({ id }, md, o, done));
  printSnapshot(out, res.snapshot as Snapshot);
  return EXIT.OK;
};

const snapshotDelete: Handler = async (ctx) => {
  const { conn, args, flags, out } = ctx;
  const id = args[0] ?? "";
  const deadline = waitDeadline(flags);
  const res = await conn.call<DeleteSnapshotResponse>((md, o, done) =>
    conn.snapshots.deleteSnapshot({ id, force: flags.force === true }, md, o, done),
  );
  let snapshot = res.snapshot as Snapshot;
  if (flags.wait) snapshot = await followSnapshot(ctx, snapshot.id, deadline);
  if (out.json) out.jsonLine(snapshotJson(snapshot));
  else out.text(`snapshot ${snapshot.id} ${snapshotStatusName(snapshot.status)}\n`);
  if (flags.wait && snapshot.status !== SnapshotStatus.SNAPSHOT_STATUS_DELETED) {
    // A snapshot the backend reports busy returns to available with the reason.
    throw new CliFailure(
      `snapshot ${snapshot.id} was not deleted: ${snapshotStatusName(snapshot.status)}${reason(snapshot.statusReason)}`,
      EXIT.OPERATION_FAILED,
    );
  }
  return EXIT.OK;
};

const SNAPSHOT_FAILED = [SnapshotStatus.SNAPSHOT_STATUS_ERROR, SnapshotStatus.SNAPSHOT_STATUS_ERROR_DELETING];

const snapshotWatch: Handler = async ({ conn, args, out, signal }) => {
  const id = args[0] ?? "";
  let last: Snapshot | undefined;
  for await (const message of messages(conn.snapshots.watchSnapshot({ id }, conn.metadata()), signal)) {
    if (!message.snapshot) continue;
    last = message.snapshot;
    if (out.json) out.jsonLine(snapshotJson(last));
    else {
      const when = (last.updatedAt ?? new Date()).toISOString();
      out.text(
        `${when}  ${last.id}  ${snapshotStatusName(last.status)}  ${last.progress}${reason(last.statusReason)}\n`,
      );
    }
  }
  if (signal.aborted) throw interrupted();
  if (last && SNAPSHOT_FAILED.includes(last.status)) {
    throw new CliFailure(
      `snapshot ${last.id} ended in ${snapshotStatusName(last.status)}${reason(last.statusReason)}`,
      EXIT.OPERATION_FAILED,
    );
  }
  return EXIT.OK;
};

function printVolumeType(out: Output, type: VolumeType): void {
  if (out.json) out.jsonLine(volumeTypeJson(type));
  else out.text(volumeTypeDetail(type));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The volume type a TYPE argument names: GetVolumeType by id, else (a name) the one of that name
 * among the types the caller may list. NOT_FOUND (exit 3) when there is none.
 */
async function findVolumeType(conn: Connection, ref: string): Promise<VolumeType> {
  if (UUID.test(ref)) {
    const res = await conn.call<GetVolumeTypeResponse>((md, o, done) =>
      conn.types.getVolumeType({ id: ref }, md, o, done),
    );
    return res.volumeType as VolumeType;
  }
  let pageToken = "";
  const seen = new Set<string>();
  do {
    const res = await conn.call<ListVolumeTypesResponse>((md, o, done) =>
      conn.types.listVolumeTypes({ pageSize: 1000, pageToken }, md, o, done),
    );
    const found = res.volumeTypes.find((t) => t.name === ref);
    if (found) return found;
    seen.add(pageToken);
    pageToken = res.nextPageToken;
  } while (pageToken && !seen.has(pageToken));
  throw new CliFailure(`volume type ${JSON.stringify(ref)} not found`, EXIT.NOT_FOUND);
}

const typeList: Handler = async ({ conn, flags, out }) => {
  const { items, next } = await pages(flags, async (pageToken) => {
    const res = await conn.call<ListVolumeTypesResponse>((md, o, done) =>
      conn.types.listVolumeTypes({ pageSize: pageSize(flags), pageToken }, md, o, done),
    );
    return { items: res.volumeTypes, next: res.nextPageToken };
  });
  if (out.json) {
    out.jsonLine({ volumeTypes: items.map(volumeTypeJson), nextPageToken: next });
  } else {
    out.text(volumeTypeTable(items));
    if (next) out.note(`more: --page-token ${next} (or --all-pages)`);
  }
  return EXIT.OK;
};

const typeShow: Handler = async ({ conn, args, out }) => {
  printVolumeType(out, await findVolumeType(conn, args[0] ?? ""));
  return EXIT.OK;
};

const typeCreate: Handler = async ({ conn, args, flags, out }) => {
  const request = CreateVolumeTypeRequest.fromPartial({
    name: args[0] ?? "",
    description: stringFlag(flags, "description"),
    isPublic: flags.private !== true,
    extraSpecs: pairsFlag(flags, "property"),
  });
  const res = await conn.call<CreateVolumeTypeResponse>((md, o, done) =>
    conn.types.createVolumeType(request, md, o, done),
  );
  printVolumeType(out, res.volumeType as VolumeType);
  return EXIT.OK;
};

const typeDelete: Handler = async ({ conn, args, out }) => {
  const type = await findVolumeType(conn, args[0] ?? "");
  await conn.call((md, o, done) => conn.types.deleteVolumeType({ id: type.id }, md, o, done));
  if (out.json) out.jsonLine({ id: type.id, name: type.name, deleted: true });
  else out.text(`volume type ${type.id} (${type.name}) deleted\n`);
  return EXIT.OK;
};

const quotaShow: Handler = async ({ conn, flags, out }) => {
  const projectId = stringFlag(flags, "for-project");
  const res = await conn.call<GetQuotasResponse>((md, o, done) => conn.quotas.getQuotas({ projectId }, md, o, done));
  if (out.json) {
    out.jsonLine({
      projectId: res.projectId,
      quotas: res.quotas.map((q) => ({ resource: q.resource, limit: q.limit, inUse: q.inUse })),
    });
  } else {
    out.text(quotaTable(res.quotas));
  }
  return EXIT.OK;
};

const events: Handler = async ({ conn, flags, out, signal }) => {
  const count = intFlag(flags, "count", 1);
  const request = {
    resourceId: stringFlag(flags, "resource"),
    eventTypes: listFlag(flags, "type"),
    allProjects: flags["all-projects"] === true,
    startSequence: 0,
  };
  out.note("watching events (Ctrl-C to stop)");
  let seen = 0;
  for await (const message of messages(conn.events.watchEvents(request, conn.metadata()), signal)) {
    if (!message.event) continue;
    if (out.json) out.jsonLine(Notification.toJSON(message.event));
    else out.text(`${eventLine(message.event)}\n`);
    seen++;
    if (count !== undefined && seen >= count) break;
  }
  // NOTE: Ctrl-C is how one stops an event stream, so it is a success here.
  return EXIT.OK;
};

/** Every command's handler, by its name in COMMANDS. */
export const HANDLERS: Record<string, Handler> = {
  "volume create": volumeCreate,
  "volume list": volumeList,
  "volume show": volumeShow,
  "volume delete": volumeDelete,
  "volume retype": volumeRetype,
  "snapshot create": snapshotCreate,
  "snapshot list": snapshotList,
  "snapshot show": snapshotShow,
  "snapshot delete": snapshotDelete,
  "snapshot watch": snapshotWatch,
  "type list": typeList,
  "type show": typeShow,
  "type create": typeCreate,
  "type delete": typeDelete,
  "quota show": quotaShow,
  events,
};
