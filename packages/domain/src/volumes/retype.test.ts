import { createDb, type Db, type DbHandle, getQuotaUsage, runMigrations, setQuotaLimit } from "@cinderblock/db";
import { createTestDatabase, rejectionOf, type TestDatabase, uniqueName } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RequestContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { createPageTokens } from "../pages.js";
import type { Dispatcher } from "../ports.js";
import type { CreateVolumeInput } from "../validation.js";
import { createVolumeTypeUseCases, type VolumeTypeUseCases } from "../volume-types/use-cases.js";
import { createVolumeUseCase } from "./create.js";
import { retypeVolumeUseCase } from "./retype.js";
import { failRetype, finishRetype } from "./retype-outcome.js";

// Integration: RetypeVolume's checks, status and per-type quota moves against the real PostgreSQL,
// and the two ways a retype ends (finishRetype / failRetype, used by the scheduler, the volume
// host and the reconciler).

let database: TestDatabase;
let handle: DbHandle;
let db: Db;
let types: VolumeTypeUseCases;
let createVolume: ReturnType<typeof createVolumeUseCase>;
let retypeVolume: ReturnType<typeof retypeVolumeUseCase>;
const casts: Array<{ volumeId: string; newTypeId: string; migrationPolicy: string; previousStatus: string }> = [];

const scheduler = {
  createVolume: async () => {},
  retypeVolume: async (_tx: unknown, cast: (typeof casts)[number]) => {
    casts.push(cast);
  },
} as unknown as Dispatcher;

const admin: RequestContext = { requestId: "r", projectId: "admins", userId: "root", roles: ["admin"], isAdmin: true };
const member = (): RequestContext => ({
  requestId: "r",
  projectId: uniqueName("p-"),
  userId: "alice",
  roles: ["member"],
  isAdmin: false,
});

const volumeInput: CreateVolumeInput = {
  name: "vol",
  description: "",
  sizeGb: 3,
  volumeType: "",
  availabilityZone: "",
  bootable: false,
  imageMetadata: {},
  encryptionKeyId: "",
  metadata: {},
  clientRequestId: "",
  snapshotId: "",
  multiattach: false,
  sameHost: [],
  sourceVolumeId: "",
  differentHost: [],
};

const refusal = (promise: Promise<unknown>) => rejectionOf(promise, CinderblockError);

const newType = (patch: { isPublic?: boolean } = {}) =>
  types.createVolumeType(admin, { name: uniqueName("type-"), description: "", extraSpecs: {}, ...patch });

/** A volume of `typeName` placed on a backend and in `status`, as the volume host leaves it. */
async function placedVolume(ctx: RequestContext, typeName: string, status = "available") {
  const created = await createVolume(ctx, { ...volumeInput, volumeType: typeName });
  await db.execute(sql`update volumes set status = ${status}, host = 'vol1@file' where id = ${created.id}`);
  return created;
}

async function row(id: string) {
  const [r] = await db.execute<{
    status: string;
    volume_type: string;
    volume_type_id: string;
    migration_status: string | null;
  }>(sql`select status, volume_type, volume_type_id, migration_status from volumes where id = ${id}`);
  return r;
}

beforeAll(async () => {
  database = await createTestDatabase(runMigrations);
  handle = createDb({ url: database.url, max: 10 });
  db = handle.db;
  const deps = {
    db,
    pageTokens: createPageTokens("a test secret of at least 32 characters"),
    defaultVolumeType: "__DEFAULT__",
  };
  // The types' notifications are tested in volume-types.test.ts.
  types = createVolumeTypeUseCases({ ...deps, notifications: { announce: async () => {} } });
  createVolume = createVolumeUseCase({
    ...deps,
    scheduler,
    quota: { volumes: 10, snapshots: 10, gigabytes: 1000 },
    defaultAvailabilityZone: "nova",
    operationTimeoutSeconds: 60,
  });
  retypeVolume = retypeVolumeUseCase({ db, scheduler, operationTimeoutSeconds: 60 });
});

afterAll(async () => {
  await handle?.close();
  await database?.drop();
});

