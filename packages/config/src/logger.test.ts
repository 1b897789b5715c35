import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { MAX_LOG_LINE } from "./log-bounds.js";
import { createLogger } from "./logger.js";

// What one log line may carry: no query parameters, bounded SQL, bounded strings and lines. The
// real database error through a real service is in test/src/limits.test.ts.

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });
  return { logger: createLogger({ service: "test", level: "info", destination }), lines };
}

/** An error shaped as drizzle throws it around postgres.js's (parameters in the message, stack and fields). */
function queryError(value: string): Error {
  const params = [value, "p1"];
  const sql = `insert into "volumes" ("name", "project_id") values ($1, $2)${" ".repeat(2000)}returning *`;
  const cause = Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), {
    query: sql,
    parameters: params,
    args: params,
    code: "22021",
  });
  const error = new Error(`Failed query: ${sql}\nparams: ${params.join(",")}`, { cause });
  return Object.assign(error, { name: "DrizzleQueryError", query: sql, params });
}

describe("log line bounds", () => {
  it("drops a failed query's parameters and bounds its SQL, keeping the database's words", () => {
    const { logger, lines } = capture();
    const secret = `SECRET-${"x".repeat(4 * 1024 * 1024)}`;
    logger.error({ err: queryError(secret), request_id: "r1" }, "internal error");
    expect(lines).toHaveLength(1);
    const line = lines[0] as string;
    expect(Buffer.byteLength(line)).toBeLessThanOrEqual(MAX_LOG_LINE);
    expect(line).not.toContain("SECRET-");
    const parsed = JSON.parse(line);
    expect(parsed.request_id).toBe("r1");
    expect(parsed.err.message).toMatch(/^Failed query: insert into "volumes"[\s\S]*params: \[omitted\]$/);
    expect(parsed.err.params).toBe("[omitted]");
    expect(parsed.err.cause.parameters).toBe("[omitted]");
    expect(parsed.err.cause.code).toBe("22021");
    expect(parsed.err.cause.message).toContain("invalid byte sequence");
    expect(parsed.err.query).toContain("truncated");
  });

  it("cuts a long string in any field and says so", () => {
    const { logger, lines } = capture();
    logger.info({ detail: "y".repeat(100_000) }, "z".repeat(100_000));
    const parsed = JSON.parse(lines[0] as string);
    expect(parsed.detail).toMatch(/…\[truncated 97952 of 100000 chars\]$/);
    expect(parsed.msg).toMatch(/…\[truncated/);
  });

  it("replaces a line still too long (many fields) by a notice keeping level, message and ids", () => {
    const { logger, lines } = capture();
    const many = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`f${i}`, "v".repeat(1000)]));
    logger.warn({ ...many, volume_id: "v1" }, "big");
    const line = lines[0] as string;
    expect(Buffer.byteLength(line)).toBeLessThanOrEqual(MAX_LOG_LINE);
    expect(JSON.parse(line)).toMatchObject({ level: 40, msg: "big", volume_id: "v1", log_truncated: true });
  });
});
