import { randomUUID } from "node:crypto";
import {
  associateQosSpecs,
  changeQosSpecsKeys,
  disassociateQosSpecs,
  type Executor,
  getQosSpecs,
  getVolumeTypeBy,
  insertQosSpecs,
  listQosSpecs,
  markQosSpecsDeleted,
  type QosSpecsRow,
  typesOfQosSpecs,
} from "@cinderblock/db";
import { CinderblockError } from "../errors.js";
import { isUniqueViolation } from "../idempotency.js";
import { validateId, validatePageSize } from "../validation.js";
import { committed, reportingRefusal } from "./notices.js";
import { namePage, readNameToken } from "./types.js";
import type { QosSpecsView, VolumeTypeDependencies, VolumeTypeUseCases } from "./use-cases.js";
import { validateQosSpecs, validateSpecKey, validateTypeName } from "./validation.js";

const notFound = (id: string) => new CinderblockError("NOT_FOUND", `qos specs ${id} not found`);

/** Cinder's qos_specs_manage controller. */
export function createQosSpecsUseCases(
  deps: VolumeTypeDependencies,
): Pick<
  VolumeTypeUseCases,
  | "createQosSpecs"
  | "getQosSpecs"
  | "listQosSpecs"
  | "setQosSpecsKeys"
  | "deleteQosSpecsKeys"
  | "deleteQosSpecs"
  | "associateQosSpecs"
  | "disassociateQosSpecs"
