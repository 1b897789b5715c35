import { stat } from "node:fs/promises";
import { join } from "node:path";
import { createDb, type DbHandle } from "@cinderblock/db";
import type { Snapshot, Volume } from "@cinderblock/proto";
import {
  type CallOutcome,
  checkInvariants,
  countByResource,
  createProjectClient,
  outcomeOf,
  type ProjectClient,
  readNotifications,
  type Stack,
  sleep,
  startStack,
  uniqueName,
  waitUntil,
  waitUntilSettled,
} from "@cinderblock/testing";
import { status } from "@grpc/grpc-js";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The conflict matrix: every pair of operations that contend for one volume or snapshot, fired at
// the same moment against the real api, scheduler and volume host (file driver), many times.
// Each call is either accepted, and then completes (its resource reaches its end status, never an
// error caused by the other call), or refused with FAILED_PRECONDITION naming what is in
// progress, and then changed nothing. Once a pair's trials have settled: no row in a transitional
// status, quota usage equal to a fresh count, storage equal to rows, and exactly one `.end`
// notification per finished operation (none for a refused one).

/** Trials per pair (CINDERBLOCK_CONFLICT_TRIALS; the default keeps the file near 3 minutes on 2 cores). */
const TRIALS = Number(process.env.CINDERBLOCK_CONFLICT_TRIALS ?? 20);
/** How long a pair's trials may take to settle before what is still in flight counts as stuck. */
const PAIR_SETTLE_MS = 15_000;
const GiB = 1024 ** 3;
/** What a refusal must name: the status (or state) that is in the way. */
const NAMES_WHAT_IS_IN_PROGRESS =
  /creating|deleting|deleted|extending|reverting|restoring|attaching|detaching|in-use|in use|busy|in progress|latest snapshot|is being \w+/;
/** The `.end` notifications counted per resource. */
const END_EVENTS = [
  "volume.create.end",
  "volume.delete.end",
  "volume.resize.end",
  "volume.revert.end",
  "volume.attach.end",
  "snapshot.create.end",
  "snapshot.delete.end",
] as const;

let stack: Stack;
let db: DbHandle;

beforeAll(async () => {
  stack = await startStack();
  db = createDb({ url: stack.database.url, max: 2 });
});

afterAll(async () => {
  await db?.close();
  await stack?.stop();
}, 120_000);

type Row = { id: string; status: string; status_reason: string; deleted: boolean };
type VolumeRowLite = Row & { size_gb: number };
type SnapshotRowLite = Row & { volume_id: string; volume_size_gb: number };

async function volumeRow(id: string): Promise<VolumeRowLite | undefined> {
  const [row] = await db.db.execute<VolumeRowLite>(
    sql`select id, status, status_reason, deleted, size_gb from volumes where id = ${id}`,
  );
  return row;
}

async function snapshotRow(id: string): Promise<SnapshotRowLite | undefined> {
  const [row] = await db.db.execute<SnapshotRowLite>(
    sql`select id, status, status_reason, deleted, volume_id, volume_size_gb from snapshots where id = ${id}`,
  );
  return row;
}

async function snapshotsOfVolume(volumeId: string): Promise<SnapshotRowLite[]> {
  return [
    ...(await db.db.execute<SnapshotRowLite>(
      sql`select id, status, status_reason, deleted, volume_id, volume_size_gb from snapshots where volume_id = ${volumeId}`,
    )),
  ];
}

async function volumesOfProject(projectId: string): Promise<VolumeRowLite[]> {
  return [
    ...(await db.db.execute<VolumeRowLite>(
      sql`select id, status, status_reason, deleted, size_gb from volumes where project_id = ${projectId}`,
    )),
  ];
}

async function attachmentsOf(volumeId: string): Promise<{ id: string; attach_status: string }[]> {
  return [
    ...(await db.db.execute<{ id: string; attach_status: string }>(
      sql`select id, attach_status from volume_attachments where volume_id = ${volumeId}`,
    )),
  ];
}

const describeRow = (row: Row | undefined) =>
  row ? `${row.deleted ? "deleted" : row.status}${row.status_reason ? ` (${row.status_reason})` : ""}` : "missing";

