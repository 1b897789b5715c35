import { randomUUID } from "node:crypto";
import {
  createDb,
  type Db,
  type DbHandle,
  enqueueOutbox,
  getQuotaUsage,
  insertSnapshot,
  runMigrations,
  setQuotaLimit,
  updateVolumeStatus,
} from "@cinderblock/db";
import { createTestDatabase, rejectionOf, type TestDatabase, uniqueName } from "@cinderblock/testing";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RequestContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { createPageTokens } from "../pages.js";
import type { Announcer, Dispatcher } from "../ports.js";
import type { CreateVolumeInput } from "../validation.js";
import { createVolumeUseCase } from "../volumes/create.js";
import { frontEndQosSpecs, visibleExtraSpecs } from "./resolve.js";
import { createVolumeTypeUseCases, type VolumeTypeUseCases } from "./use-cases.js";

// Integration: volume types against the real PostgreSQL, with the volume create use case that
// resolves them.

let database: TestDatabase;
let handle: DbHandle;
let db: Db;
let types: VolumeTypeUseCases;
let createVolume: ReturnType<typeof createVolumeUseCase>;

/** Casts go nowhere here: these tests are about the rows. */
const scheduler = { createVolume: async () => {} } as unknown as Dispatcher;

/**
 * Writes each notification into the real outbox, in the caller's transaction, as JSON of what
 * the use case announced (the wire envelope is the bus's, tested there).
 */
const notifications: Announcer = {
  async announce(tx, priority, eventType, payload, key) {
    await enqueueOutbox(tx, {
      subject: `vt.notifications.${priority.toLowerCase()}.${eventType}`,
      msgId: key ? `${key}:${eventType}` : randomUUID(),
      payload: new TextEncoder().encode(JSON.stringify({ priority, eventType, payload })),
    });
  },
};

/** A notification as the outbox holds it. */
interface Announced {
  priority: "INFO" | "ERROR";
  eventType: string;
  payload: Record<string, unknown>;
}

/** What the use cases wrote into the outbox, in order, after `from` (an outbox id). */
async function outboxAfter(from: number): Promise<Announced[]> {
  const rows = await db.execute<{ payload: Uint8Array }>(
    sql`select payload from outbox where id > ${from} and subject like 'vt.notifications.%' order by id`,
  );
  return rows.map((r) => JSON.parse(new TextDecoder().decode(new Uint8Array(r.payload))) as Announced);
}

/** The outbox's last id: what a test reads after. */
async function outboxMark(): Promise<number> {
  const [row] = await db.execute<{ id: number }>(sql`select coalesce(max(id), 0)::int as id from outbox`);
  return Number(row?.id ?? 0);
}

const iso = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

const admin: RequestContext = { requestId: "r", projectId: "admins", userId: "root", roles: ["admin"], isAdmin: true };
const member = (projectId = uniqueName("p-")): RequestContext => ({
  requestId: "r",
  projectId,
  userId: "alice",
  roles: ["member"],
  isAdmin: false,
});

const volumeInput: CreateVolumeInput = {
  name: "vol",
  description: "",
  sizeGb: 2,
  volumeType: "",
  availabilityZone: "",
  bootable: false,
  imageMetadata: {},
  encryptionKeyId: "",
  metadata: {},
  clientRequestId: "",
  snapshotId: "",
  sourceVolumeId: "",
  multiattach: false,
  sameHost: [],
  differentHost: [],
};

const refusal = (promise: Promise<unknown>) => rejectionOf(promise, CinderblockError);

const newType = (patch: Partial<{ name: string; isPublic: boolean; extraSpecs: Record<string, string> }> = {}) =>
  types.createVolumeType(admin, {
    name: uniqueName("type-"),
    description: "",
    extraSpecs: {},
    ...patch,
  });

beforeAll(async () => {
  database = await createTestDatabase(runMigrations);
  handle = createDb({ url: database.url, max: 10 });
  db = handle.db;
  const deps = {
    db,
    pageTokens: createPageTokens("a test secret of at least 32 characters"),
    defaultVolumeType: "__DEFAULT__",
  };
  types = createVolumeTypeUseCases({ ...deps, notifications });
  createVolume = createVolumeUseCase({
    ...deps,
    scheduler,
    quota: { volumes: 10, snapshots: 10, gigabytes: 1000 },
    defaultAvailabilityZone: "nova",
    operationTimeoutSeconds: 60,
  });
});

afterAll(async () => {
  await handle?.close();
  await database?.drop();
});

