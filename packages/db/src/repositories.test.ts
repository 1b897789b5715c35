import { randomUUID } from "node:crypto";
import { readdir } from "node:fs/promises";
import { TEST_DRIVERS, type TestDatabase } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db, type DbHandle } from "./client.js";
import { runMigrations } from "./migrate.js";
import { claimOverdueOperations, finishOperation, insertOperation } from "./operations.js";
import { drainOutbox, enqueueOutbox, enqueueOutboxMany, outboxBacklog } from "./outbox.js";
import { ensureQuotaRows, getQuotaUsage, type QuotaDelta, releaseQuota, reserveQuota, setQuotaLimit } from "./quota.js";
import { getServicesByHost, reportService } from "./services.js";
import { createSnapshotAtOnce, type SnapshotCreate } from "./snapshot-create.js";
import {
  getSnapshotElevated,
  getSnapshotsWithVolumesElevated,
  insertSnapshot,
  updateSnapshotStatus,
} from "./snapshots.js";
import type { VolumeRow } from "./types.js";
import { getVolumeElevated, insertVolume, updateVolumeStatus } from "./volumes.js";

// One suite, two servers (drizzle-orm's integration tests do the same): the real PostgreSQL the
// services run on, and PGlite served over TCP as `npm start` serves it when no PostgreSQL answers.
// Every repository call here is the one the services make; nothing is faked.
//
// Where PGlite differs: it is ONE backend session that every connection shares (see devstack's
// pglite-server.ts), so transactions run one after the other and a row lock never has anyone to
// skip. A case that needs two transactions open at once is skipped on PGlite, saying why.

const encoder = new TextEncoder();