/** A volume of `sizeGb` in the client's project, once available. */
async function availableVolume(c: ProjectClient, request: Partial<Volume> & { snapshotId?: string } = {}) {
  const v = await c.createVolume({ name: "v", sizeGb: 1, ...request });
  const row = await waitUntil(
    () => volumeRow(v.id),
    (r) => r?.status !== "creating",
    30_000,
    25,
  );
  if (row?.status !== "available") throw new Error(`setup: volume ${v.id} is ${describeRow(row)}`);
  return v;
}

/** A snapshot of `volumeId`, once available. */
async function availableSnapshot(c: ProjectClient, volumeId: string): Promise<Snapshot> {
  const s = await c.createSnapshot({ volumeId, name: "s" });
  const row = await waitUntil(
    () => snapshotRow(s.id),
    (r) => r?.status !== "creating",
    30_000,
    25,
  );
  if (row?.status !== "available") throw new Error(`setup: snapshot ${s.id} is ${describeRow(row)}`);
  return s;
}

/**
 * Fires the conflicting `calls`, in one of three ways by trial: all at once; one of them (chosen
 * at random) up to 10 ms late (an api call takes a few milliseconds: a longer delay would mostly
 * serialize them); or one of them (chosen at random) first and the others the moment it is
 * answered, i.e. while the operation it started is in progress.
 */
async function fire<T extends unknown[]>(trial: number, calls: { [K in keyof T]: () => Promise<T[K]> }) {
  const mode = trial % 3;
  const chosen = Math.floor(Math.random() * calls.length);
  const run = (i: number) => outcomeOf((calls[i] as () => Promise<unknown>)());
  if (mode === 2) {
    const first = await run(chosen);
    const rest = await Promise.all(calls.map((_, i) => (i === chosen ? first : run(i))));
    return rest as { [K in keyof T]: CallOutcome<T[K]> };
  }
  const delay = Math.floor(Math.random() * 10);
  return (await Promise.all(
    calls.map(async (_, i) => {
      if (mode === 1 && i === chosen) await sleep(delay);
      return run(i);
    }),
  )) as { [K in keyof T]: CallOutcome<T[K]> };
}

/** One pair's record: per call its outcomes, per violation category the trials it happened in. */
class PairRecord {
  readonly calls = new Map<string, { accepted: number; refused: number; unknown: number; codes: Set<string> }>();
  readonly violations = new Map<string, string[]>();
  readonly projects: string[] = [];
  /** `<event> <resource id>` → how many `.end` notifications must exist. */
  readonly expectedEnds = new Map<string, number>();
  /** The resources whose `.end` notifications are counted. */
  readonly watched = new Set<string>();
  bothAccepted = 0;
  trials = 0;
  settleMs = 0;

  constructor(readonly name: string) {}

  count(call: string, o: CallOutcome<unknown>) {
    const c = this.calls.get(call) ?? { accepted: 0, refused: 0, unknown: 0, codes: new Set<string>() };
    c[o.kind]++;
    if (o.kind !== "accepted") c.codes.add(o.codeName);
    this.calls.set(call, c);
  }

  violate(category: string, detail: string) {
    const list = this.violations.get(category) ?? [];
    list.push(detail);
    this.violations.set(category, list);
  }

  expectEnd(event: (typeof END_EVENTS)[number], id: string, n = 1) {
    this.watched.add(id);
    this.expectedEnds.set(`${event} ${id}`, (this.expectedEnds.get(`${event} ${id}`) ?? 0) + n);
  }

  watch(...ids: string[]) {
    for (const id of ids) this.watched.add(id);
  }

  /**
   * A refused call must be FAILED_PRECONDITION naming what is in progress (NOT_FOUND only where
   * `goneOk`: the other call already removed the target).
   */
  judgeRefusal(call: string, o: CallOutcome<unknown>, goneOk = false) {
    if (o.kind === "accepted") return;
    if (o.kind === "unknown") {
      this.violate("no answer", `${call}: ${o.codeName} ${o.details}`);
      return;
    }
    if (goneOk && o.code === status.NOT_FOUND) return;
    if (o.code !== status.FAILED_PRECONDITION) {
      this.violate("refused with the wrong code", `${call}: ${o.codeName} ${o.details}`);
    } else if (!NAMES_WHAT_IS_IN_PROGRESS.test(o.details)) {
      this.violate("refusal does not name what is in progress", `${call}: ${o.details}`);
    }
  }

