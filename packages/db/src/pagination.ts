import { type AnyColumn, asc, desc, type SQL, sql } from "drizzle-orm";

/** The orders a list can be sorted in (Cinder's sort keys that matter here). */
export const SORT_KEYS = ["created_at", "name", "status", "size", "id"] as const;
export type SortKey = (typeof SORT_KEYS)[number];
export type SortDir = "asc" | "desc";

/** Position of the last row of a page: its sort value and id, under one sort. */
export interface PageCursor {
  sortKey: SortKey;
  sortDir: SortDir;
  /** The row's sort value (an ISO timestamp for created_at). */
  value: string | number;
  id: string;
}

/** How to read one page of a list. */
export interface ListQuery {
  /** The project to list; undefined lists every project (admins only). */
  projectId: string | undefined;
  limit: number;
  sortKey: SortKey;
  sortDir: SortDir;
  after?: PageCursor | undefined;
  status?: string | undefined;
  name?: string | undefined;
  /** Rows whose metadata contains all these pairs. */
  metadata?: Record<string, string> | undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Encodes a cursor as an opaque, URL-safe page token. */
export function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify([cursor.sortKey, cursor.sortDir, cursor.value, cursor.id])).toString("base64url");
}

/** Decodes a page token; returns undefined for a token this service did not issue. */
export function decodePageToken(token: string): PageCursor | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (!Array.isArray(value) || value.length !== 4) return undefined;
    const [sortKey, sortDir, v, id] = value as unknown[];
    if (!SORT_KEYS.includes(sortKey as SortKey) || (sortDir !== "asc" && sortDir !== "desc")) return undefined;
    if ((typeof v !== "string" && typeof v !== "number") || typeof id !== "string" || !UUID.test(id)) return undefined;
    if (sortKey === "created_at" && Number.isNaN(Date.parse(String(v)))) return undefined;
    return { sortKey: sortKey as SortKey, sortDir, value: v, id };
  } catch {
    return undefined;
  }
}

/** The cursor of a row, for the token of the page after it. */
export function cursorOf(
  row: { id: string; createdAt: Date; name: string; status: string },
  size: number,
  sortKey: SortKey,
  sortDir: SortDir,
): PageCursor {
  const value =
    sortKey === "created_at"
      ? row.createdAt.toISOString()
      : sortKey === "size"
        ? size
        : sortKey === "name"
          ? row.name
          : sortKey === "id"
            ? row.id
            : row.status;
  return { sortKey, sortDir, value, id: row.id };
}

/**
 * Keyset pagination: ORDER BY (column, id) in one direction and "after the cursor" as a row
 * comparison, so a page costs an index range scan however deep it is, and rows inserted meanwhile
 * never shift later pages.
 */
export function keyset(
  column: AnyColumn,
  idColumn: AnyColumn,
  query: Pick<ListQuery, "sortKey" | "sortDir" | "after">,
): { after: SQL | undefined; orderBy: SQL[] } {
  const dir = query.sortDir === "asc" ? asc : desc;
  const orderBy = [dir(column), dir(idColumn)];
  if (!query.after) return { after: undefined, orderBy };
  const v =
    query.sortKey === "created_at"
      ? sql`${String(query.after.value)}::timestamptz`
      : query.sortKey === "size"
        ? sql`${Number(query.after.value)}::int`
        : query.sortKey === "id"
          ? sql`${String(query.after.value)}::uuid`
          : sql`${String(query.after.value)}::text`;
  const after =
    query.sortDir === "asc"
      ? sql`(${column}, ${idColumn}) > (${v}, ${query.after.id}::uuid)`
      : sql`(${column}, ${idColumn}) < (${v}, ${query.after.id}::uuid)`;
  return { after, orderBy };
}
