import { randomUUID } from "node:crypto";
import {
  associateQosSpecs,
  changeQosSpecsKeys,
  disassociateQosSpecs,
  getQosSpecs,
  getVolumeTypeBy,
  insertQosSpecs,
  listQosSpecs,
  markQosSpecsDeleted,
  type QosSpecsRow,
  transaction,
  typesOfQosSpecs,
} from "@cinderblock/db";
import { CinderblockError } from "../errors.js";
import { isUniqueViolation } from "../idempotency.js";
import { validateId, validatePageSize } from "../validation.js";
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
  const { db } = deps;
  const view = async (row: QosSpecsRow): Promise<QosSpecsView> => ({
    qos: row,
    volumeTypeIds: (await typesOfQosSpecs(db, [row.id])).get(row.id) ?? [],
  });
  return {
    async createQosSpecs(_ctx, input) {
      const name = validateTypeName("name", input.name);
      const specs = validateQosSpecs(input.specs);
      try {
        return await view(await insertQosSpecs(db, { id: randomUUID(), name, consumer: input.consumer, specs }));
      } catch (error) {
        if (isUniqueViolation(error, "qos_specs_name_idx")) {
          throw new CinderblockError("ALREADY_EXISTS", `name: qos specs named ${JSON.stringify(name)} exist`);
        }
        throw error;
      }
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
      return transaction(db, async (tx) => {
        const row = await changeQosSpecsKeys(tx, id, valid);
        if (!row) throw notFound(id);
        if (Object.keys(row.specs).length > 128) {
          throw new CinderblockError("INVALID_ARGUMENT", "specs: qos specs may have at most 128 keys");
        }
        return view(row);
      });
    },

    async deleteQosSpecsKeys(_ctx, rawId, keys) {
      const id = validateId("id", rawId);
      for (const key of keys) validateSpecKey("keys", key);
      const row = await getQosSpecs(db, id);
      if (!row) throw notFound(id);
      const missing = keys.find((key) => !(key in row.specs));
      if (missing !== undefined) throw new CinderblockError("NOT_FOUND", `qos specs ${id} have no key ${missing}`);
      const changed = await changeQosSpecsKeys(db, id, {}, keys);
      if (!changed) throw notFound(id);
      return view(changed);
    },

    async deleteQosSpecs(_ctx, rawId, force) {
      const id = validateId("id", rawId);
      await transaction(db, async (tx) => {
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
      });
    },

    async associateQosSpecs(_ctx, rawId, rawTypeId) {
      const id = validateId("id", rawId);
      const typeId = validateId("volume_type_id", rawTypeId);
      await transaction(db, async (tx) => {
        if (!(await getQosSpecs(tx, id, { lock: "key share" }))) throw notFound(id);
        const type = await getVolumeTypeBy(tx, { id: typeId });
        if (!type) throw new CinderblockError("NOT_FOUND", `volume type ${typeId} not found`);
        if (!(await associateQosSpecs(tx, id, typeId))) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `volume type ${typeId} is associated with other qos specs (${type.qosSpecsId}); disassociate them first`,
          );
        }
      });
    },

    async disassociateQosSpecs(_ctx, rawId, rawTypeId) {
      const id = validateId("id", rawId);
      const typeId = validateId("volume_type_id", rawTypeId);
      if (!(await disassociateQosSpecs(db, id, typeId))) {
        throw new CinderblockError("NOT_FOUND", `volume type ${typeId} is not associated with qos specs ${id}`);
      }
    },
  };
}