  print() {
    const calls = [...this.calls]
      .map(
        ([name, c]) =>
          `${name}: ${c.accepted} accepted, ${c.refused} refused${c.codes.size ? ` (${[...c.codes].join(", ")})` : ""}${
            c.unknown ? `, ${c.unknown} no answer` : ""
          }`,
      )
      .join("; ");
    const violations = [...this.violations].map(([k, v]) => `    ${k}: ${v.length} (e.g. ${v[0]})`).join("\n");
    console.log(
      `[conflicts] ${this.name}: ${this.trials} trials; ${calls}; both accepted in ${this.bothAccepted}; settled ${
        this.settleMs
      } ms after the last trial\n${violations ? `  violations:\n${violations}` : "  no violations"}`,
    );
  }
}

/**
 * Waits (briefly) until the trial's project has nothing in flight, so that trials do not overlap;
 * whether anything stays in flight is decided once for the whole pair (settlePair).
 */
async function settleTrial(projectId: string) {
  await waitUntilSettled({ databaseUrl: stack.database.url, dataDir: stack.dataDir, projects: [projectId] }, 3000);
}

/** Waits until the pair's projects have nothing in flight; what is still in flight then is stuck. */
async function settlePair(record: PairRecord) {
  const { settled, ms, report } = await waitUntilSettled(
    { databaseUrl: stack.database.url, dataDir: stack.dataDir, projects: record.projects },
    PAIR_SETTLE_MS,
  );
  record.settleMs = ms;
  if (!settled) {
    for (const line of report.transitional) record.violate("stuck in a transitional status", line);
    for (const line of report.pendingOperations) record.violate("operation never finished", line);
  }
}

/**
 * After a pair's trials: the invariants over its projects, and the `.end` notifications of every
 * watched resource against what the accepted calls lead to expect.
 */
async function checkPair(record: PairRecord) {
  const report = await checkInvariants({
    databaseUrl: stack.database.url,
    dataDir: stack.dataDir,
    projects: record.projects,
  });
  // Transitional rows and pending operations were counted per trial (settleTrial).
  for (const line of report.quota) record.violate("quota usage differs from a fresh count", line);
  for (const line of report.storage) record.violate("storage differs from rows", line);
  for (const line of report.strayFiles) record.violate("stray file", line);

  const counted = async () => {
    const counts = countByResource(await readNotifications(stack.nc, stack.prefix));
    const missing = [...record.expectedEnds].filter(([key, n]) => (counts.get(key) ?? 0) < n);
    return { counts, missing };
  };
  // The `.end` of an operation that finished may still be on its way through an outbox relay.
  const { counts } = await waitUntil(counted, (c) => c.missing.length === 0, 10_000, 200);
  for (const id of record.watched) {
    for (const event of END_EVENTS) {
      const key = `${event} ${id}`;
      const want = record.expectedEnds.get(key) ?? 0;
      const got = counts.get(key) ?? 0;
      if (got !== want) record.violate(`${event} count`, `${id}: ${got}, expected ${want}`);
    }
  }
  record.print();
  for (const [category, list] of record.violations) {
    expect.soft(list, `${record.name}: ${category}`).toEqual([]);
  }
}

/**
 * One trial: sets up, fires the conflicting calls, and returns the checks of their outcomes, which
 * run once the whole pair has settled.
 */
type Trial = (record: PairRecord, c: ProjectClient, i: number) => Promise<() => Promise<void>>;

/** Runs `trial` TRIALS times, each in a fresh project, settles, then checks every trial and the pair. */
async function runPair(name: string, trial: Trial) {
  const record = new PairRecord(name);
  const verifications: Array<() => Promise<void>> = [];
  for (let i = 0; i < TRIALS; i++) {
    const c = createProjectClient(stack.address, uniqueName("conflict-"));
    record.projects.push(c.projectId);
    try {
      verifications.push(await trial(record, c, i));
      await settleTrial(c.projectId);
      record.trials++;
    } finally {
      c.close();
    }
  }
  await settlePair(record);
  for (const verify of verifications) await verify();
  await checkPair(record);
}

