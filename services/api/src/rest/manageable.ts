import { CinderblockError, type HostManageable } from "@cinderblock/domain";
import type { RestReply } from "./faults.js";
import { authorizeAs, p, type RestCall, type Route } from "./http.js";
import { element, optionalString, parseInteger, stringMap } from "./input.js";
import { sortPairs } from "./lists.js";
import { atLeast } from "./microversion.js";
import { since } from "./since.js";
import { snapshotView } from "./views.js";

const bad = (message: string) => new CinderblockError("INVALID_ARGUMENT", message);

/**
 * The backend's name of a snapshot from Cinder's `ref` (`{"source-name": "<name>"}`, as
 * `cinder snapshot-manage` sends it; `source-id` is taken alike), or a plain string.
 */
function referenceOf(ref: unknown): string {
  if (typeof ref === "string" && ref !== "") return ref;
  if (typeof ref === "object" && ref !== null && !Array.isArray(ref)) {
    const given = ref as Record<string, unknown>;
    const name = given["source-name"] ?? given["source-id"];
    if (typeof name === "string" && name !== "") return name;
  }
  throw bad('ref: must be an object naming the backend\'s snapshot, e.g. {"source-name": "<name>"}');
}

/** `POST /os-snapshot-manage` and (3.8) `POST /manageable_snapshots` (202): Cinder's manage existing. */
async function manageSnapshot(call: RestCall): Promise<RestReply> {
  const s = element(call.body, "snapshot");
  const volumeId = optionalString(s, "volume_id");
  if (!volumeId) throw bad("volume_id: is required");
  const row = await call.useCases.manageSnapshot(call.ctx, {
    volumeId,
    reference: referenceOf(s.ref),
    name: optionalString(s, "name") ?? "",
    description: optionalString(s, "description") ?? "",
    metadata: stringMap(s.metadata, "metadata"),
  });
  return { status: 202, body: { snapshot: snapshotView(row, call.view, false) } };
}

/**
 * The `<host>@<backend>` to list (Cinder's `host`, whose `#pool` names no more than the backend);
 * from 3.17 `cluster` instead, which Cinderblock has none of (services show `cluster: null`).
 */
function hostOf(call: RestCall): string {
  const cluster = atLeast(call.version, "3.17") ? call.query.get("cluster") || undefined : undefined;
  const host = call.query.get("host") || undefined;
  if (Boolean(cluster) === Boolean(host)) {
    throw bad(
      atLeast(call.version, "3.17")
        ? "host, cluster: one and only one of cluster and host must be set"
        : "host: is required",
    );
  }
  if (cluster)
    throw new CinderblockError(
      "NOT_FOUND",
      `cluster: no service is in cluster ${cluster} (Cinderblock has no clusters; list by host)`,
    );
  return (host ?? "").split("#")[0] ?? "";
}

/** The `name` of a `{"source-name": name}` marker (JSON, as cinderclient sends it), or the text itself. */
function markerOf(text: string): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null) {
      const values = Object.values(parsed as Record<string, unknown>);
      if (values.length === 1 && typeof values[0] === "string") return values[0];
    }
  } catch {
    // a plain reference
  }
  return text;
}

type SortKey = "reference" | "size";

/** Cinder's `sort=k[:dir],...` or `sort_key`/`sort_dir` over `reference` and `size` (default reference, desc). */
function sortsOf(query: URLSearchParams): Array<{ key: SortKey; dir: "asc" | "desc" }> {
  const pairs = sortPairs(query, "reference");
  const wrongKeys = pairs.map(([k]) => k).filter((k) => k !== "reference" && k !== "size");
  if (wrongKeys.length > 0) throw bad(`sort: invalid sort keys passed: ${wrongKeys.join(", ")} (reference, size)`);
  const wrongDirs = pairs.map(([, d]) => d).filter((d) => d !== "asc" && d !== "desc");
  if (wrongDirs.length > 0) throw bad(`sort: invalid sort dirs passed: ${wrongDirs.join(", ")} (asc, desc)`);
  return pairs.map(([key, dir]) => ({ key: key as SortKey, dir: dir as "asc" | "desc" }));
}

