import type { AttachmentRow } from "@cinderblock/db";
import { CinderblockError } from "@cinderblock/domain";
import type { RestReply } from "./faults.js";
import { authorizeAs, authorizeList, p, type RestCall, type Route } from "./http.js";
import { element, optionalString } from "./input.js";
import { atLeast } from "./microversion.js";
import { cinderTime } from "./views.js";

// Cinder's attachments API (3.27; os-complete at 3.44; mode at 3.54) onto AttachVolume and
// DetachVolume. Cinderblock reserves, exports and attaches in one use case, so an attachment is
// made with its connector and is `attached` when the create answers: there is no `reserved`
// attachment (a create without a connector is refused by name), and os-complete has nothing left
// to do.

const bad = (message: string) => new CinderblockError("INVALID_ARGUMENT", message);

/** 404 below the microversion that brought the method, as Cinder (VersionNotFoundForAPIMethod). */
function requireVersion(call: RestCall, version: string): void {
  if (!atLeast(call.version, version)) {
    throw new CinderblockError("NOT_FOUND", `this method needs microversion ${version} or later`);
  }
}

/** Cinder's attachment summary: id, status (its attach_status), instance and volume_id. */
function summaryView(a: AttachmentRow) {
  return { id: a.id, status: a.attachStatus, instance: a.instanceId, volume_id: a.volumeId };
}

/** Cinder's attachment detail: the summary with times, mode and the connection info. */
function detailView(a: AttachmentRow) {
  return {
    ...summaryView(a),
    attached_at: cinderTime(a.attachedAt) ?? "",
    detached_at: "",
    attach_mode: "rw",
    connection_info: a.connectionInfo,
  };
}

/**
 * A host connector as the domain keeps it (strings): os-brick's booleans and numbers as their
 * text, lists and objects as JSON, nulls left out.
 */
function connectorOf(value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad("connector: must be an object");
  }
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === null || v === undefined) continue;
    out[key] = typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  return out;
}

/** The attachment `id` of one of the caller's project's volumes, or 404. */
async function mustFind(call: RestCall, id: string): Promise<AttachmentRow> {
  const [found] = await call.useCases.findAttachments(call.ctx, { allProjects: false, id });
  if (!found) throw new CinderblockError("NOT_FOUND", `Attachment ${id} could not be found.`);
  return found;
}

/** `POST /attachments`: attaches `volume_uuid` to `instance_uuid` with `connector` (200, detail). */
async function createAttachment(call: RestCall): Promise<RestReply> {
  requireVersion(call, "3.27");
  const a = element(call.body, "attachment");
  const volumeId = optionalString(a, "volume_uuid");
  if (!volumeId) throw bad("volume_uuid: is required");
  const instanceId = optionalString(a, "instance_uuid");
  if (!instanceId) throw bad("instance_uuid: is required (an attachment without an instance is not supported)");
  // An empty connector is none, as in Cinder (cinderclient sends {} without --connect).
  const connector = a.connector === undefined || a.connector === null ? {} : connectorOf(a.connector);
  if (Object.keys(connector).length === 0) {
    throw bad(
      "connector: is required (Cinderblock connects when it attaches; a reserved attachment without a connector is not supported)",
    );
  }
  const mode = atLeast(call.version, "3.54") ? (optionalString(a, "mode") ?? "null") : "null";
  if (mode === "ro") throw bad("mode: read-only attach is not supported by Cinderblock");
  if (mode !== "rw" && mode !== "null") throw bad("mode: must be rw or ro");
  const { attachment } = await call.useCases.attachVolume(call.ctx, {
    volumeId,
    instanceId,
    mountpoint: connector.mountpoint ?? "",
    connector,
  });
  return { status: 200, body: { attachment: detailView(attachment) } };
}

