import { CinderblockError } from "@cinderblock/domain";
import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { toServiceError } from "./errors.js";

/** An error shaped as postgres.js makes them (a Node socket error, its own CONNECTION_* ones, or a PostgresError). */
function pgError(code: string, message = `${code}: something about postgres://cb:s3cret@db.internal:5432/x`) {
  return Object.assign(new Error(message), { code });
}

/** drizzle wraps every failed query (its SQL and parameters in the message) and keeps the driver's error as `cause`. */
function drizzleWrapped(cause: unknown) {
  return Object.assign(new Error("Failed query: select 1\nparams: "), { name: "DrizzleQueryError", cause });
}

describe("toServiceError: the database going away", () => {
  const unavailable = [
    "ECONNREFUSED",
    "ECONNRESET",
    "EPIPE",
    "ETIMEDOUT",
    "EHOSTUNREACH",
    "CONNECTION_CLOSED",
    "CONNECTION_ENDED",
    "CONNECTION_DESTROYED",
    "CONNECT_TIMEOUT",
    "08006", // connection_failure
    "08001", // sqlclient_unable_to_establish_sqlconnection
    "57P01", // admin_shutdown
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now (starting up, or in recovery)
    "53300", // too_many_connections
  ];
  for (const code of unavailable) {
    it(`answers ${code} with UNAVAILABLE, naming the database and nothing of its address`, () => {
      for (const error of [pgError(code), drizzleWrapped(pgError(code))]) {
        const { error: mapped, internal } = toServiceError(error, "r-1");
        expect(mapped.code).toBe(status.UNAVAILABLE);
        expect(mapped.details).toBe("the database is unavailable; try again");
        expect(internal).toBe(false);
      }
    });
  }

  it("sees through an AggregateError from a connect to several addresses", () => {
    const error = Object.assign(new AggregateError([pgError("ECONNREFUSED")], ""), { code: "ECONNREFUSED" });
    expect(toServiceError(drizzleWrapped(error), "r-1").error.code).toBe(status.UNAVAILABLE);
  });

  it("keeps other database errors INTERNAL", () => {
    for (const code of ["23505", "42P01", "22P02", "40P01"]) {
      const { error, internal } = toServiceError(drizzleWrapped(pgError(code)), "r-1");
      expect(error.code).toBe(status.INTERNAL);
      expect(error.details).toBe("internal error (request r-1)");
      expect(internal).toBe(true);
    }
  });

  it("keeps a CinderblockError's code and message", () => {
    const { error } = toServiceError(new CinderblockError("NOT_FOUND", "volume v1 not found"), "r-1");
    expect(error).toMatchObject({ code: status.NOT_FOUND, details: "volume v1 not found" });
  });
});

describe("toServiceError: anything else", () => {
  it("hides an unexpected error behind INTERNAL with the request id", () => {
    const mapped = toServiceError(new Error("password=hunter2 leaked"), "r-2");
    expect(mapped.internal).toBe(true);
    expect(mapped.error).toMatchObject({ code: status.INTERNAL, details: "internal error (request r-2)" });
  });
});