describe("RetypeVolume", () => {
  it("goes retyping, reserves the new type's quota, records the operation and casts to the scheduler", async () => {
    const [from, to] = [await newType(), await newType()];
    const ctx = member();
    const volume = await placedVolume(ctx, from.name);
    const retyping = await retypeVolume(ctx, { id: volume.id, newType: to.name, migrationPolicy: "" });
    expect(retyping.status).toBe("retyping");
    expect(await getQuotaUsage(db, ctx.projectId)).toMatchObject({
      volumes: 1,
      gigabytes: 3,
      [`volumes_${from.name}`]: 1,
      [`gigabytes_${from.name}`]: 3,
      [`volumes_${to.name}`]: 1,
      [`gigabytes_${to.name}`]: 3,
    });
    const [op] = await db.execute<{ kind: string; detail: Record<string, unknown> }>(
      sql`select kind, detail from operations where resource_id = ${volume.id} and kind = 'retype_volume'`,
    );
    expect(op).toEqual({
      kind: "retype_volume",
      detail: {
        newTypeId: to.id,
        newTypeName: to.name,
        oldTypeName: from.name,
        migrationPolicy: "never",
        previousStatus: "available",
        sizeGb: 3,
      },
    });
    expect(casts.at(-1)).toMatchObject({
      volumeId: volume.id,
      newTypeId: to.id,
      migrationPolicy: "never",
      previousStatus: "available",
    });
    // Retyping: no second retype (nor anything else that wants available).
    const again = await refusal(retypeVolume(ctx, { id: volume.id, newType: from.name, migrationPolicy: "" }));
    expect(again).toMatchObject({ code: "FAILED_PRECONDITION" });
    expect(again.message).toMatch(/status must be available or in-use to retype, but is retyping/);
  });

  it("done: the new type (name and id), the old type's quota released; failed: the old type kept, the new released", async () => {
    const [from, to] = [await newType(), await newType()];
    const ctx = member();
    const done = await placedVolume(ctx, from.name);
    await retypeVolume(ctx, { id: done.id, newType: to.id, migrationPolicy: "on-demand" });
    const finished = await finishRetype(db, done.id, {
      previousStatus: "available",
      newType: { id: to.id, name: to.name },
      oldTypeName: from.name,
      host: "vol2@file2",
    });
    expect(finished).toMatchObject({
      status: "available",
      volumeType: to.name,
      volumeTypeId: to.id,
      host: "vol2@file2",
    });
    expect(finished?.migrationStatus).toBe("success");
    // Ended once: a second end changes nothing.
    expect(
      await failRetype(db, done.id, { previousStatus: "available", newType: to, reason: "x", detail: "y" }),
    ).toBeUndefined();

    const failed = await placedVolume(ctx, from.name, "in-use");
    await retypeVolume(ctx, { id: failed.id, newType: to.name, migrationPolicy: "never" });
    const back = await failRetype(db, failed.id, {
      previousStatus: "in-use",
      newType: { id: to.id, name: to.name },
      reason: "no valid backend was found for the new type",
      detail: "vol1@file#file: reports volume_backend_name=file",
      migrated: true,
    });
    expect(back).toMatchObject({
      status: "in-use",
      volumeType: from.name,
      volumeTypeId: from.id,
      statusReason: "no valid backend was found for the new type",
      migrationStatus: "error",
    });
    // Exactly one volume of each type in use: the retyped one counts as `to`, the failed one as `from`.
    expect(await getQuotaUsage(db, ctx.projectId)).toMatchObject({
      volumes: 2,
      gigabytes: 6,
      [`volumes_${from.name}`]: 1,
      [`gigabytes_${from.name}`]: 3,
      [`volumes_${to.name}`]: 1,
      [`gigabytes_${to.name}`]: 3,
    });
  });

  it("refuses, naming the field or the status, and changes nothing", async () => {
    const [from, to] = [await newType(), await newType()];
    const secret = await newType({ isPublic: false });
    const ctx = member();
    const volume = await placedVolume(ctx, from.name);
    const cases: Array<[() => Promise<unknown>, string, RegExp]> = [
      [
        () => retypeVolume(ctx, { id: volume.id, newType: from.id, migrationPolicy: "" }),
        "INVALID_ARGUMENT",
        /^new_type: .* already of type/,
      ],
      [
        () => retypeVolume(ctx, { id: volume.id, newType: secret.name, migrationPolicy: "" }),
        "NOT_FOUND",
        /^new_type: volume type/,
      ],
      [
        () => retypeVolume(ctx, { id: volume.id, newType: "", migrationPolicy: "" }),
        "INVALID_ARGUMENT",
        /^new_type: required/,
      ],
      [
        () => retypeVolume(ctx, { id: volume.id, newType: to.name, migrationPolicy: "always" }),
        "INVALID_ARGUMENT",
        /^migration_policy: must be never or on-demand/,
      ],
      [
        () => retypeVolume(member(), { id: volume.id, newType: to.name, migrationPolicy: "" }),
        "NOT_FOUND",
        /not found/,
      ],
    ];
    for (const [call, code, message] of cases) {
      const error = await refusal(call());
      expect(error.code).toBe(code);
      expect(error.message).toMatch(message);
    }
    await setQuotaLimit(db, ctx.projectId, `gigabytes_${to.name}`, 2);
    const exhausted = await refusal(retypeVolume(ctx, { id: volume.id, newType: to.name, migrationPolicy: "" }));
    expect(exhausted).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    expect(exhausted.message).toMatch(new RegExp(`quota exceeded for gigabytes_${to.name}`));
    const inUse = await placedVolume(ctx, from.name, "in-use");
    const attached = await refusal(retypeVolume(ctx, { id: inUse.id, newType: to.name, migrationPolicy: "on-demand" }));
    expect(attached.code).toBe("FAILED_PRECONDITION");
    expect(attached.message).toMatch(/^migration_policy: .* is in-use/);
    expect(await row(volume.id)).toMatchObject({ status: "available", volume_type: from.name, migration_status: null });
    const usage = await getQuotaUsage(db, ctx.projectId);
    expect(usage[`volumes_${to.name}`] ?? 0).toBe(0);
    expect(usage[`gigabytes_${to.name}`] ?? 0).toBe(0);
  });
});
