import { describe, expect, it } from "vitest";
import { decodePageToken, encodePageToken } from "./pagination.js";

describe("page tokens", () => {
  it("round-trips a cursor", () => {
    const cursor = { createdAt: new Date("2026-11-27T03:50:31.437Z"), id: "8c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f70" };
    expect(decodePageToken(encodePageToken(cursor))).toEqual(cursor);
  });

  it.each(["", "garbage", Buffer.from('["x","y"]').toString("base64url"), Buffer.from("[1,2]").toString("base64url")])(
    "refuses a token it did not issue: %s",
    (token) => {
      expect(decodePageToken(token)).toBeUndefined();
    },
  );
});