describe("volume types", () => {
  it("the migrations create Cinder's __DEFAULT__ type, which a volume without a type gets", async () => {
    const c = member();
    const volume = await createVolume(c, volumeInput);
    const { type, projectOverride } = await types.getDefaultVolumeType(admin, c.projectId);
    expect(type.name).toBe("__DEFAULT__");
    expect(projectOverride).toBe(false);
    expect(volume).toMatchObject({ volumeType: "__DEFAULT__", volumeTypeId: type.id });
  });

  it("a volume names its type by name or id; an unknown one is NOT_FOUND naming volume_type", async () => {
    const gold = await newType({ extraSpecs: { volume_backend_name: "file" } });
    const c = member();
    expect(await createVolume(c, { ...volumeInput, volumeType: gold.name })).toMatchObject({ volumeTypeId: gold.id });
    expect(await createVolume(c, { ...volumeInput, volumeType: gold.id.toUpperCase() })).toMatchObject({
      volumeType: gold.name,
    });
    const unknown = await refusal(createVolume(c, { ...volumeInput, volumeType: "no-such-type" }));
    expect(unknown).toMatchObject({ code: "NOT_FOUND", message: 'volume_type: volume type "no-such-type" not found' });
  });

  it("a private type is usable and visible only with access (or by an admin)", async () => {
    const secret = await newType({ isPublic: false });
    const a = member();
    const b = member();
    await types.addVolumeTypeAccess(admin, secret.id, a.projectId);
    expect(await types.listVolumeTypeAccess(admin, secret.id)).toEqual([a.projectId]);
    expect((await createVolume(a, { ...volumeInput, volumeType: secret.id })).volumeTypeId).toBe(secret.id);
    expect((await refusal(createVolume(b, { ...volumeInput, volumeType: secret.id }))).code).toBe("NOT_FOUND");
    expect((await refusal(types.getVolumeType(b, secret.id))).message).toBe(`volume type ${secret.id} not found`);
    expect((await types.getVolumeType(a, secret.id)).id).toBe(secret.id);
    const listed = async (c: RequestContext) => {
      const ids: string[] = [];
      let pageToken = "";
      do {
        const page = await types.listVolumeTypes(c, { pageSize: 2, pageToken });
        ids.push(...page.items.map((t) => t.id));
        pageToken = page.nextPageToken;
      } while (pageToken);
      return ids;
    };
    expect(await listed(a)).toContain(secret.id);
    expect(await listed(b)).not.toContain(secret.id);
    expect(await listed(admin)).toContain(secret.id);
    await types.removeVolumeTypeAccess(admin, secret.id, a.projectId);
    expect((await refusal(createVolume(a, { ...volumeInput, volumeType: secret.name }))).code).toBe("NOT_FOUND");
  });

  it("a project's own default type wins over the configured one, until unset", async () => {
    const silver = await newType();
    const c = member();
    await types.setDefaultVolumeType(admin, c.projectId, silver.name);
    expect(await types.getDefaultVolumeType(admin, c.projectId)).toMatchObject({
      type: { id: silver.id },
      projectOverride: true,
    });
    expect((await createVolume(c, volumeInput)).volumeTypeId).toBe(silver.id);
    expect((await refusal(types.deleteVolumeType(admin, silver.id))).message).toMatch(/default of 1 project/);
    await types.unsetDefaultVolumeType(admin, c.projectId);
    expect((await createVolume(c, volumeInput)).volumeType).toBe("__DEFAULT__");
  });

  it("the configured default must exist", async () => {
    const other = createVolumeUseCase({
      db,
      scheduler,
      quota: { volumes: 10, snapshots: 10, gigabytes: 1000 },
      defaultAvailabilityZone: "nova",
      defaultVolumeType: "missing-default",
      operationTimeoutSeconds: 60,
    });
    expect(await refusal(other(member(), volumeInput))).toMatchObject({
      code: "FAILED_PRECONDITION",
      message: 'volume_type: the default volume type "missing-default" does not exist; ask an administrator',
    });
  });

  it("refuses deleting a type in use (naming the count) and the configured default; deletes an unused one", async () => {
    const used = await newType();
    const c = member();
    await createVolume(c, { ...volumeInput, volumeType: used.name });
    await createVolume(c, { ...volumeInput, volumeType: used.name });
    expect(await refusal(types.deleteVolumeType(admin, used.id))).toMatchObject({
      code: "FAILED_PRECONDITION",
      message: `volume type ${used.name} is in use by 2 volume(s) and 0 snapshot(s)`,
    });
    const byDefault = await types.getDefaultVolumeType(admin, "anyone");
    expect((await refusal(types.deleteVolumeType(admin, byDefault.type.id))).code).toBe("FAILED_PRECONDITION");
    const unused = await newType();
    await types.deleteVolumeType(admin, unused.id);
    expect((await refusal(types.getVolumeType(admin, unused.id))).code).toBe("NOT_FOUND");
    // Its name is free again.
    expect((await newType({ name: unused.name })).name).toBe(unused.name);
  });

  it("a volume from a snapshot keeps the snapshot's type; another is INVALID_ARGUMENT", async () => {
    const gold = await newType();
    const other = await newType();
    const c = member();
    const volume = await createVolume(c, { ...volumeInput, volumeType: gold.name });
    await updateVolumeStatus(db, volume.id, ["creating"], "available", { host: "h1@file" });
    const snapshot = await insertSnapshot(db, {
      id: randomUUID(),
      projectId: c.projectId,
      userId: "alice",
      volumeId: volume.id,
      status: "available",
      volumeSizeGb: volume.sizeGb,
      volumeType: volume.volumeType,
      volumeTypeId: volume.volumeTypeId,
    });
    const clone = await createVolume(c, { ...volumeInput, sizeGb: 0, snapshotId: snapshot.id });
    expect(clone).toMatchObject({ volumeTypeId: gold.id, volumeType: gold.name });
    const same = await createVolume(c, { ...volumeInput, sizeGb: 0, snapshotId: snapshot.id, volumeType: gold.id });
    expect(same.volumeTypeId).toBe(gold.id);
    const refused = await refusal(
      createVolume(c, { ...volumeInput, sizeGb: 0, snapshotId: snapshot.id, volumeType: other.name }),
    );
    expect(refused).toMatchObject({ code: "INVALID_ARGUMENT", message: expect.stringMatching(/^volume_type: /) });
    expect(await types.deleteVolumeType(admin, gold.id).catch((e: CinderblockError) => e.message)).toBe(
      `volume type ${gold.name} is in use by 3 volume(s) and 1 snapshot(s)`,
    );
  });

  it("renaming a type moves its per-type quota usage and limits, and its volumes' name", async () => {
    const t = await newType();
    const c = member();
    await setQuotaLimit(db, c.projectId, `volumes_${t.name}`, 5);
    await createVolume(c, { ...volumeInput, sizeGb: 3, volumeType: t.name });
    const renamed = `${t.name}-new`;
    await types.updateVolumeType(admin, t.id, { name: renamed });
    const usage = await getQuotaUsage(db, c.projectId);
    expect(usage).toMatchObject({ [`volumes_${renamed}`]: 1, [`gigabytes_${renamed}`]: 3 });
    expect(usage[`volumes_${t.name}`]).toBeUndefined();
    const [volume] = await db.execute<{ volume_type: string }>(
      sql`select volume_type from volumes where project_id = ${c.projectId}`,
    );
    expect(volume?.volume_type).toBe(renamed);
    const configured = (await types.getDefaultVolumeType(admin, "x")).type;
    expect((await refusal(types.updateVolumeType(admin, configured.id, { name: "x" }))).code).toBe(
      "FAILED_PRECONDITION",
    );
  });

  it("validates extra specs as Cinder (keys and values up to 255, keys of a safe charset)", async () => {
    const t = await newType();
    expect(await types.setVolumeTypeExtraSpecs(admin, t.id, { "capabilities:thin": "<is> True" })).toEqual({
      "capabilities:thin": "<is> True",
    });
    const bad: Record<string, string>[] = [
      { ["k".repeat(256)]: "v" },
      { k: "v".repeat(256) },
      { "bad/key": "v" },
      { k: "a\u0007" },
    ];
    for (const specs of bad) {
      expect((await refusal(types.setVolumeTypeExtraSpecs(admin, t.id, specs))).message).toMatch(/^extra_specs: /);
    }
    expect((await refusal(types.createVolumeType(admin, { name: " ", description: "", extraSpecs: {} }))).code).toBe(
      "INVALID_ARGUMENT",
    );
    expect((await refusal(types.createVolumeType(admin, { name: t.name, description: "", extraSpecs: {} }))).code).toBe(
      "ALREADY_EXISTS",
    );
    expect(await types.deleteVolumeTypeExtraSpec(admin, t.id, "capabilities:thin")).toEqual({});
  });

  it("QoS specs: associated with at most one per type, deleted while associated only with force", async () => {
    const t = await newType();
    const qos = await types.createQosSpecs(admin, {
      name: uniqueName("qos-"),
      consumer: "front-end",
      specs: { total_iops_sec: "500" },
    });
    const other = await types.createQosSpecs(admin, { name: uniqueName("qos-"), consumer: "back-end", specs: {} });
    await types.associateQosSpecs(admin, qos.qos.id, t.id);
    expect((await types.getQosSpecs(admin, qos.qos.id)).volumeTypeIds).toEqual([t.id]);
    expect((await refusal(types.associateQosSpecs(admin, other.qos.id, t.id))).code).toBe("FAILED_PRECONDITION");
    expect((await refusal(types.deleteQosSpecs(admin, qos.qos.id, false))).code).toBe("FAILED_PRECONDITION");
    expect(
      (await refusal(types.createQosSpecs(admin, { name: "x", consumer: "both", specs: { total_iops_sec: "many" } })))
        .message,
    ).toBe("specs: total_iops_sec must be a whole number");
    await types.deleteQosSpecs(admin, qos.qos.id, true);
    expect((await types.getVolumeType(admin, t.id)).qosSpecsId).toBeNull();
    await types.associateQosSpecs(admin, other.qos.id, t.id);
  });
});

