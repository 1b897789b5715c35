import type { SnapshotStatus } from "@cinderblock/db";
import { CinderblockError } from "@cinderblock/domain";
import type { RestReply } from "./faults.js";
import { authorizeAs, authorizeList, p, type RestCall, type Route, type UnauthorizedCall } from "./http.js";
import { element, metadataFilter, optionalString, parseBoolean, stringMap } from "./input.js";
import { cinderList, markerRow, nextLinks, tokenAfter } from "./lists.js";
import { metadataRoutes } from "./metadata.js";
import { atLeast } from "./microversion.js";
import { snapshotView } from "./views.js";

const bad = (message: string) => new CinderblockError("INVALID_ARGUMENT", message);

/** `POST /snapshots` (202): `force` as a boolean or the strings clients send (`"True"`). */
async function createSnapshot(call: RestCall): Promise<RestReply> {
  const s = element(call.body, "snapshot");
  const volumeId = optionalString(s, "volume_id") ?? "";
  // Cinder looks the volume up first: no volume_id (or null) is the volume None, not found (404).
  if (!volumeId) throw new CinderblockError("NOT_FOUND", "Volume None could not be found.");
  const force = parseBoolean(s.force, "force");
  if (!force && !atLeast(call.version, "3.66")) {
    // NOTE: before 3.66 Cinder snapshots an in-use volume only with `force`; the use case follows
    // 3.66 (force accepted and ignored), so the older versions' refusal is kept here. A volume that
    // becomes in-use right after this read is snapshotted as 3.66 would: no harm done.
    const volume = await call.useCases.getVolume(call.ctx, volumeId);
    if (volume.status === "in-use") {
      throw bad(
        `Invalid volume: Volume ${volume.id} status must be available, but current status is: in-use; snapshot it with force`,
      );
    }
  }
  const row = await call.useCases.createSnapshot(call.ctx, {
    volumeId,
    name: optionalString(s, "name") ?? optionalString(s, "display_name") ?? "",
    description: optionalString(s, "description") ?? optionalString(s, "display_description") ?? "",
    force,
    metadata: stringMap(s.metadata, "metadata"),
    groupSnapshotId: "",
    clientRequestId: "",
  });
  return { status: 202, body: { snapshot: snapshotView(row, call.view, false) } };
}

async function listSnapshots(call: RestCall, detail: boolean): Promise<RestReply> {
  const { input, marker, offset } = cinderList(call.query, metadataFilter(call.query.get("metadata")));
  input.allProjects = call.granted.allProjects === true;
  const pageToken = call.query.get("page_token");
  if (pageToken) input.pageToken = pageToken;
  else if (marker) {
    const after = await markerRow(marker, (id) => call.useCases.getSnapshot(call.ctx, id));
    input.pageToken = tokenAfter(after, after.volumeSizeGb, input, call.pageTokens);
  }
  const wantsNone = call.query.get("limit") === "0";
  const page = await call.useCases.listSnapshots(call.ctx, { ...input, volumeId: call.query.get("volume_id") ?? "" });
  const rows = wantsNone ? [] : page.items.slice(offset);
  const body: Record<string, unknown> = { snapshots: rows.map((row) => snapshotView(row, call.view, detail)) };
  const links = nextLinks(call.view, detail ? "snapshots/detail" : "snapshots", call.query, {
    lastId: wantsNone ? undefined : rows[rows.length - 1]?.id,
    nextPageToken: page.nextPageToken,
    rows: rows.length,
  });
  if (links) body.snapshots_links = links;
  if (atLeast(call.version, "3.45") && parseBoolean(call.query.get("with_count"), "with_count")) {
    let count = 0;
    let pageToken = "";
    do {
      const all = await call.useCases.listSnapshots(call.ctx, {
        ...input,
        volumeId: call.query.get("volume_id") ?? "",
        pageSize: 1000,
        pageToken,
      });
      count += all.items.length;
      pageToken = all.nextPageToken;
    } while (pageToken);
    body.count = count;
  }
  return { status: 200, body };
}

