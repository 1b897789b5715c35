import { CinderblockError, type GroupSnapshotView } from "@cinderblock/domain";
import type { RestReply } from "./faults.js";
import { authorizeAs, authorizeList, p, type RestCall, type Route } from "./http.js";
import { cinderList, markerRow, nextLinks, tokenAfter } from "./lists.js";
import { atLeast } from "./microversion.js";
import { since } from "./since.js";
import { cinderTime, type ViewContext } from "./views.js";

/**
 * A group snapshot as cinder/api/v3/views/group_snapshots.py shows it. Cinderblock has no generic
 * volume groups (a group snapshot names its volumes), so `group_id` and `group_type_id` are null.
 */
function groupSnapshotView({ group }: GroupSnapshotView, view: ViewContext, detail: boolean) {
  if (!detail) return { id: group.id, name: group.name };
  const shown: Record<string, unknown> = {
    id: group.id,
    group_id: null,
    group_type_id: null,
    status: group.status,
    created_at: cinderTime(group.createdAt),
    name: group.name,
    description: group.description,
  };
  // NOTE: Cinder shows project_id from 3.58 to those its group_snapshot_project_attribute rule allows (admins).
  if (view.isAdmin && atLeast(view.version, "3.58")) shown.project_id = group.projectId;
  return shown;
}

async function listGroupSnapshots(call: RestCall, detail: boolean): Promise<RestReply> {
  // No group snapshot of Cinderblock's belongs to a generic volume group: a group_id filter finds none.
  if (call.query.get("group_id")) return { status: 200, body: { group_snapshots: [] } };
  const { input, marker } = cinderList(call.query, {});
  input.allProjects = call.granted.allProjects === true;
  const pageToken = call.query.get("page_token");
  if (pageToken) input.pageToken = pageToken;
  else if (marker) {
    const after = await markerRow(marker, (id) => call.useCases.getGroupSnapshot(call.ctx, id));
    input.pageToken = tokenAfter(after.group, 0, input, call.pageTokens);
  }
  const wantsNone = call.query.get("limit") === "0";
  const page = await call.useCases.listGroupSnapshots(call.ctx, input);
  const rows = wantsNone ? [] : page.items;
  const body: Record<string, unknown> = {
    group_snapshots: rows.map((g) => groupSnapshotView(g, call.view, detail)),
  };
  const links = nextLinks(call.view, detail ? "group_snapshots/detail" : "group_snapshots", call.query, {
    lastId: wantsNone ? undefined : rows[rows.length - 1]?.group.id,
    nextPageToken: page.nextPageToken,
    rows: rows.length,
  });
  if (links) body.group_snapshot_links = links;
  return { status: 200, body };
}

/**
 * Group snapshots (3.14): list and detail (`name`, `status`, `group_id`, `marker`, `limit`, `sort`,
 * `all_tenants`), show and delete, onto the gRPC GroupSnapshotsService. Creating one needs a
 * generic volume group (`group_id`), which Cinderblock does not have: 400 naming `group_id`.
 */
export const groupSnapshotRoutes: Route[] = [
  {
    method: "GET",
    path: p("/group_snapshots"),
    authorize: since("3.14", authorizeList("ListGroupSnapshots")),
    handle: (call) => listGroupSnapshots(call, false),
  },
  {
    method: "GET",
    path: p("/group_snapshots/detail"),
    authorize: since("3.14", authorizeList("ListGroupSnapshots")),
    handle: (call) => listGroupSnapshots(call, true),
  },
  {
    method: "GET",
    path: p("/group_snapshots/{id}"),
    authorize: since("3.14", authorizeAs("GetGroupSnapshot")),
    handle: async (call) => ({
      status: 200,
      body: {
        group_snapshot: groupSnapshotView(
          await call.useCases.getGroupSnapshot(call.ctx, call.params.id ?? ""),
          call.view,
          true,
        ),
      },
    }),
  },
  {
    method: "DELETE",
    path: p("/group_snapshots/{id}"),
    authorize: since("3.14", authorizeAs("DeleteGroupSnapshot")),
    handle: async (call) => {
      await call.useCases.deleteGroupSnapshot(call.ctx, call.params.id ?? "");
      return { status: 202 };
    },
  },
  {
    method: "POST",
    path: p("/group_snapshots"),
    authorize: since("3.14", authorizeAs("CreateGroupSnapshot")),
    handle: async () => {
      throw new CinderblockError(
        "INVALID_ARGUMENT",
        "group_id: Cinderblock has no generic volume groups, so no group_id can name one; " +
          "snapshot volumes together with the gRPC CreateGroupSnapshot (volume_ids) instead",
      );
    },
  },
];
