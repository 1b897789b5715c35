import { describe, expect, it } from "vitest";
import { cursorOf, decodePageToken, encodePageToken } from "./pagination.js";

const id = "8c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f70";

describe("page tokens", () => {
  it("round-trips a cursor with its sort", () => {
    const cursor = { sortKey: "name" as const, sortDir: "asc" as const, value: "snap-7", id };
    expect(decodePageToken(encodePageToken(cursor))).toEqual(cursor);
  });

  it("takes a row's sort value from the sort key", () => {
    const row = { id, createdAt: new Date("2026-11-27T03:50:31.437Z"), name: "n", status: "available" };
    expect(cursorOf(row, 4, "created_at", "desc").value).toBe("2026-11-27T03:50:31.437Z");
    expect(cursorOf(row, 4, "size", "asc").value).toBe(4);
    expect(cursorOf(row, 4, "status", "asc").value).toBe("available");
    expect(cursorOf(row, 4, "id", "asc").value).toBe(id);
  });

  it.each([
    "",
    "garbage",
    Buffer.from('["name","asc","x","not-a-uuid"]').toString("base64url"),
    Buffer.from(`["color","asc","x","${id}"]`).toString("base64url"),
    Buffer.from(`["created_at","desc","yesterday","${id}"]`).toString("base64url"),
  ])("refuses a token it did not issue: %s", (token) => {
    expect(decodePageToken(token)).toBeUndefined();
  });
});