describe("conflicting operations, fired together", () => {
  it("DeleteVolume(cascade) vs CreateSnapshot on the same volume", async () => {
    await runPair("DeleteVolume(cascade) vs CreateSnapshot", async (r, c, i) => {
      const v = await availableVolume(c);
      const s0 = await availableSnapshot(c, v.id);
      r.expectEnd("volume.create.end", v.id);
      r.expectEnd("snapshot.create.end", s0.id);
      const [del, snap] = await fire<[Volume, Snapshot]>(i, [
        () => c.deleteVolume(v.id, true),
        () => c.createSnapshot({ volumeId: v.id, name: "racing" }),
      ]);
      r.count("DeleteVolume(cascade)", del);
      r.count("CreateSnapshot", snap);
      if (del.kind === "accepted" && snap.kind === "accepted") r.bothAccepted++;
      return async () => {
        const vAfter = await volumeRow(v.id);
        const s0After = await snapshotRow(s0.id);
        if (del.kind === "accepted") {
          r.expectEnd("volume.delete.end", v.id);
          r.expectEnd("snapshot.delete.end", s0.id);
          if (!vAfter?.deleted)
            r.violate("accepted cascade delete did not delete the volume", `${v.id}: ${describeRow(vAfter)}`);
          if (!s0After?.deleted)
            r.violate("accepted cascade delete did not delete a snapshot", `${s0.id}: ${describeRow(s0After)}`);
        } else {
          r.judgeRefusal("DeleteVolume(cascade)", del);
          if (vAfter?.status !== "available")
            r.violate("refused delete changed the volume", `${v.id}: ${describeRow(vAfter)}`);
          if (s0After?.status !== "available")
            r.violate("refused delete changed a snapshot", `${s0.id}: ${describeRow(s0After)}`);
        }
        if (snap.kind === "accepted") {
          const s1 = snap.value;
          r.expectEnd("snapshot.create.end", s1.id);
          const s1After = await snapshotRow(s1.id);
          if (del.kind === "accepted") {
            // Both accepted: the snapshot must have been taken, then deleted with its volume.
            r.expectEnd("snapshot.delete.end", s1.id);
            if (!s1After?.deleted)
              r.violate(
                "snapshot accepted beside a cascade delete not taken then deleted",
                `${s1.id}: ${describeRow(s1After)}`,
              );
          } else if (s1After?.status !== "available") {
            r.violate("accepted snapshot did not become available", `${s1.id}: ${describeRow(s1After)}`);
          }
        } else {
          // NOT_FOUND only when the cascade had already removed the volume.
          r.judgeRefusal("CreateSnapshot", snap, del.kind === "accepted" && Boolean(vAfter?.deleted));
          const extra = (await snapshotsOfVolume(v.id)).filter((s) => s.id !== s0.id);
          if (extra.length > 0) r.violate("refused snapshot left a row", extra.map((s) => s.id).join(", "));
        }
      };
    });
  });

  it("CreateVolume from a snapshot vs DeleteSnapshot of that snapshot", async () => {
    await runPair("CreateVolume(from snapshot) vs DeleteSnapshot", async (r, c, i) => {
      const v = await availableVolume(c);
      const s = await availableSnapshot(c, v.id);
      r.expectEnd("volume.create.end", v.id);
      r.expectEnd("snapshot.create.end", s.id);
      const [clone, del] = await fire<[Volume, Snapshot]>(i, [
        () => c.createVolume({ name: "clone", snapshotId: s.id, sizeGb: 0 }),
        () => c.deleteSnapshot(s.id),
      ]);
      r.count("CreateVolume(from snapshot)", clone);
      r.count("DeleteSnapshot", del);
      if (clone.kind === "accepted" && del.kind === "accepted") r.bothAccepted++;
      return async () => {
        const sAfter = await snapshotRow(s.id);
        if (clone.kind === "accepted") {
          r.expectEnd("volume.create.end", clone.value.id);
          const cloneAfter = await volumeRow(clone.value.id);
          if (cloneAfter?.status !== "available")
            r.violate("accepted clone did not become available", `${clone.value.id}: ${describeRow(cloneAfter)}`);
        } else {
          // NOT_FOUND only when the delete had already removed the snapshot.
          r.judgeRefusal("CreateVolume(from snapshot)", clone, del.kind === "accepted" && Boolean(sAfter?.deleted));
          const extra = (await volumesOfProject(c.projectId)).filter((x) => x.id !== v.id);
          if (extra.length > 0)
            r.violate("refused clone left a row", extra.map((x) => `${x.id} ${describeRow(x)}`).join(", "));
        }
        if (del.kind === "accepted") {
          r.expectEnd("snapshot.delete.end", s.id);
          if (!sAfter?.deleted)
            r.violate("accepted snapshot delete did not delete it", `${s.id}: ${describeRow(sAfter)}`);
        } else {
          r.judgeRefusal("DeleteSnapshot", del);
          if (sAfter?.status !== "available")
            r.violate("refused delete changed the snapshot", `${s.id}: ${describeRow(sAfter)}`);
        }
      };
    });
  });

  it("CreateVolume cloning a volume vs DeleteVolume of that volume", async () => {
    await runPair("CreateVolume(clone) vs DeleteVolume", async (r, c, i) => {
      const v = await availableVolume(c);
      r.expectEnd("volume.create.end", v.id);
      const [clone, del] = await fire<[Volume, Volume]>(i, [
        () => c.createVolume({ name: "clone", sourceVolumeId: v.id, sizeGb: 0 }),
        () => c.deleteVolume(v.id, false),
      ]);
      r.count("CreateVolume(clone)", clone);
      r.count("DeleteVolume", del);
      if (clone.kind === "accepted" && del.kind === "accepted") r.bothAccepted++;
      return async () => {
        const vAfter = await volumeRow(v.id);
        if (clone.kind === "accepted") {
          r.expectEnd("volume.create.end", clone.value.id);
          const cloneAfter = await volumeRow(clone.value.id);
          if (cloneAfter?.status !== "available")
            r.violate("accepted clone did not become available", `${clone.value.id}: ${describeRow(cloneAfter)}`);
        } else {
          // NOT_FOUND only when the delete had already removed the source.
          r.judgeRefusal("CreateVolume(clone)", clone, del.kind === "accepted" && Boolean(vAfter?.deleted));
          const extra = (await volumesOfProject(c.projectId)).filter((x) => x.id !== v.id);
          if (extra.length > 0)
            r.violate("refused clone left a row", extra.map((x) => `${x.id} ${describeRow(x)}`).join(", "));
        }
        if (del.kind === "accepted") {
          r.expectEnd("volume.delete.end", v.id);
          if (!vAfter?.deleted)
            r.violate("accepted delete did not delete the source", `${v.id}: ${describeRow(vAfter)}`);
        } else {
          r.judgeRefusal("DeleteVolume", del);
          if (vAfter?.status !== "available")
            r.violate("refused delete changed the source", `${v.id}: ${describeRow(vAfter)}`);
        }
      };
    });
  });

  it("ExtendVolume vs CreateSnapshot", async () => {
    await runPair("ExtendVolume vs CreateSnapshot", async (r, c, i) => {
      const v = await availableVolume(c);
      r.expectEnd("volume.create.end", v.id);
      const [extend, snap] = await fire<[Volume, Snapshot]>(i, [
        () => c.extendVolume(v.id, 2),
        () => c.createSnapshot({ volumeId: v.id, name: "racing" }),
      ]);
      r.count("ExtendVolume", extend);
      r.count("CreateSnapshot", snap);
      if (extend.kind === "accepted" && snap.kind === "accepted") r.bothAccepted++;
      return async () => {
        const vAfter = await volumeRow(v.id);
        if (extend.kind === "accepted") {
          r.expectEnd("volume.resize.end", v.id);
          if (vAfter?.status !== "available" || vAfter.size_gb !== 2)
            r.violate("accepted extend did not complete", `${v.id}: ${describeRow(vAfter)}, ${vAfter?.size_gb} GiB`);
        } else {
          r.judgeRefusal("ExtendVolume", extend);
          if (vAfter?.status !== "available" || vAfter.size_gb !== 1)
            r.violate("refused extend changed the volume", `${v.id}: ${describeRow(vAfter)}, ${vAfter?.size_gb} GiB`);
        }
        if (snap.kind === "accepted") {
          r.expectEnd("snapshot.create.end", snap.value.id);
          const sAfter = await snapshotRow(snap.value.id);
          if (sAfter?.status !== "available") {
            r.violate("accepted snapshot did not become available", `${snap.value.id}: ${describeRow(sAfter)}`);
          } else {
            // The snapshot holds the volume as it was when the snapshot was accepted, at that size.
            const size = await stat(join(stack.dataDir, `snapshot-${sAfter.id}.img`)).then(
              (st) => st.size,
              () => -1,
            );
            if (size !== sAfter.volume_size_gb * GiB)
              r.violate(
                "snapshot image is not the size its row records",
                `${sAfter.id}: row ${sAfter.volume_size_gb} GiB, image ${size / GiB} GiB`,
              );
            // An extend must not be accepted between the snapshot's acceptance and its completion:
            // the volume host would grow the volume under the copy.
            const [overlap] = await db.db.execute<{ during: boolean }>(sql`
              select (s.created_at < o.created_at and o.created_at < s.updated_at) as during
                from snapshots s, operations o
               where s.id = ${sAfter.id} and o.resource_id = ${v.id} and o.kind = 'extend_volume'`);
            if (overlap?.during)
              r.violate(
                "extend accepted while a snapshot of the volume was creating",
                `volume ${v.id}, snapshot ${sAfter.id}`,
              );
          }
        } else {
          r.judgeRefusal("CreateSnapshot", snap);
          const extra = await snapshotsOfVolume(v.id);
          if (extra.length > 0) r.violate("refused snapshot left a row", extra.map((s) => s.id).join(", "));
        }
      };
    });
  });

  it("RevertVolumeToSnapshot vs CreateSnapshot", async () => {
    await runPair("RevertVolumeToSnapshot vs CreateSnapshot", async (r, c, i) => {
      const v = await availableVolume(c);
      const s = await availableSnapshot(c, v.id);
      r.expectEnd("volume.create.end", v.id);
      r.expectEnd("snapshot.create.end", s.id);
      const [revert, snap] = await fire<[Volume, Snapshot]>(i, [
        () => c.revertVolumeToSnapshot(v.id, s.id),
        () => c.createSnapshot({ volumeId: v.id, name: "racing" }),
      ]);
      r.count("RevertVolumeToSnapshot", revert);
      r.count("CreateSnapshot", snap);
      if (revert.kind === "accepted" && snap.kind === "accepted") r.bothAccepted++;
      return async () => {
        const vAfter = await volumeRow(v.id);
        const sAfter = await snapshotRow(s.id);
        if (revert.kind === "accepted") {
          r.expectEnd("volume.revert.end", v.id);
          if (vAfter?.status !== "available")
            r.violate("accepted revert did not complete", `volume ${v.id}: ${describeRow(vAfter)}`);
        } else {
          r.judgeRefusal("RevertVolumeToSnapshot", revert);
          if (vAfter?.status !== "available")
            r.violate("refused revert changed the volume", `${v.id}: ${describeRow(vAfter)}`);
        }
        if (sAfter?.status !== "available")
          r.violate("the snapshot reverted to is not available afterwards", `${s.id}: ${describeRow(sAfter)}`);
        if (snap.kind === "accepted") {
          r.expectEnd("snapshot.create.end", snap.value.id);
          const s1 = await snapshotRow(snap.value.id);
          if (s1?.status !== "available")
            r.violate("accepted snapshot did not become available", `${snap.value.id}: ${describeRow(s1)}`);
        } else {
          r.judgeRefusal("CreateSnapshot", snap);
          const extra = (await snapshotsOfVolume(v.id)).filter((x) => x.id !== s.id);
          if (extra.length > 0) r.violate("refused snapshot left a row", extra.map((x) => x.id).join(", "));
        }
      };
    });
  });

  it("8 concurrent AttachVolume on one volume that is not multiattach", async () => {
    await runPair("8 x AttachVolume (not multiattach)", async (r, c, i) => {
      const v = await availableVolume(c);
      r.expectEnd("volume.create.end", v.id);
      const outcomes = await fire(
        i,
        // NOTE: instance ids of this trial's own: an instance holding another project's volume
        // (an earlier trial's) may not be attached to (instance ownership).
        Array.from({ length: 8 }, (_, n) => () => c.attachVolume(v.id, `instance-${v.id.slice(0, 8)}-${n}`)),
      );
      for (const o of outcomes) r.count("AttachVolume", o);
      const accepted = outcomes.filter((o) => o.kind === "accepted").length;
      if (accepted > 1) r.bothAccepted++;
      return async () => {
        for (const o of outcomes) r.judgeRefusal("AttachVolume", o);
        if (accepted !== 1) r.violate("not exactly one attach accepted", `${v.id}: ${accepted} of 8 accepted`);
        r.expectEnd("volume.attach.end", v.id, Math.min(accepted, 1));
        const attachments = await attachmentsOf(v.id);
        if (attachments.length > 1)
          r.violate("more than one attachment on a volume that is not multiattach", `${v.id}: ${attachments.length}`);
        const vAfter = await volumeRow(v.id);
        const want = attachments.length > 0 ? "in-use" : "available";
        if (vAfter?.status !== want)
          r.violate("volume status does not match its attachments", `${v.id}: ${describeRow(vAfter)}`);
      };
    });
  });

  it("DeleteSnapshot vs DeleteVolume(cascade)", async () => {
    await runPair("DeleteSnapshot vs DeleteVolume(cascade)", async (r, c, i) => {
      const v = await availableVolume(c);
      const s = await availableSnapshot(c, v.id);
      r.expectEnd("volume.create.end", v.id);
      r.expectEnd("snapshot.create.end", s.id);
      const [delSnap, delVol] = await fire<[Snapshot, Volume]>(i, [
        () => c.deleteSnapshot(s.id),
        () => c.deleteVolume(v.id, true),
      ]);
      r.count("DeleteSnapshot", delSnap);
      r.count("DeleteVolume(cascade)", delVol);
      if (delSnap.kind === "accepted" && delVol.kind === "accepted") r.bothAccepted++;
      return async () => {
        const vAfter = await volumeRow(v.id);
        const sAfter = await snapshotRow(s.id);
        // One snapshot, deleted once, whichever call deleted it.
        if (delSnap.kind === "accepted" || delVol.kind === "accepted") r.expectEnd("snapshot.delete.end", s.id);
        if (delSnap.kind === "accepted" || delVol.kind === "accepted") {
          if (!sAfter?.deleted)
            r.violate("accepted delete did not delete the snapshot", `${s.id}: ${describeRow(sAfter)}`);
        }
        if (delVol.kind === "accepted") {
          r.expectEnd("volume.delete.end", v.id);
          if (!vAfter?.deleted)
            r.violate("accepted cascade delete did not delete the volume", `${v.id}: ${describeRow(vAfter)}`);
        } else {
          r.judgeRefusal("DeleteVolume(cascade)", delVol);
          if (vAfter?.status !== "available")
            r.violate("refused delete changed the volume", `${v.id}: ${describeRow(vAfter)}`);
        }
        if (delSnap.kind !== "accepted") {
          r.judgeRefusal("DeleteSnapshot", delSnap, delVol.kind === "accepted" && Boolean(sAfter?.deleted));
          if (delVol.kind !== "accepted" && sAfter?.status !== "available")
            r.violate("refused delete changed the snapshot", `${s.id}: ${describeRow(sAfter)}`);
        }
      };
    });
  });

  it("DeleteSnapshot vs DeleteSnapshot", async () => {
    await runPair("DeleteSnapshot vs DeleteSnapshot", async (r, c, i) => {
      const v = await availableVolume(c);
      const s = await availableSnapshot(c, v.id);
      r.expectEnd("volume.create.end", v.id);
      r.expectEnd("snapshot.create.end", s.id);
      const [a, b] = await fire<[Snapshot, Snapshot]>(i, [() => c.deleteSnapshot(s.id), () => c.deleteSnapshot(s.id)]);
      r.count("DeleteSnapshot", a);
      r.count("DeleteSnapshot", b);
      const accepted = [a, b].filter((o) => o.kind === "accepted").length;
      if (accepted === 2) r.bothAccepted++;
      return async () => {
        const sAfter = await snapshotRow(s.id);
        if (accepted !== 1) r.violate("not exactly one delete accepted", `${s.id}: ${accepted} of 2 accepted`);
        if (accepted > 0) r.expectEnd("snapshot.delete.end", s.id);
        for (const o of [a, b]) r.judgeRefusal("DeleteSnapshot", o, Boolean(sAfter?.deleted));
        if (accepted > 0 && !sAfter?.deleted)
          r.violate("accepted delete did not delete the snapshot", `${s.id}: ${describeRow(sAfter)}`);
      };
    });
  });
});