> {
  const { db, notifications } = deps;
  const view = async (row: QosSpecsRow, executor: Executor = db): Promise<QosSpecsView> => ({
    qos: row,
    volumeTypeIds: (await typesOfQosSpecs(executor, [row.id])).get(row.id) ?? [],
  });
  return {
    async createQosSpecs(_ctx, input) {
      const name = validateTypeName("name", input.name);
      const specs = validateQosSpecs(input.specs);
      const row = await reportingRefusal(
        deps,
        "qos_specs.create",
        () => ({ name }),
        () =>
          committed(deps, async (tx) => {
            const created = await insertQosSpecs(tx, { id: randomUUID(), name, consumer: input.consumer, specs }).catch(
              (error: unknown) => {
                if (isUniqueViolation(error, "qos_specs_name_idx")) {
                  throw new CinderblockError("ALREADY_EXISTS", `name: qos specs named ${JSON.stringify(name)} exist`);
                }
                throw error;
              },
            );
            // Cinder's `specs` is the request's, the consumer among them.
            await notifications.announce(
              tx,
              "INFO",
              "qos_specs.create",
              { name, created_at: created.createdAt.toISOString(), specs: { consumer: created.consumer, ...specs } },
              created.id,
            );
            return created;
          }),
      );
      return view(row);
    },

    async getQosSpecs(_ctx, rawId) {
      const id = validateId("id", rawId);
      const row = await getQosSpecs(db, id);
      if (!row) throw notFound(id);
      return view(row);
    },

    async listQosSpecs(_ctx, input) {
      const limit = validatePageSize(input.pageSize);
      const after = readNameToken(deps.pageTokens, input.pageToken);
      const page = namePage(await listQosSpecs(db, { after, limit: limit + 1 }), limit, deps.pageTokens);
      const types = await typesOfQosSpecs(
        db,
        page.items.map((q) => q.id),
      );
      return {
        items: page.items.map((qos) => ({ qos, volumeTypeIds: types.get(qos.id) ?? [] })),
        nextPageToken: page.nextPageToken,
      };
    },

    async setQosSpecsKeys(_ctx, rawId, specs) {
      const id = validateId("id", rawId);
      const valid = validateQosSpecs(specs);
      return reportingRefusal(
        deps,
        "qos_specs.update",
        () => ({ id }),
        () =>
          committed(deps, async (tx) => {
            const row = await changeQosSpecsKeys(tx, id, valid);
            if (!row) throw notFound(id);
            if (Object.keys(row.specs).length > 128) {
              throw new CinderblockError("INVALID_ARGUMENT", "specs: qos specs may have at most 128 keys");
            }
            await notifications.announce(tx, "INFO", "qos_specs.update", {
              id,
              created_at: row.createdAt.toISOString(),
              updated_at: row.updatedAt.toISOString(),
              specs: valid,
            });
            return view(row, tx);
          }),
      );
    },

    async deleteQosSpecsKeys(_ctx, rawId, keys) {
      const id = validateId("id", rawId);
      for (const key of keys) validateSpecKey("keys", key);
      return reportingRefusal(
        deps,
        "qos_specs.delete_keys",
        () => ({ id }),
        () =>
          committed(deps, async (tx) => {
            const row = await getQosSpecs(tx, id, { lock: "update" });
            if (!row) throw notFound(id);
            const missing = keys.find((key) => !(key in row.specs));
            if (missing !== undefined) {
              throw new CinderblockError("NOT_FOUND", `qos specs ${id} have no key ${missing}`);
            }
            const changed = await changeQosSpecsKeys(tx, id, {}, keys);
            if (!changed) throw notFound(id);
            await notifications.announce(tx, "INFO", "qos_specs.delete_keys", {
              id,
              created_at: changed.createdAt.toISOString(),
              updated_at: changed.updatedAt.toISOString(),
            });
            return view(changed, tx);
          }),
      );
    },

    async deleteQosSpecs(_ctx, rawId, force) {
      const id = validateId("id", rawId);
      await reportingRefusal(
        deps,
        "qos_specs.delete",
        () => ({ id }),
        () =>
          committed(deps, async (tx) => {
            const row = await getQosSpecs(tx, id, { lock: "update" });
            if (!row) throw notFound(id);
            const types = (await typesOfQosSpecs(tx, [id])).get(id) ?? [];
            if (types.length > 0 && !force) {
              throw new CinderblockError(
                "FAILED_PRECONDITION",
                `qos specs ${id} are associated with ${types.length} volume type(s); disassociate them or use force`,
              );
            }
            await markQosSpecsDeleted(tx, id);
            await notifications.announce(
              tx,
              "INFO",
              "qos_specs.delete",
              { id, created_at: row.createdAt.toISOString(), deleted_at: new Date().toISOString() },
              id,
            );
          }),
      );
    },

    async associateQosSpecs(_ctx, rawId, rawTypeId) {
      const id = validateId("id", rawId);
      const typeId = validateId("volume_type_id", rawTypeId);
      await reportingRefusal(
        deps,
        "qos_specs.associate",
        () => ({ id }),
        () =>
          committed(deps, async (tx) => {
            const row = await getQosSpecs(tx, id, { lock: "key share" });
            if (!row) throw notFound(id);
            const type = await getVolumeTypeBy(tx, { id: typeId });
            if (!type) throw new CinderblockError("NOT_FOUND", `volume type ${typeId} not found`);
            if (!(await associateQosSpecs(tx, id, typeId))) {
              throw new CinderblockError(
                "FAILED_PRECONDITION",
                `volume type ${typeId} is associated with other qos specs (${type.qosSpecsId}); disassociate them first`,
              );
            }
            await notifications.announce(tx, "INFO", "qos_specs.associate", {
              id,
              type_id: typeId,
              created_at: row.createdAt.toISOString(),
            });
          }),
      );
    },

    async disassociateQosSpecs(_ctx, rawId, rawTypeId) {
      const id = validateId("id", rawId);
      const typeId = validateId("volume_type_id", rawTypeId);
      await reportingRefusal(
        deps,
        "qos_specs.disassociate",
        () => ({ id }),
        () =>
          committed(deps, async (tx) => {
            const row = await getQosSpecs(tx, id, { lock: "key share" });
            if (!row) throw notFound(id);
            if (!(await disassociateQosSpecs(tx, id, typeId))) {
              throw new CinderblockError("NOT_FOUND", `volume type ${typeId} is not associated with qos specs ${id}`);
            }
            await notifications.announce(tx, "INFO", "qos_specs.disassociate", {
              id,
              type_id: typeId,
              created_at: row.createdAt.toISOString(),
            });
          }),
      );
    },
  };
}
