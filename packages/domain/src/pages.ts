import { createHmac, timingSafeEqual } from "node:crypto";
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
import { validateMetadata, validateNameFilter, validatePageSize } from "./validation.js";

/**
 * Issues and reads page tokens authenticated by the server: `<cursor>.<HMAC-SHA256 of it>`, so a
 * client can only hand back a token this service (or a replica with the same secret) issued, and
 * never a cursor of its own making.
 */
export interface PageTokens {
  issue(cursor: PageCursor): string;
  /** The cursor of a token, or undefined when the token was not issued with this secret. */
  read(token: string): PageCursor | undefined;
}

/** Longest page token accepted (one cursor: a sort value of at most 255 characters and an id). */
const MAX_TOKEN_LENGTH = 2048;

/** Page tokens signed with `secret` (CINDERBLOCK_PAGE_TOKEN_SECRET, or random per process). */
export function createPageTokens(secret: Uint8Array | string): PageTokens {
  const mac = (payload: string) => createHmac("sha256", secret).update(payload).digest();
  return {
    issue(cursor) {
      const payload = encodePageToken(cursor);
      return `${payload}.${mac(payload).toString("base64url")}`;
    },
    read(token) {
      if (token.length > MAX_TOKEN_LENGTH) return undefined;
      const dot = token.lastIndexOf(".");
      if (dot < 0) return undefined;
      const payload = token.slice(0, dot);
      const given = Buffer.from(token.slice(dot + 1), "base64url");
      const expected = mac(payload);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
      return decodePageToken(payload);
    },
  };
}

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
export function listQuery(ctx: RequestContext, input: ListInput, tokens: PageTokens): ListQuery {
  const sortKey = (input.sortKey || "created_at") as SortKey;
  if (!SORT_KEYS.includes(sortKey)) {
    throw new CinderblockError("INVALID_ARGUMENT", `sort_key: must be one of ${SORT_KEYS.join(", ")}`);
  }
  const sortDir = (input.sortDir || "desc") as SortDir;
  if (sortDir !== "asc" && sortDir !== "desc")
    throw new CinderblockError("INVALID_ARGUMENT", "sort_dir: must be asc or desc");
  let after: PageCursor | undefined;
  if (input.pageToken) {
    after = tokens.read(input.pageToken);
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
    name: validateNameFilter(input.name) || undefined,
    metadata: validateMetadata(input.metadata),
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
  tokens: PageTokens,
): Page<T> {
  const items = rows.slice(0, query.limit - 1);
  const last = items[items.length - 1];
  const more = rows.length >= query.limit && last;
  return {
    items,
    nextPageToken: more ? tokens.issue(cursorOf(last, size(last), query.sortKey, query.sortDir)) : "",
  };
}
