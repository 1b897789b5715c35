/** Position of the last row of a page, ordered by (created_at desc, id desc). */
export interface PageCursor {
  createdAt: Date;
  id: string;
}

/** Encodes a cursor as an opaque, URL-safe page token. */
export function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt.toISOString(), cursor.id])).toString("base64url");
}

/** Decodes a page token; returns undefined for a token this service did not issue. */
export function decodePageToken(token: string): PageCursor | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (!Array.isArray(value) || value.length !== 2) return undefined;
    const [at, id] = value as unknown[];
    if (typeof at !== "string" || typeof id !== "string") return undefined;
    const createdAt = new Date(at);
    if (Number.isNaN(createdAt.getTime())) return undefined;
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
    return { createdAt, id };
  } catch {
    return undefined;
  }
}