/** Cinder's paging of manageable entries (volume_utils.paginate_entries_list): sort, marker, offset, limit. */
function paginate(entries: HostManageable[], query: URLSearchParams): HostManageable[] {
  const sorts = sortsOf(query);
  const value = (m: HostManageable, key: SortKey) => (key === "size" ? m.sizeGb : m.reference);
  const sorted = [...entries].sort((a, b) => {
    for (const { key, dir } of sorts) {
      const [x, y] = [value(a, key), value(b, key)];
      if (x === y) continue;
      return (x < y ? -1 : 1) * (dir === "asc" ? 1 : -1);
    }
    return 0;
  });
  const limitText = query.get("limit");
  const limit = limitText === null ? 1000 : parseInteger(limitText, "limit");
  if (limit < 0) throw bad("limit: must be 0 or more");
  const offsetText = query.get("offset");
  const offset = offsetText === null ? 0 : parseInteger(offsetText, "offset");
  if (offset < 0) throw bad("offset: must be 0 or more");
  let start = 0;
  const marker = query.get("marker");
  if (marker) {
    const reference = markerOf(marker);
    const at = sorted.findIndex((m) => m.reference === reference);
    if (at < 0) throw bad(`marker not found: ${marker}`);
    start = at + 1;
  }
  return sorted.slice(start + offset, start + offset + Math.min(limit, 1000));
}

/** A manageable snapshot as cinder/api/views/manageable_snapshots.py shows it. */
function manageableView(m: HostManageable, detail: boolean) {
  const summary: Record<string, unknown> = {
    reference: { "source-name": m.reference },
    size: m.sizeGb,
    safe_to_manage: m.safeToManage,
    source_reference: m.sourceVolumeId ? { "source-id": m.sourceVolumeId } : null,
  };
  if (!detail) return summary;
  // NOTE: snapshots Cinderblock owns are not listed at all, so none has a cinder_id.
  return {
    ...summary,
    reason_not_safe: m.safeToManage ? null : m.reasonNotSafe || null,
    extra_info: null,
    cinder_id: null,
  };
}

async function listManageable(call: RestCall, detail: boolean): Promise<RestReply> {
  const found = await call.useCases.listManageableSnapshots(call.ctx, hostOf(call));
  return {
    status: 200,
    body: { "manageable-snapshots": paginate(found, call.query).map((m) => manageableView(m, detail)) },
  };
}

const manage = authorizeAs("ManageSnapshot");
const list = authorizeAs("ListManageableSnapshots");

/**
 * Manage existing snapshots: Cinder's `os-snapshot-manage` extension (any version) and v3's
 * `manageable_snapshots` (3.8); the snapshot action `os-unmanage` is with the snapshots' actions.
 */
export const manageableRoutes: Route[] = [
  { method: "POST", path: p("/os-snapshot-manage"), authorize: manage, handle: manageSnapshot },
  {
    method: "GET",
    path: p("/os-snapshot-manage"),
    authorize: list,
    handle: (call) => listManageable(call, false),
  },
  {
    method: "GET",
    path: p("/os-snapshot-manage/detail"),
    authorize: list,
    handle: (call) => listManageable(call, true),
  },
  { method: "POST", path: p("/manageable_snapshots"), authorize: since("3.8", manage), handle: manageSnapshot },
  {
    method: "GET",
    path: p("/manageable_snapshots"),
    authorize: since("3.8", list),
    handle: (call) => listManageable(call, false),
  },
  {
    method: "GET",
    path: p("/manageable_snapshots/detail"),
    authorize: since("3.8", list),
    handle: (call) => listManageable(call, true),
  },
];
