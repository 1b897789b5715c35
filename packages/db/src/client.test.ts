import { describe, expect, it } from "vitest";
import { cancellingQueuedStatements } from "./cancellation.js";
import { type Db, type Tx, transaction } from "./client.js";

const failure = (code: string) => Object.assign(new Error(code), { code });

/**
 * A stand-in for drizzle's `db.transaction`: runs the work, then "commits" by calling `commit`
 * (which may throw, as a COMMIT cut by a failover does). Counts the runs.
 */
function fakeDb(commit: (run: number) => void = () => {}) {
  let runs = 0;
  const db = {
    async transaction(work: (tx: Tx) => Promise<unknown>) {
      runs++;
      const result = await work({} as Tx);
      commit(runs);
      return result;
    },
  } as unknown as Db;
  return { db, runs: () => runs };
}

describe("transaction", () => {
  it("runs the work again when its connection broke before COMMIT (a failover)", async () => {
    const { db, runs } = fakeDb();
    const codes = ["CONNECTION_CLOSED", "ECONNREFUSED", "25006"];
    const result = await transaction(db, async () => {
      const code = codes.shift();
      if (code) throw new Error("Failed query", { cause: failure(code) });
      return "done";
    });
    expect(result).toBe("done");
    expect(runs()).toBe(4);
  });

  it("does not run it again when COMMIT itself failed: the outcome is unknown", async () => {
    const { db, runs } = fakeDb(() => {
      throw failure("CONNECTION_CLOSED");
    });
    await expect(transaction(db, async () => "done")).rejects.toMatchObject({ code: "CONNECTION_CLOSED" });
    expect(runs()).toBe(1);
  });

  it("runs it again after a deadlock, even one reported at COMMIT, up to the attempts", async () => {
    const { db, runs } = fakeDb((run) => {
      if (run === 1) throw failure("40P01");
    });
    await expect(transaction(db, async () => "done")).resolves.toBe("done");
    expect(runs()).toBe(2);
  });

  it("does not run it again for an error that is not the database going away", async () => {
    const { db, runs } = fakeDb();
    await expect(
      transaction(db, async () => {
        throw failure("23505");
      }),
    ).rejects.toMatchObject({ code: "23505" });
    expect(runs()).toBe(1);
  });

  it("gives up at once when the pool was closed, or the call it serves was cancelled", async () => {
    const ended = fakeDb();
    await expect(
      transaction(ended.db, async () => {
        throw failure("CONNECTION_ENDED");
      }),
    ).rejects.toMatchObject({ code: "CONNECTION_ENDED" });
    expect(ended.runs()).toBe(1);

    const cancelled = fakeDb();
    const controller = new AbortController();
    controller.abort();
    await expect(
      cancellingQueuedStatements(controller.signal, () =>
        transaction(cancelled.db, async () => {
          throw failure("ECONNRESET");
        }),
      ),
    ).rejects.toMatchObject({ code: "ECONNRESET" });
    expect(cancelled.runs()).toBe(1);
  });
});