async function listAttachments(call: RestCall, detail: boolean): Promise<RestReply> {
  requireVersion(call, "3.27");
  const q = call.query;
  const filter: Parameters<RestCall["useCases"]["findAttachments"]>[1] = {
    allProjects: call.granted.allProjects === true,
  };
  const volumeId = q.get("volume_id");
  if (volumeId) filter.volumeId = volumeId;
  const instanceId = q.get("instance_id") ?? q.get("instance_uuid");
  if (instanceId) filter.instanceId = instanceId;
  const status = q.get("attach_status") ?? q.get("status");
  if (status) filter.attachStatus = status;
  const rows = await call.useCases.findAttachments(call.ctx, filter);
  return { status: 200, body: { attachments: rows.map(detail ? detailView : summaryView) } };
}

async function showAttachment(call: RestCall): Promise<RestReply> {
  requireVersion(call, "3.27");
  return { status: 200, body: { attachment: detailView(await mustFind(call, call.params.id ?? "")) } };
}

/**
 * `PUT /attachments/{id}` (connector → connection_info): every attachment is connected when it is
 * made, so the same connector answers its connection again; another is refused by name.
 */
async function updateAttachment(call: RestCall): Promise<RestReply> {
  requireVersion(call, "3.27");
  const a = element(call.body, "attachment");
  if (a.connector === undefined || a.connector === null) throw bad("connector: is required");
  const connector = connectorOf(a.connector);
  const found = await mustFind(call, call.params.id ?? "");
  if ((connector.host ?? "") !== (found.connector.host ?? "")) {
    throw bad(
      `connector: attachment ${found.id} is connected to host '${found.connector.host ?? ""}'; Cinderblock does not move an attachment to another connector (delete it and create another)`,
    );
  }
  return { status: 200, body: { attachment: detailView(found) } };
}

/** `DELETE /attachments/{id}`: detaches; answers the volume's remaining attachments (200). */
async function deleteAttachment(call: RestCall): Promise<RestReply> {
  requireVersion(call, "3.27");
  const found = await mustFind(call, call.params.id ?? "");
  await call.useCases.detachVolume(call.ctx, found.volumeId, found.id);
  const remaining = await call.useCases.findAttachments(call.ctx, { allProjects: false, volumeId: found.volumeId });
  return { status: 200, body: { attachments: remaining.map(summaryView) } };
}

/** `POST /attachments/{id}/action` `os-complete` (3.44): the attachment is attached already (204). */
async function attachmentAction(call: RestCall): Promise<RestReply> {
  const body = call.body;
  const names = typeof body === "object" && body !== null && !Array.isArray(body) ? Object.keys(body) : [];
  if (names.length !== 1) throw bad("Malformed request body: an action body has exactly one key, the action's name");
  if (names[0] !== "os-complete") throw bad(`There is no such action: ${names[0]}`);
  requireVersion(call, "3.44");
  const found = await mustFind(call, call.params.id ?? "");
  if (found.attachStatus !== "attached") {
    throw bad(`Invalid attachment: attachment ${found.id} is ${found.attachStatus}, not attached yet`);
  }
  return { status: 204 };
}

/** The attachments API. */
export const attachmentRoutes: Route[] = [
  { method: "POST", path: p("/attachments"), authorize: authorizeAs("AttachVolume"), handle: createAttachment },
  {
    method: "GET",
    path: p("/attachments"),
    authorize: authorizeList("ListVolumes"),
    handle: (call) => listAttachments(call, false),
  },
  {
    method: "GET",
    path: p("/attachments/detail"),
    authorize: authorizeList("ListVolumes"),
    handle: (call) => listAttachments(call, true),
  },
  { method: "GET", path: p("/attachments/{id}"), authorize: authorizeAs("GetVolume"), handle: showAttachment },
  { method: "PUT", path: p("/attachments/{id}"), authorize: authorizeAs("AttachVolume"), handle: updateAttachment },
  {
    method: "DELETE",
    path: p("/attachments/{id}"),
    authorize: authorizeAs("DetachVolume"),
    handle: deleteAttachment,
  },
  {
    method: "POST",
    path: p("/attachments/{id}/action"),
    authorize: authorizeAs("AttachVolume"),
    handle: attachmentAction,
  },
];
