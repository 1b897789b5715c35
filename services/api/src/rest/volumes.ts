import type { VolumeRow, VolumeStatus } from "@cinderblock/db";
import { CinderblockError } from "@cinderblock/domain";
import type { RestReply } from "./faults.js";
import { authorizeAs, authorizeList, p, type RestCall, type Route, type UnauthorizedCall } from "./http.js";
import { element, metadataFilter, optionalString, parseBoolean, parseInteger, stringMap } from "./input.js";
import { cinderList, markerRow, nextLinks, tokenAfter } from "./lists.js";
import { metadataRoutes } from "./metadata.js";
import { atLeast } from "./microversion.js";
import { volumeSummaryView, volumeView } from "./views.js";

const bad = (message: string) => new CinderblockError("INVALID_ARGUMENT", message);

/** `POST /volumes`: blank, from `snapshot_id`, or from `source_volid` (202, as Cinder). */
async function createVolume(call: RestCall): Promise<RestReply> {
  const v = element(call.body, "volume");
  for (const unsupported of ["imageRef", "backup_id", "consistencygroup_id", "group_id"]) {
    if (v[unsupported] !== undefined && v[unsupported] !== null) {
      throw bad(`${unsupported}: not supported by Cinderblock`);
    }
  }
  const hints = (call.body as Record<string, unknown>)["OS-SCH-HNT:scheduler_hints"] as
    | Record<string, unknown>
    | undefined;
  const hostList = (value: unknown) => (value === undefined ? [] : Array.isArray(value) ? value : [value]).map(String);
  const size = v.size === undefined || v.size === null ? 0 : parseInteger(v.size, "size");
  const row = await call.useCases.createVolume(call.ctx, {
    name: optionalString(v, "name") ?? optionalString(v, "display_name") ?? "",
    description: optionalString(v, "description") ?? optionalString(v, "display_description") ?? "",
    sizeGb: size,
    volumeType: optionalString(v, "volume_type") ?? "",
    availabilityZone: optionalString(v, "availability_zone") ?? "",
    bootable: false,
    imageMetadata: {},
    encryptionKeyId: "",
    metadata: stringMap(v.metadata, "metadata"),
    clientRequestId: "",
    snapshotId: optionalString(v, "snapshot_id") ?? "",
    sourceVolumeId: optionalString(v, "source_volid") ?? "",
    multiattach: parseBoolean(v.multiattach, "multiattach"),
    sameHost: hostList(hints?.same_host),
    differentHost: hostList(hints?.different_host),
  });
  return { status: 202, body: { volume: volumeView(row, call.view) } };
}

async function showVolume(call: RestCall): Promise<RestReply> {
  const { id = "" } = call.params;
  const row = await call.useCases.getVolume(call.ctx, id);
  const attachments = await call.useCases.listAttachments(call.ctx, row.id);
  return { status: 200, body: { volume: volumeView(row, call.view, { attachments, extended: true }) } };
}

async function listVolumes(call: RestCall, detail: boolean): Promise<RestReply> {
  const { input, marker, offset } = cinderList(call.query, metadataFilter(call.query.get("metadata")));
  input.allProjects = call.granted.allProjects === true;
  const pageToken = call.query.get("page_token");
  if (pageToken) input.pageToken = pageToken;
  else if (marker) {
    const after = await markerRow(marker, (id) => call.useCases.getVolume(call.ctx, id));
    input.pageToken = tokenAfter(after, after.sizeGb, input, call.pageTokens);
  }
  const wantsNone = call.query.get("limit") === "0";
  const page = await call.useCases.listVolumes(call.ctx, input);
  const rows: VolumeRow[] = wantsNone ? [] : page.items.slice(offset);
  const volumes = detail
    ? await Promise.all(
        rows.map(async (row) =>
          volumeView(row, call.view, {
            // An all_tenants list (the policy allowed it) reads every project's attachments too.
            attachments: await call.useCases.listAttachments(call.ctx, row.id, {
              allProjects: row.projectId !== call.ctx.projectId && input.allProjects === true,
            }),
            extended: true,
          }),
        ),
      )
    : rows.map((row) => volumeSummaryView(row, call.view));
  const body: Record<string, unknown> = { volumes };
  const links = nextLinks(call.view, detail ? "volumes/detail" : "volumes", call.query, {
    lastId: wantsNone ? undefined : rows[rows.length - 1]?.id,
    nextPageToken: page.nextPageToken,
    rows: rows.length,
  });
  if (links) body.volumes_links = links;
  if (atLeast(call.version, "3.45") && parseBoolean(call.query.get("with_count"), "with_count")) {
    body.count = await countAll(call, input);
  }
  return { status: 200, body };
}