function actionOf(call: UnauthorizedCall): [string, Record<string, unknown>] {
  const body = call.body;
  if (typeof body !== "object" || body === null || Array.isArray(body) || Object.keys(body).length !== 1) {
    throw bad("Malformed request body: an action body has exactly one key, the action's name");
  }
  const [name, arg] = Object.entries(body)[0] as [string, unknown];
  return [name, typeof arg === "object" && arg !== null ? (arg as Record<string, unknown>) : {}];
}

async function snapshotAction(call: RestCall): Promise<RestReply> {
  const [name, arg] = actionOf(call);
  const id = call.params.id ?? "";
  switch (name) {
    case "os-reset_status": {
      const status = optionalString(arg, "status");
      if (!status) throw bad("status: is required");
      await call.useCases.resetSnapshotStatus(call.ctx, id, status as SnapshotStatus);
      return { status: 202 };
    }
    case "os-force_delete":
      await call.useCases.deleteSnapshot(call.ctx, id, true);
      return { status: 202 };
    case "os-unmanage":
      await call.useCases.unmanageSnapshot(call.ctx, id);
      return { status: 202 };
    default:
      throw bad(`There is no such action: ${name}`);
  }
}

/** Snapshots: create, show, list and detail, update, delete, metadata, reset status, force delete and unmanage. */
export const snapshotRoutes: Route[] = [
  { method: "POST", path: p("/snapshots"), authorize: authorizeAs("CreateSnapshot"), handle: createSnapshot },
  {
    method: "GET",
    path: p("/snapshots"),
    authorize: authorizeList("ListSnapshots"),
    handle: (c) => listSnapshots(c, false),
  },
  {
    method: "GET",
    path: p("/snapshots/detail"),
    authorize: authorizeList("ListSnapshots"),
    handle: (c) => listSnapshots(c, true),
  },
  {
    method: "GET",
    path: p("/snapshots/{id}"),
    authorize: authorizeAs("GetSnapshot"),
    handle: async (call) => ({
      status: 200,
      body: {
        snapshot: snapshotView(await call.useCases.getSnapshot(call.ctx, call.params.id ?? ""), call.view, true),
      },
    }),
  },
  {
    method: "PUT",
    path: p("/snapshots/{id}"),
    authorize: authorizeAs("UpdateSnapshot"),
    handle: async (call) => {
      const s = element(call.body, "snapshot");
      const row = await call.useCases.updateSnapshot(call.ctx, call.params.id ?? "", {
        name: optionalString(s, "name") ?? optionalString(s, "display_name"),
        description: optionalString(s, "description") ?? optionalString(s, "display_description"),
      });
      return { status: 200, body: { snapshot: snapshotView(row, call.view, false) } };
    },
  },
  {
    method: "DELETE",
    path: p("/snapshots/{id}"),
    authorize: authorizeAs("DeleteSnapshot"),
    handle: async (call) => {
      await call.useCases.deleteSnapshot(call.ctx, call.params.id ?? "", false);
      return { status: 202 };
    },
  },
  {
    method: "POST",
    path: p("/snapshots/{id}/action"),
    authorize: (call) => {
      const [name] = actionOf(call);
      if (name === "os-force_delete") return { method: "DeleteSnapshot", request: { force: true } };
      if (name === "os-reset_status") return { method: "ResetSnapshotStatus", request: {} };
      if (name === "os-unmanage") return { method: "UnmanageSnapshot", request: {} };
      return { method: "GetSnapshot", request: {} };
    },
    handle: snapshotAction,
  },
  ...metadataRoutes({
    collection: "snapshots",
    table: "snapshots",
    read: "GetSnapshot",
    set: "SetSnapshotMetadata",
    remove: "DeleteSnapshotMetadata",
    get: (call, id) => call.useCases.getSnapshot(call.ctx, id),
  }),
];