describe("notifications (Cinder's types_manage, types_extra_specs, volume_type_access, qos_specs_manage)", () => {
  it("volume_type.create, .update and .delete carry the type (Cinder's `volume_types`), written with the change", async () => {
    const mark = await outboxMark();
    const t = await newType({ extraSpecs: { volume_backend_name: "file" } });
    const updated = await types.updateVolumeType(admin, t.id, { description: "fast" });
    await types.deleteVolumeType(admin, t.id);
    expect(await outboxAfter(mark)).toEqual([
      {
        priority: "INFO",
        eventType: "volume_type.create",
        payload: {
          volume_types: {
            id: t.id,
            name: t.name,
            description: "",
            is_public: true,
            extra_specs: { volume_backend_name: "file" },
            qos_specs_id: null,
            created_at: t.createdAt.toISOString(),
            updated_at: t.updatedAt.toISOString(),
            deleted: false,
            deleted_at: null,
          },
        },
      },
      {
        priority: "INFO",
        eventType: "volume_type.update",
        payload: {
          volume_types: expect.objectContaining({
            id: t.id,
            description: "fast",
            updated_at: updated.updatedAt.toISOString(),
          }),
        },
      },
      // As Cinder's: the type as read before the delete.
      {
        priority: "INFO",
        eventType: "volume_type.delete",
        payload: { volume_types: expect.objectContaining({ id: t.id, description: "fast", deleted: false }) },
      },
    ]);
  });

  it("a refused create, update or delete announces nothing but Cinder's ERROR of the same event type", async () => {
    const t = await newType();
    const c = member();
    await createVolume(c, { ...volumeInput, volumeType: t.name });
    const mark = await outboxMark();
    const taken = await refusal(types.createVolumeType(admin, { name: t.name, description: "d", extraSpecs: {} }));
    const missing = randomUUID();
    const gone = await refusal(types.updateVolumeType(admin, missing, { description: "x" }));
    const inUse = await refusal(types.deleteVolumeType(admin, t.id));
    // Refused before the operation (Cinder's request schema): no notification at all.
    await refusal(types.createVolumeType(admin, { name: " ", description: "", extraSpecs: {} }));
    expect(await outboxAfter(mark)).toEqual([
      {
        priority: "ERROR",
        eventType: "volume_type.create",
        payload: {
          volume_types: { name: t.name, description: "d", is_public: true, extra_specs: {} },
          name: null,
          id: null,
          error_message: taken.message,
        },
      },
      {
        priority: "ERROR",
        eventType: "volume_type.update",
        payload: { volume_types: null, name: null, id: missing, error_message: gone.message },
      },
      {
        priority: "ERROR",
        eventType: "volume_type.delete",
        payload: {
          volume_types: expect.objectContaining({ id: t.id, name: t.name }),
          name: null,
          id: null,
          error_message: inUse.message,
        },
      },
    ]);
    expect(inUse.message).toBe(`volume type ${t.name} is in use by 1 volume(s) and 0 snapshot(s)`);
  });

  it("extra specs and access changes announce Cinder's volume_type_extra_specs.* and volume_type_project.access.*", async () => {
    const t = await newType({ isPublic: false });
    const mark = await outboxMark();
    await types.setVolumeTypeExtraSpecs(admin, t.id, { "capabilities:thin": "<is> True" });
    await types.deleteVolumeTypeExtraSpec(admin, t.id, "capabilities:thin");
    await types.addVolumeTypeAccess(admin, t.id, "p1");
    await types.removeVolumeTypeAccess(admin, t.id, "p1");
    // Refused: the extra spec is not there (the transaction writes nothing).
    await refusal(types.deleteVolumeTypeExtraSpec(admin, t.id, "capabilities:thin"));
    const after = await types.getVolumeType(admin, t.id);
    const times = { created_at: t.createdAt.toISOString(), updated_at: iso };
    expect(await outboxAfter(mark)).toEqual([
      {
        priority: "INFO",
        eventType: "volume_type_extra_specs.create",
        payload: { type_id: t.id, specs: { "capabilities:thin": "<is> True" }, ...times },
      },
      {
        priority: "INFO",
        eventType: "volume_type_extra_specs.delete",
        payload: { type_id: t.id, id: "capabilities:thin", ...times, deleted_at: null },
      },
      {
        priority: "INFO",
        eventType: "volume_type_project.access.add",
        payload: { volume_type_id: t.id, project_id: "p1" },
      },
      {
        priority: "INFO",
        eventType: "volume_type_project.access.remove",
        payload: { volume_type_id: t.id, project_id: "p1" },
      },
    ]);
    const [, deleted] = await outboxAfter(mark);
    expect(deleted?.payload.updated_at).toBe(after.updatedAt.toISOString());
  });

  it("QoS specs announce Cinder's qos_specs.* (refusals as ERROR, with the id and the message)", async () => {
    const t = await newType();
    const name = uniqueName("qos-");
    const mark = await outboxMark();
    const qos = await types.createQosSpecs(admin, { name, consumer: "front-end", specs: { total_iops_sec: "500" } });
    const id = qos.qos.id;
    const createdAt = qos.qos.createdAt.toISOString();
    await types.setQosSpecsKeys(admin, id, { read_iops_sec: "100" });
    await types.deleteQosSpecsKeys(admin, id, ["read_iops_sec"]);
    await types.associateQosSpecs(admin, id, t.id);
    const inUse = await refusal(types.deleteQosSpecs(admin, id, false));
    const taken = await refusal(types.createQosSpecs(admin, { name, consumer: "back-end", specs: {} }));
    await types.disassociateQosSpecs(admin, id, t.id);
    const notAssociated = await refusal(types.disassociateQosSpecs(admin, id, t.id));
    await types.deleteQosSpecs(admin, id, false);
    expect(await outboxAfter(mark)).toEqual([
      {
        priority: "INFO",
        eventType: "qos_specs.create",
        payload: { name, created_at: createdAt, specs: { consumer: "front-end", total_iops_sec: "500" } },
      },
      {
        priority: "INFO",
        eventType: "qos_specs.update",
        payload: { id, created_at: createdAt, updated_at: iso, specs: { read_iops_sec: "100" } },
      },
      { priority: "INFO", eventType: "qos_specs.delete_keys", payload: { id, created_at: createdAt, updated_at: iso } },
      { priority: "INFO", eventType: "qos_specs.associate", payload: { id, type_id: t.id, created_at: createdAt } },
      { priority: "ERROR", eventType: "qos_specs.delete", payload: { id, error_message: inUse.message } },
      { priority: "ERROR", eventType: "qos_specs.create", payload: { name, error_message: taken.message } },
      { priority: "INFO", eventType: "qos_specs.disassociate", payload: { id, type_id: t.id, created_at: createdAt } },
      { priority: "ERROR", eventType: "qos_specs.disassociate", payload: { id, error_message: notAssociated.message } },
      { priority: "INFO", eventType: "qos_specs.delete", payload: { id, created_at: createdAt, deleted_at: iso } },
    ]);
    expect(taken.code).toBe("ALREADY_EXISTS");
  });
});

describe("what readers see", () => {
  it("members see only the user-visible extra specs", () => {
    const specs = { multiattach: "<is> True", volume_backend_name: "secret-backend" };
    expect(visibleExtraSpecs(false, specs)).toEqual({ multiattach: "<is> True" });
    expect(visibleExtraSpecs(true, specs)).toEqual(specs);
  });

  it("front-end QoS specs scale the per-GB limits by the size, within their minimum and maximum", () => {
    expect(frontEndQosSpecs({ consumer: "back-end", specs: { total_iops_sec: "1" } }, 10)).toBeUndefined();
    expect(frontEndQosSpecs(undefined, 10)).toBeUndefined();
    expect(
      frontEndQosSpecs(
        {
          consumer: "both",
          specs: {
            total_iops_sec_per_gb: "100",
            read_bytes_sec_per_gb: "10",
            read_bytes_sec_per_gb_min: "500",
            write_iops_sec_per_gb: "1000",
            write_iops_sec_max: "5000",
            other: "kept",
          },
        },
        10,
      ),
    ).toEqual({ total_iops_sec: "1000", read_bytes_sec: "500", write_iops_sec: "5000", other: "kept" });
  });
});
