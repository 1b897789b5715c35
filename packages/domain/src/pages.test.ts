import { describe, expect, it } from "vitest";
import { createPageTokens } from "./pages.js";

const cursor = {
  sortKey: "name" as const,
  sortDir: "asc" as const,
  value: "vol",
  id: "8c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f70",
};

describe("createPageTokens", () => {
  const tokens = createPageTokens("a page token secret of at least 32 characters");

  it("reads back the cursor of a token it issued", () => {
    expect(tokens.read(tokens.issue(cursor))).toEqual(cursor);
  });

  it("refuses a tampered token, a token of another secret, and a cursor made by a client", () => {
    const token = tokens.issue(cursor);
    const tampered = `${token.slice(0, 5)}${token[5] === "A" ? "B" : "A"}${token.slice(6)}`;
    expect(tokens.read(tampered)).toBeUndefined();
    expect(createPageTokens("another secret of at least 32 characters!!").read(token)).toBeUndefined();
    const forged = Buffer.from(JSON.stringify(["name", "asc", "\u0000", cursor.id])).toString("base64url");
    expect(tokens.read(forged)).toBeUndefined();
    expect(tokens.read(`${forged}.${token.split(".")[1]}`)).toBeUndefined();
  });
});