describe.each(TEST_DRIVERS)("repositories on $name", (driver) => {
  const pglite = driver.name === "pglite";
  let database: TestDatabase;
  let handle: DbHandle;
  let db: Db;

  beforeAll(async () => {
    database = await driver.create(runMigrations);
    handle = createDb({ url: database.url, max: 4 });
    db = handle.db;
  }, 60_000);

  afterAll(async () => {
    await handle?.close();
    await database?.drop();
  });

  /** A fresh project, so cases never see each other's rows. */
  const project = () => `p-${randomUUID()}`;

  async function volume(projectId: string, extra: Partial<VolumeRow> = {}): Promise<VolumeRow> {
    return insertVolume(db, {
      id: randomUUID(),
      projectId,
      userId: "alice",
      status: "available",
      sizeGb: 1,
      availabilityZone: "nova",
      host: "vol1@file",
      ...extra,
    });
  }

  describe("migrations", () => {
    it("apply once when three processes migrate an empty database together", async () => {
      const empty = await driver.create(async () => {});
      try {
        await Promise.all([runMigrations(empty.url), runMigrations(empty.url), runMigrations(empty.url)]);
        const fresh = createDb({ url: empty.url, max: 1 });
        try {
          const [row] = await fresh.db.execute<{ n: number }>(
            sql`select count(*)::int as n from drizzle.__drizzle_migrations`,
          );
          const files = await readdir(new URL("../migrations/", import.meta.url));
          expect(row?.n).toBe(files.filter((f) => f.endsWith(".sql")).length);
        } finally {
          await fresh.close();
        }
      } finally {
        await empty.drop();
      }
    }, 60_000);
  });

  describe("batched reads (the volume host's and the scheduler's)", () => {
    it("read snapshots with their volumes, and backends, by many ids in one call", async () => {
      const p = project();
      const kept = await volume(p);
      const gone = await volume(p);
      const [a, b] = [randomUUID(), randomUUID()];
      await insertSnapshot(db, {
        id: a,
        projectId: p,
        userId: "u",
        volumeId: kept.id,
        status: "creating",
        volumeSizeGb: 1,
      });
      await insertSnapshot(db, {
        id: b,
        projectId: p,
        userId: "u",
        volumeId: gone.id,
        status: "creating",
        volumeSizeGb: 1,
      });
      await db.execute(sql`update volumes set deleted = true where id = ${gone.id}`);
      const unknown = randomUUID();
      const found = await getSnapshotsWithVolumesElevated(db, [a, b, unknown, a]);
      expect([...found.keys()].sort()).toEqual([a, b].sort());
      expect(found.get(a)?.volume?.id).toBe(kept.id);
      expect(found.get(b)).toMatchObject({ snapshot: { id: b, volumeId: gone.id }, volume: undefined });

      const host = `h-${randomUUID()}@file`;
      await reportService(db, { host, hostName: "h", backend: "file", availabilityZone: "nova", capabilities: {} });
      const services = await getServicesByHost(db, [host, "nobody@file"], 60);
      expect([...services.keys()]).toEqual([host]);
      expect(services.get(host)).toMatchObject({ host, up: true });
    });
  });

  describe("createDb", () => {
    /** The statements the pool's only connection has prepared, by text. */
    async function preparedTexts(on: Db): Promise<string[]> {
      const rows = await on.execute<{ statement: string }>(sql`select statement from pg_prepared_statements`);
      return rows.map((r) => r.statement);
    }

    it("runs queries as prepared statements, in transactions and savepoints too", async () => {
      const one = createDb({ url: database.url, max: 1 });
      try {
        const seen: number[] = [];
        for (const n of [1, 2]) {
          seen.push((await one.db.execute<{ n: number }>(sql`select ${n}::int as n`))[0]?.n ?? 0);
        }
        await one.db.transaction(async (tx) => {
          seen.push((await tx.execute<{ n: number }>(sql`select ${3}::int + 0 as n`))[0]?.n ?? 0);
          await tx.transaction(async (sp) => {
            seen.push((await sp.execute<{ n: number }>(sql`select ${4}::int + 1 as n`))[0]?.n ?? 0);
          });
        });
        expect(seen).toEqual([1, 2, 3, 5]);
        const texts = await preparedTexts(one.db);
        // One statement for both executions of the same text: the second reused it.
        expect(texts.filter((t) => t === "select $1::int as n")).toHaveLength(1);
        expect(texts).toContain("select $1::int + 0 as n");
        expect(texts).toContain("select $1::int + 1 as n");
      } finally {
        await one.close();
      }
    });

    it("prepares nothing when told not to", async () => {
      const one = createDb({ url: database.url, max: 1, prepare: false });
      try {
        await one.db.execute(sql`select ${1}::int as unprepared`);
        expect(await preparedTexts(one.db)).not.toContain("select $1::int as unprepared");
      } finally {
        await one.close();
      }
    });
  });

  describe("compare-and-swap status updates", () => {
    it("updateVolumeStatus changes a volume only from a status in the from-set", async () => {
      const v = await volume(project());
      expect(await updateVolumeStatus(db, v.id, ["creating"], "error", { statusReason: "no" })).toBeUndefined();
      expect((await getVolumeElevated(db, v.id))?.status).toBe("available");

      const changed = await updateVolumeStatus(db, v.id, ["available", "in-use"], "extending", { sizeGb: 2 });
      expect(changed).toMatchObject({ id: v.id, status: "extending", sizeGb: 2, statusReason: "" });
      expect(changed?.updatedAt.getTime()).toBeGreaterThanOrEqual(v.updatedAt.getTime());
      expect(await updateVolumeStatus(db, v.id, ["available"], "deleting")).toBeUndefined();
      expect((await getVolumeElevated(db, v.id))?.status).toBe("extending");
    });

    it("updateVolumeStatus lets exactly one of two racing changes from the same status win", async () => {
      const v = await volume(project());
      const outcomes = await Promise.all([
        updateVolumeStatus(db, v.id, ["available"], "extending"),
        updateVolumeStatus(db, v.id, ["available"], "deleting"),
      ]);
      const winners = outcomes.filter((row) => row !== undefined);
      expect(winners).toHaveLength(1);
      expect((await getVolumeElevated(db, v.id))?.status).toBe(winners[0]?.status);
    });

    it("updateSnapshotStatus changes a snapshot only from a status in the from-set", async () => {
      const projectId = project();
      const v = await volume(projectId);
      const s = await insertSnapshot(db, {
        id: randomUUID(),
        projectId,
        userId: "alice",
        volumeId: v.id,
        status: "creating",
        volumeSizeGb: 1,
      });
      expect(await updateSnapshotStatus(db, s.id, ["available", "error"], "deleting")).toBeUndefined();
      const failed = await updateSnapshotStatus(db, s.id, ["creating"], "error", {
        statusReason: "the storage backend failed to create the snapshot",
        statusDetail: "rbd: error opening pool volumes: (2) No such file or directory",
      });
      expect(failed).toMatchObject({ status: "error", statusDetail: expect.stringContaining("rbd: error") });
      // A new reason without a detail clears the old detail: it explained a failure that is over.
      const reasoned = await updateSnapshotStatus(db, s.id, ["error"], "error", { statusReason: "backend down" });
      expect(reasoned).toMatchObject({ status: "error", statusReason: "backend down", statusDetail: "" });
      // NOTE: both from `error` only: with from-sets that overlap the target (available → deleting)
      // both may win in turn (error → available → deleting), which is a valid serial order too.
      const racing = await Promise.all([
        updateSnapshotStatus(db, s.id, ["error"], "deleting"),
        updateSnapshotStatus(db, s.id, ["error"], "available", { progress: "100%" }),
      ]);
      expect(racing.filter((row) => row !== undefined)).toHaveLength(1);
      expect(["deleting", "available"]).toContain((await getSnapshotElevated(db, s.id))?.status);
    });
  });

  describe("quota", () => {
    const snapshots = (delta: number, defaultLimit = 3): QuotaDelta => ({ resource: "snapshots", delta, defaultLimit });
    const gigabytes = (delta: number, defaultLimit = 10): QuotaDelta => ({
      resource: "gigabytes",
      delta,
      defaultLimit,
    });

    it("reserves within the limits, creating a project's usage rows on its first reservation", async () => {
      const p = project();
      expect(await getQuotaUsage(db, p)).toEqual({});
      expect(await reserveQuota(db, p, [snapshots(1), gigabytes(4)])).toBeUndefined();
      expect(await reserveQuota(db, p, [snapshots(2), gigabytes(6)])).toBeUndefined();
      expect(await getQuotaUsage(db, p)).toEqual({ snapshots: 3, gigabytes: 10 });
    });

    it("refuses all of a reservation when one resource would pass its limit, naming the first in order", async () => {
      const p = project();
      await reserveQuota(db, p, [snapshots(2), gigabytes(9)]);
      // Both would pass; gigabytes comes first in resource order.
      expect(await reserveQuota(db, p, [snapshots(2), gigabytes(2)])).toEqual({
        resource: "gigabytes",
        inUse: 9,
        limit: 10,
        requested: 2,
      });
      expect(await reserveQuota(db, p, [snapshots(2), gigabytes(1)])).toMatchObject({ resource: "snapshots" });
      expect(await getQuotaUsage(db, p)).toEqual({ snapshots: 2, gigabytes: 9 });
    });

    it("uses the project's own limit over the default, and a negative limit means unlimited", async () => {
      const p = project();
      await setQuotaLimit(db, p, "snapshots", 1);
      expect(await reserveQuota(db, p, [snapshots(1, 100)])).toBeUndefined();
      expect(await reserveQuota(db, p, [snapshots(1, 100)])).toMatchObject({ resource: "snapshots", limit: 1 });
      await setQuotaLimit(db, p, "snapshots", -1);
      expect(await reserveQuota(db, p, [snapshots(1000, 100)])).toBeUndefined();
      expect(await getQuotaUsage(db, p)).toEqual({ snapshots: 1001 });
    });

    it("releases usage, never below zero", async () => {
      const p = project();
      await reserveQuota(db, p, [snapshots(2), gigabytes(5)]);
      await releaseQuota(db, p, [
        { resource: "snapshots", delta: 1 },
        { resource: "gigabytes", delta: 7 },
      ]);
      expect(await getQuotaUsage(db, p)).toEqual({ snapshots: 1, gigabytes: 0 });
    });

    it("grants concurrent reservations exactly up to the limit", async () => {
      const p = project();
      const outcomes = await Promise.all(
        Array.from({ length: 8 }, () =>
          db
            .transaction(async (tx) => {
              const refused = await reserveQuota(tx, p, [snapshots(1, 5), gigabytes(1, 100)]);
              if (refused) tx.rollback();
              return refused;
            })
            .catch(() => "refused" as const),
        ),
      );
      expect(outcomes.filter((o) => o === undefined)).toHaveLength(5);
      expect(await getQuotaUsage(db, p)).toEqual({ snapshots: 5, gigabytes: 5 });
    });
  });

  describe("outbox", () => {
    /** Drains everything (in batches of `limit`), recording what each publish got. */
    async function drainAll(limit = 100): Promise<string[]> {
      const published: string[] = [];
      let drained: number;
      do {
        drained = await drainOutbox(db, limit, async (m) => void published.push(...m.map((x) => x.msgId)));
      } while (drained > 0);
      return published;
    }

    it("hands messages to publish in the order they were enqueued, with payload and trace context", async () => {
      await drainAll();
      await enqueueOutbox(db, { subject: "s.a", msgId: "m1", payload: encoder.encode("one") });
      await enqueueOutboxMany(db, [
        { subject: "s.b", msgId: "m2", payload: encoder.encode("two"), traceContext: { traceparent: "00-t-s-01" } },
        { subject: "s.c", msgId: "m3", payload: new Uint8Array([0, 255, 7]) },
      ]);
      await enqueueOutboxMany(db, []);
      expect((await outboxBacklog(db)).messages).toBe(3);
      const batches: Array<Array<{ msgId: string; subject: string; payload: number[]; trace?: string }>> = [];
      let drained: number;
      do {
        drained = await drainOutbox(db, 2, async (messages) => {
          batches.push(
            messages.map((m) => ({
              msgId: m.msgId,
              subject: m.subject,
              payload: [...m.payload],
              trace: m.traceContext?.traceparent,
            })),
          );
        });
      } while (drained > 0);
      expect(batches).toEqual([
        [
          { msgId: "m1", subject: "s.a", payload: [...encoder.encode("one")], trace: undefined },
          { msgId: "m2", subject: "s.b", payload: [...encoder.encode("two")], trace: "00-t-s-01" },
        ],
        [{ msgId: "m3", subject: "s.c", payload: [0, 255, 7], trace: undefined }],
      ]);
      expect(await outboxBacklog(db)).toEqual({ messages: 0, oldestAgeSeconds: 0 });
    });

    it("takes only the subjects a relay may publish, when told, and leaves the rest", async () => {
      await drainAll();
      await enqueueOutboxMany(
        db,
        [
          "cb.v1.scheduler.create_volume",
          "cb.notifications.info.volume.create.end",
          "cb.v1.volume.vol1.delete_volume",
          "cb.notifications.error.x",
          "cbx.notifications.info.y",
        ].map((subject, i) => ({ subject, msgId: `f${i}`, payload: encoder.encode("x") })),
      );
      const taken: string[] = [];
      await drainOutbox(db, 10, async (m) => void taken.push(...m.map((x) => x.subject)), ["cb.notifications.>"]);
      expect(taken).toEqual(["cb.notifications.info.volume.create.end", "cb.notifications.error.x"]);
      await drainOutbox(db, 10, async (m) => void taken.push(...m.map((x) => x.subject)), ["cb.v1.*.create_volume"]);
      expect(taken.at(-1)).toBe("cb.v1.scheduler.create_volume");
      expect(await drainAll()).toEqual(["f2", "f4"]);
    });

    it("keeps the messages of a failed publish for the next pass", async () => {
      await drainAll();
      await enqueueOutboxMany(db, [
        { subject: "s", msgId: "k1", payload: encoder.encode("1") },
        { subject: "s", msgId: "k2", payload: encoder.encode("2") },
      ]);
      await expect(
        drainOutbox(db, 10, async () => {
          throw new Error("NATS away");
        }),
      ).rejects.toThrow("NATS away");
      expect(await drainAll()).toEqual(["k1", "k2"]);
    });

    it("publishes each message once when relays drain concurrently", async () => {
      await drainAll();
      const ids = Array.from({ length: 30 }, (_, i) => `c${i}`);
      await enqueueOutboxMany(
        db,
        ids.map((msgId) => ({ subject: "s", msgId, payload: encoder.encode(msgId) })),
      );
      const published = (await Promise.all([drainAll(4), drainAll(4), drainAll(4)])).flat();
      expect([...published].sort()).toEqual([...ids].sort());
    });
  });

  describe("operations", () => {
    async function operation(projectId: string, timeoutSeconds: number): Promise<string> {
      const id = randomUUID();
      await insertOperation(db, { id, kind: "create_snapshot", resourceId: randomUUID(), projectId, timeoutSeconds });
      return id;
    }

    /** Claims (in a transaction that ends at once) and keeps only this project's operations. */
    async function claimed(projectId: string): Promise<string[]> {
      return db.transaction(async (tx) =>
        (await claimOverdueOperations(tx, 1000)).filter((o) => o.projectId === projectId).map((o) => o.id),
      );
    }

    it("claims pending operations past their deadline, the most overdue first", async () => {
      const p = project();
      const later = await operation(p, -5);
      const first = await operation(p, -60);
      await operation(p, 300); // not due yet
      const done = await operation(p, -120);
      await finishOperation(db, done, "done");
      expect(await claimed(p)).toEqual([first, later]);
    });

    it.skipIf(pglite)(
      "skips operations another reconciler has claimed (not on PGlite: one session, so a second transaction waits instead of skipping)",
      async () => {
        const p = project();
        // Far more overdue than any other case's operations, so these are the first claimed.
        const ops = [await operation(p, -3000), await operation(p, -2000), await operation(p, -1000)];
        let release: () => void = () => {};
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        let firstClaimed: string[] = [];
        let signalClaimed: () => void = () => {};
        const claimedOnce = new Promise<void>((resolve) => {
          signalClaimed = resolve;
        });
        const first = db.transaction(async (tx) => {
          firstClaimed = (await claimOverdueOperations(tx, 2)).filter((o) => o.projectId === p).map((o) => o.id);
          signalClaimed();
          await held; // keeps the row locks while the second reconciler claims
        });
        await claimedOnce;
        const second = await claimed(p);
        release();
        await first;
        expect(firstClaimed).toEqual(ops.slice(0, 2));
        expect(second).toEqual([ops[2]]);
      },
    );
  });

  describe("createSnapshotAtOnce", () => {
    function create(v: VolumeRow, quota: QuotaDelta[]): SnapshotCreate {
      const id = randomUUID();
      return {
        volume: v,
        snapshot: {
          id,
          projectId: v.projectId,
          userId: "alice",
          volumeId: v.id,
          status: "creating",
          volumeSizeGb: v.sizeGb,
          name: "nightly",
          metadata: { k: "v" },
        },
        operation: {
          id: randomUUID(),
          kind: "create_snapshot",
          resourceId: id,
          projectId: v.projectId,
          timeoutSeconds: 60,
        },
        cast: { subject: "cast.create_snapshot", msgId: `create-${id}`, payload: encoder.encode(id) },
        quota,
      };
    }
    const quota = (snapshotLimit: number): QuotaDelta[] => [
      { resource: "snapshots", delta: 1, defaultLimit: snapshotLimit },
      { resource: "gigabytes", delta: 1, defaultLimit: -1 },
    ];

    /** What a create wrote: the snapshot row, its operation and its outbox message. */
    async function written(c: SnapshotCreate) {
      const [row] = await db.execute<{ snapshots: number; operations: number; casts: number }>(sql`
        select (select count(*)::int from snapshots where id = ${c.snapshot.id}) as snapshots,
               (select count(*)::int from operations where id = ${c.operation.id}) as operations,
               (select count(*)::int from outbox where msg_id = ${c.cast.msgId}) as casts`);
      return row;
    }

    it("writes nothing for a project without usage rows yet, and records it once they exist", async () => {
      const v = await volume(project());
      const c = create(v, quota(10));
      expect(await createSnapshotAtOnce(db, c)).toEqual({ missingQuotaRows: true });
      expect(await written(c)).toEqual({ snapshots: 0, operations: 0, casts: 0 });
      // What the api then does: the rows at 0, and the same statement again.
      await ensureQuotaRows(db, v.projectId, ["snapshots", "gigabytes"]);
      expect(await createSnapshotAtOnce(db, c)).toMatchObject({ created: { id: c.snapshot.id } });
      expect(await getQuotaUsage(db, v.projectId)).toEqual({ snapshots: 1, gigabytes: 1 });
    });

    it("writes the snapshot, its operation and its cast and takes the quota, in one statement", async () => {
      const v = await volume(project());
      await reserveQuota(db, v.projectId, quota(10)); // an earlier snapshot of the project
      const c = create(v, quota(10));
      const outcome = await createSnapshotAtOnce(db, c);
      expect(outcome).toMatchObject({
        created: { id: c.snapshot.id, volumeId: v.id, status: "creating", name: "nightly", metadata: { k: "v" } },
      });
      expect("created" in outcome && outcome.created.createdAt).toBeInstanceOf(Date);
      expect(await written(c)).toEqual({ snapshots: 1, operations: 1, casts: 1 });
      expect(await getQuotaUsage(db, v.projectId)).toEqual({ snapshots: 2, gigabytes: 2 });
    });

    it("writes nothing when the volume changed since the caller checked it", async () => {
      const v = await volume(project());
      await reserveQuota(db, v.projectId, quota(10));
      await updateVolumeStatus(db, v.id, ["available"], "extending");
      const c = create(v, quota(10));
      expect(await createSnapshotAtOnce(db, c)).toEqual({ volumeChanged: true });
      expect(await written(c)).toEqual({ snapshots: 0, operations: 0, casts: 0 });
      expect(await getQuotaUsage(db, v.projectId)).toEqual({ snapshots: 1, gigabytes: 1 });
    });

    it("writes nothing when the quota would be exceeded, and says which", async () => {
      const v = await volume(project());
      await reserveQuota(db, v.projectId, quota(1));
      const c = create(v, quota(1));
      expect(await createSnapshotAtOnce(db, c)).toEqual({
        refused: { resource: "snapshots", inUse: 1, limit: 1, requested: 1 },
      });
      expect(await written(c)).toEqual({ snapshots: 0, operations: 0, casts: 0 });
      expect(await getQuotaUsage(db, v.projectId)).toEqual({ snapshots: 1, gigabytes: 1 });
    });
  });
});