/**
 * `GET /volumes/summary` (3.12): the number and total size of the volumes the caller's list shows
 * (an admin's `all_tenants` too), and from 3.36 their metadata as `{key: [distinct values]}`, as
 * Cinder; composed over ListVolumes. Before 3.12 there is no such resource (404, as Cinder).
 */
async function volumeSummary(call: RestCall): Promise<RestReply> {
  if (!atLeast(call.version, "3.12")) throw new CinderblockError("NOT_FOUND", "The resource could not be found.");
  const { input } = cinderList(new URLSearchParams(), {});
  input.allProjects = call.granted.allProjects === true;
  let count = 0;
  let size = 0;
  const metadata = new Map<string, Set<string>>();
  let pageToken = "";
  do {
    const page = await call.useCases.listVolumes(call.ctx, { ...input, pageSize: 1000, pageToken });
    for (const row of page.items) {
      count += 1;
      size += row.sizeGb;
      for (const [key, value] of Object.entries(row.metadata)) {
        metadata.set(key, (metadata.get(key) ?? new Set()).add(value));
      }
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
  const summary: Record<string, unknown> = { total_size: size, total_count: count };
  if (atLeast(call.version, "3.36")) {
    summary.metadata = Object.fromEntries([...metadata].map(([key, values]) => [key, [...values]]));
  }
  return { status: 200, body: { "volume-summary": summary } };
}

/** The number of volumes a filtered list has in all, whatever the marker and limit (3.45 `with_count`). */
async function countAll(call: RestCall, input: ReturnType<typeof cinderList>["input"]): Promise<number> {
  let count = 0;
  let pageToken = "";
  do {
    const page = await call.useCases.listVolumes(call.ctx, { ...input, pageSize: 1000, pageToken });
    count += page.items.length;
    pageToken = page.nextPageToken;
  } while (pageToken);
  return count;
}

async function updateVolume(call: RestCall): Promise<RestReply> {
  const v = element(call.body, "volume");
  const row = await call.useCases.updateVolume(call.ctx, call.params.id ?? "", {
    name: optionalString(v, "name") ?? optionalString(v, "display_name"),
    description: optionalString(v, "description") ?? optionalString(v, "display_description"),
  });
  if (v.metadata !== undefined) {
    row.metadata = await call.useCases.setMetadata(
      call.ctx,
      "volumes",
      row.id,
      stringMap(v.metadata, "metadata"),
      true,
    );
  }
  return { status: 200, body: { volume: volumeView(row, call.view) } };
}

async function deleteVolume(call: RestCall): Promise<RestReply> {
  await call.useCases.deleteVolume(call.ctx, call.params.id ?? "", parseBoolean(call.query.get("cascade"), "cascade"));
  return { status: 202 };
}

/** The action a `POST /volumes/{id}/action` body names (its one key), and its argument. */
function actionOf(call: UnauthorizedCall): [string, Record<string, unknown>] {
  const body = call.body;
  if (typeof body !== "object" || body === null || Array.isArray(body) || Object.keys(body).length !== 1) {
    throw bad("Malformed request body: an action body has exactly one key, the action's name");
  }
  const [name, arg] = Object.entries(body)[0] as [string, unknown];
  return [name, typeof arg === "object" && arg !== null ? (arg as Record<string, unknown>) : {}];
}

/** The gRPC method (for its policy rules) of each volume action. */
const VOLUME_ACTIONS: Record<string, string> = {
  "os-extend": "ExtendVolume",
  "os-reset_status": "ResetVolumeStatus",
  "os-retype": "RetypeVolume",
  revert: "RevertVolumeToSnapshot",
  "os-attach": "AttachVolume",
  "os-detach": "DetachVolume",
  "os-force_delete": "DeleteVolume",
  "os-set_bootable": "UpdateVolume",
};

/** The request each action is authorized with, where its rules read one (os-force_delete's `force`). */
const ACTION_REQUESTS: Record<string, Record<string, unknown>> = { "os-force_delete": { force: true } };

/**
 * `os-attach`: Cinder's legacy attach, which marks a volume in-use for `instance_uuid` at
 * `mountpoint`. Cinderblock's attach reserves, exports and attaches in one use case, so the
 * connection os-initialize_connection would have made is made here (with `host_name` as the
 * connector's host); the connection info goes to the caller of AttachVolume, not of os-attach.
 */
async function attach(call: RestCall, id: string, arg: Record<string, unknown>): Promise<RestReply> {
  const instanceId = optionalString(arg, "instance_uuid");
  const hostName = optionalString(arg, "host_name");
  const mountpoint = optionalString(arg, "mountpoint");
  if (!instanceId) {
    throw bad(
      hostName
        ? "instance_uuid: is required (attaching to a host without an instance is not supported by Cinderblock)"
        : "instance_uuid: is required",
    );
  }
  if (!mountpoint) throw bad("mountpoint: is required");
  const mode = optionalString(arg, "mode") ?? "rw";
  if (mode !== "rw") {
    throw bad(mode === "ro" ? "mode: read-only attach is not supported by Cinderblock" : "mode: must be rw or ro");
  }
  await call.useCases.attachVolume(call.ctx, {
    volumeId: id,
    instanceId,
    mountpoint,
    connector: hostName ? { host: hostName } : {},
  });
  return { status: 202 };
}

/** `os-detach`: `attachment_id` may be left out when the volume has one attachment (as Cinder). */
async function detach(call: RestCall, id: string, arg: Record<string, unknown>): Promise<RestReply> {
  let attachmentId = optionalString(arg, "attachment_id");
  if (!attachmentId) {
    const attachments = (await call.useCases.listAttachments(call.ctx, id)).filter(
      (a) => a.attachStatus === "attached",
    );
    if (attachments.length > 1) {
      throw bad(`attachment_id: is required, volume ${id} has more than one attachment`);
    }
    const only = attachments[0];
    if (!only) throw bad(`Invalid volume: volume ${id} has no attachment to detach`);
    attachmentId = only.id;
  }
  await call.useCases.detachVolume(call.ctx, id, attachmentId);
  return { status: 202 };
}

async function volumeAction(call: RestCall): Promise<RestReply> {
  const [name, arg] = actionOf(call);
  const id = call.params.id ?? "";
  const uc = call.useCases;
  switch (name) {
    case "os-extend":
      await uc.extendVolume(call.ctx, id, parseInteger(arg.new_size, "new_size"));
      return { status: 202 };
    case "os-reset_status": {
      const status = optionalString(arg, "status");
      if (!status) throw bad("status: is required");
      await uc.resetVolumeStatus(call.ctx, id, status as VolumeStatus);
      return { status: 202 };
    }
    case "os-retype":
      await uc.retypeVolume(call.ctx, {
        id,
        newType: optionalString(arg, "new_type") ?? "",
        migrationPolicy: optionalString(arg, "migration_policy") ?? "",
      });
      return { status: 202 };
    case "revert":
      if (!atLeast(call.version, "3.40")) throw bad("There is no such action: revert (it needs microversion 3.40)");
      await uc.revertToSnapshot(call.ctx, id, optionalString(arg, "snapshot_id") ?? "");
      return { status: 202 };
    case "os-attach":
      return attach(call, id, arg);
    case "os-detach":
      return detach(call, id, arg);
    case "os-set_bootable":
      if (arg.bootable === undefined || arg.bootable === null) throw bad("bootable: is required");
      await uc.updateVolume(call.ctx, id, { bootable: parseBoolean(arg.bootable, "bootable") });
      return { status: 200 };
    case "os-force_delete":
      await uc.deleteVolume(call.ctx, id, false, true);
      return { status: 202 };
    default:
      throw bad(`There is no such action: ${name}`);
  }
}

/** Volumes: create, show, list and detail, update, delete, metadata and actions. */
export const volumeRoutes: Route[] = [
  { method: "POST", path: p("/volumes"), authorize: authorizeAs("CreateVolume"), handle: createVolume },
  {
    method: "GET",
    path: p("/volumes"),
    authorize: authorizeList("ListVolumes"),
    handle: (call) => listVolumes(call, false),
  },
  {
    method: "GET",
    path: p("/volumes/detail"),
    authorize: authorizeList("ListVolumes"),
    handle: (call) => listVolumes(call, true),
  },
  { method: "GET", path: p("/volumes/summary"), authorize: authorizeList("ListVolumes"), handle: volumeSummary },
  { method: "GET", path: p("/volumes/{id}"), authorize: authorizeAs("GetVolume"), handle: showVolume },
  { method: "PUT", path: p("/volumes/{id}"), authorize: authorizeAs("UpdateVolume"), handle: updateVolume },
  { method: "DELETE", path: p("/volumes/{id}"), authorize: authorizeAs("DeleteVolume"), handle: deleteVolume },
  {
    method: "POST",
    path: p("/volumes/{id}/action"),
    authorize: (call) => {
      const [name] = actionOf(call);
      // NOTE: an action we do not serve is authorized as a read, then refused with 400 by name.
      return { method: VOLUME_ACTIONS[name] ?? "GetVolume", request: ACTION_REQUESTS[name] ?? {} };
    },
    handle: volumeAction,
  },
  ...metadataRoutes({
    collection: "volumes",
    table: "volumes",
    read: "GetVolume",
    set: "SetVolumeMetadata",
    remove: "DeleteVolumeMetadata",
    get: (call, id) => call.useCases.getVolume(call.ctx, id),
  }),
];
