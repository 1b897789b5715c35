import {
  cursorOf,
  decodePageToken,
  encodePageToken,
  type ListQuery,
  type PageCursor,
  SORT_KEYS,
  type SortDir,
  type SortKey,
} from "@cinderblock/db";
import type { RequestContext } from "./context.js";
import { CinderblockError } from "./errors.js";
import { validatePageSize } from "./validation.js";

/** A page of rows and the token of the next page ("" when this is the last). */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

/** A list request as the api receives it. */
export interface ListInput {
  pageSize: number;
  pageToken: string;
  status?: string | undefined;
  name: string;
  metadata: Record<string, string>;
  sortKey: string;
  sortDir: string;
  allProjects: boolean;
}

/** Validates a list request into a query: sort, page size, token (which must match the sort), scope. */
export function listQuery(ctx: RequestContext, input: ListInput): ListQuery {
  const sortKey = (input.sortKey || "created_at") as SortKey;
  if (!SORT_KEYS.includes(sortKey)) {
    throw new CinderblockError("INVALID_ARGUMENT", `sort_key: must be one of ${SORT_KEYS.join(", ")}`);
  }
  const sortDir = (input.sortDir || "desc") as SortDir;
  if (sortDir !== "asc" && sortDir !== "desc")
    throw new CinderblockError("INVALID_ARGUMENT", "sort_dir: must be asc or desc");
  let after: PageCursor | undefined;
  if (input.pageToken) {
    after = decodePageToken(input.pageToken);
    if (!after) throw new CinderblockError("INVALID_ARGUMENT", "page_token: is not a token this service issued");
    if (after.sortKey !== sortKey || after.sortDir !== sortDir) {
      throw new CinderblockError("INVALID_ARGUMENT", "page_token: was issued for another sort");
    }
  }
  return {
    projectId: input.allProjects ? undefined : ctx.projectId,
    limit: validatePageSize(input.pageSize) + 1,
    sortKey,
    sortDir,
    after,
    status: input.status,
    name: input.name || undefined,
    metadata: input.metadata,
  };
}

/**
 * The first `query.limit - 1` rows as a page; the extra row a query fetches only tells whether
 * there is a next page, whose token is the last row's cursor (`size` is its sort value by size).
 */
export function toPage<T extends { createdAt: Date; id: string; name: string; status: string }>(
  rows: T[],
  query: ListQuery,
  size: (row: T) => number,
): Page<T> {
  const items = rows.slice(0, query.limit - 1);
  const last = items[items.length - 1];
  const more = rows.length >= query.limit && last;
  return {
    items,
    nextPageToken: more ? encodePageToken(cursorOf(last, size(last), query.sortKey, query.sortDir)) : "",
  };
}
