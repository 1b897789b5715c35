import { cursorOf, type SortDir, type SortKey } from "@cinderblock/db";
import { CinderblockError, type ListInput, type PageTokens } from "@cinderblock/domain";
import { parseBoolean, parseInteger } from "./input.js";
import type { ViewContext } from "./views.js";

/** Cinder's sort keys that name one of ours under another name. */
const SORT_ALIASES: Record<string, string> = { display_name: "name" };

/**
 * The sort key and direction of `sort=k1:dir,k2` or `sort_key`/`sort_dir` (comma lists). The lists
 * are ordered by one key with the id after it in the same direction, so a second key is accepted
 * only when it is that id; any other is refused by name rather than ignored.
 */
function sortOf(query: URLSearchParams): { sortKey: string; sortDir: string } {
  const sort = query.get("sort");
  const pairs: Array<{ key: string; dir: string }> = [];
  if (sort) {
    for (const part of sort.split(",")) {
      const [key = "", dir = ""] = part.split(":");
      pairs.push({ key: key.trim(), dir: dir.trim() });
    }
  } else {
    const keys = (query.get("sort_key") ?? "").split(",").map((k) => k.trim());
    const dirs = (query.get("sort_dir") ?? "").split(",").map((d) => d.trim());
    keys.forEach((key, i) => {
      pairs.push({ key, dir: dirs[i] ?? "" });
    });
  }
  const [first = { key: "", dir: "" }, ...more] = pairs.filter((pair) => pair.key !== "");
  const sortKey = SORT_ALIASES[first.key] ?? first.key;
  // NOTE: Cinder's default direction is desc, for each key of `sort` and of `sort_key`.
  const sortDir = first.dir || (sort ? "desc" : "");
  for (const extra of more) {
    if (extra.key !== "id" || (extra.dir || "desc") !== (sortDir || "desc")) {
      throw new CinderblockError(
        "INVALID_ARGUMENT",
        `sort: more than one sort key is not supported by Cinderblock (${sortKey} is followed by the id in the same direction; ${extra.key}${extra.dir ? `:${extra.dir}` : ""} cannot be added)`,
      );
    }
  }
  return { sortKey, sortDir };
}

/**
 * The (key, direction) pairs of `sort=k1[:dir],k2` or of `sort_key`/`sort_dir` (comma lists), as
 * lists paged in memory read them: no key means `defaultKey`, no direction `desc` (in `sort_dir`
 * its first entry serves every key without one). Unchecked: the caller knows its keys.
 */
export function sortPairs(query: URLSearchParams, defaultKey: string): Array<[key: string, dir: string]> {
  const sort = query.get("sort");
  if (sort) {
    return sort.split(",").map((part) => {
      const [key = "", dir = ""] = part.split(":");
      return [key.trim(), dir.trim() || "desc"];
    });
  }
  const keys = (query.get("sort_key") || defaultKey).split(",").map((k) => k.trim());
  const dirs = (query.get("sort_dir") || "").split(",").map((d) => d.trim());
  return keys.map((key, i) => [key, dirs[i] || dirs[0] || "desc"]);
}

/** A Cinder list request (`limit`, `marker`, `sort`, `name`, `status`, `all_tenants`) as a page request. */
export interface CinderList {
  input: Omit<ListInput, "metadata"> & { metadata: Record<string, string> };
  marker: string | undefined;
  /** Cinder's `offset`: rows to skip before the page (the page asked for holds them, at most 1000 rows in all). */
  offset: number;
}

/** Reads the query of a Cinder list. */
export function cinderList(query: URLSearchParams, metadata: Record<string, string>): CinderList {
  const limitText = query.get("limit");
  const limit = limitText === null ? 1000 : parseInteger(limitText, "limit");
  if (limit < 0) throw new CinderblockError("INVALID_ARGUMENT", "limit: must be 0 or more");
  const { sortKey, sortDir } = sortOf(query);
  const offsetText = query.get("offset");
  const offset = offsetText === null ? 0 : parseInteger(offsetText, "offset");
  if (offset < 0) throw new CinderblockError("INVALID_ARGUMENT", "offset: must be 0 or more");
  return {
    input: {
      // NOTE: Cinder's limit 0 returns nothing; ours would mean the default, so ask for 1 and drop it.
      pageSize: Math.min(Math.max(limit, 1) + offset, 1000),
      pageToken: "",
      status: query.get("status") ?? undefined,
      name: query.get("name") ?? query.get("display_name") ?? "",
      metadata,
      sortKey,
      sortDir,
      allProjects: parseBoolean(query.get("all_tenants"), "all_tenants"),
    },
    marker: query.get("marker") ?? undefined,
    offset,
  };
}

/**
 * The page token that starts after the row `marker` names (Cinder's marker is the id of the last
 * row seen), signed like the gRPC lists' tokens.
 */
export function tokenAfter(
  row: { createdAt: Date; id: string; name: string; status: string },
  size: number,
  input: { sortKey: string; sortDir: string },
  tokens: PageTokens,
): string {
  const sortKey = (input.sortKey || "created_at") as SortKey;
  const sortDir = (input.sortDir || "desc") as SortDir;
  return tokens.issue(cursorOf(row, size, sortKey, sortDir));
}

/** The row a `marker` names; a marker that names nothing is 404, as Cinder's MarkerNotFound. */
export async function markerRow<T>(marker: string, get: (id: string) => Promise<T>): Promise<T> {
  try {
    return await get(marker);
  } catch (error) {
    if (error instanceof CinderblockError && (error.code === "NOT_FOUND" || error.code === "INVALID_ARGUMENT")) {
      throw new CinderblockError("NOT_FOUND", `Marker ${marker} could not be found.`);
    }
    throw error;
  }
}

/**
 * Cinder's `*_links`: a `next` link with the last row's id as marker, when there is a next page,
 * and also, as Cinder does, when the page is full (`limit` rows): then the next page may be empty.
 * It also carries the page's signed `page_token`, which the next request uses instead of looking
 * the marker up (an admin's all_tenants list has markers of other projects' rows).
 */
export function nextLinks(
  view: ViewContext,
  collection: string,
  query: URLSearchParams,
  page: { lastId: string | undefined; nextPageToken: string; rows: number },
) {
  const limit = query.get("limit");
  const full = limit !== null && Number(limit) > 0 && page.rows === Number(limit);
  if (page.lastId === undefined || (page.nextPageToken === "" && !full)) return undefined;
  const next = new URLSearchParams(query);
  next.set("marker", page.lastId);
  // The marker already stands after the skipped rows.
  next.delete("offset");
  if (page.nextPageToken) next.set("page_token", page.nextPageToken);
  else next.delete("page_token");
  return [{ rel: "next", href: `${view.baseUrl}/v3/${view.projectId}/${collection}?${next.toString()}` }];
}
