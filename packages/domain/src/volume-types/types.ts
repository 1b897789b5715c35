import { randomUUID } from "node:crypto";
import {
  addVolumeTypeAccess,
  countProjectsDefaultingTo,
  countVolumeTypeUsage,
  deleteVolumeTypeExtraSpec,
  type Executor,
  getVolumeTypeBy,
  insertVolumeType,
  listVolumeTypeAccess,
  listVolumeTypes,
  markVolumeTypeDeleted,
  type NameCursor,
  removeVolumeTypeAccess,
  renameVolumeTypeReferences,
  setVolumeTypeExtraSpecs,
  updateVolumeType,
  type VolumeTypeRow,
} from "@cinderblock/db";
import { isAdmin, type RequestContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { isUniqueViolation } from "../idempotency.js";
import type { Page, PageTokens } from "../pages.js";
import { validateId, validatePageSize } from "../validation.js";
import { committed, reportingRefusal, volumeTypeInfo } from "./notices.js";
import { mayUseType } from "./resolve.js";
import type { VolumeTypeDependencies, VolumeTypeUseCases } from "./use-cases.js";
import {
  validateDescription,
  validateProjectId,
  validateSpecKey,
  validateSpecs,
  validateTypeName,
} from "./validation.js";

const notFound = (id: string) => new CinderblockError("NOT_FOUND", `volume type ${id} not found`);

/** ALREADY_EXISTS for a name another undeleted type holds. */
function nameTaken(error: unknown, name: string): never {
  if (isUniqueViolation(error, "volume_types_name_idx")) {
    throw new CinderblockError("ALREADY_EXISTS", `name: a volume type named ${JSON.stringify(name)} exists`);
  }
  throw error;
}

/** Cinder's types_manage error payload: every field present, null where it does not apply. */
function typeError(fields: { volume_types?: Record<string, unknown>; id?: string }): Record<string, unknown> {
  return { volume_types: null, name: null, id: null, ...fields };
}

/** Reads a page token of a name-ordered list (ListVolumeTypes, ListQosSpecs). */
export function readNameToken(tokens: PageTokens, token: string): NameCursor | undefined {
  if (!token) return undefined;
  const cursor = tokens.read(token);
  if (cursor?.sortKey !== "name" || cursor.sortDir !== "asc") {
    throw new CinderblockError("INVALID_ARGUMENT", "page_token: is not a token this service issued");
  }
  return { name: String(cursor.value), id: cursor.id };
}

/** The first `limit` rows as a page of a name-ordered list (the query fetched one more). */
export function namePage<T extends { name: string; id: string }>(
  rows: T[],
  limit: number,
  tokens: PageTokens,
): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return {
    items,
    nextPageToken:
      rows.length > limit && last
        ? tokens.issue({ sortKey: "name", sortDir: "asc", value: last.name, id: last.id })
        : "",
  };
}

/** The type with this id as an administrator acts on it (any visibility); NOT_FOUND otherwise. */
async function typeForAdmin(deps: VolumeTypeDependencies, rawId: string): Promise<VolumeTypeRow> {
  const id = validateId("id", rawId);
  const type = await getVolumeTypeBy(deps.db, { id });
  if (!type) throw notFound(id);
  return type;
}

/** Cinder's types_manage, types, volume_type_access and types_extra_specs controllers. */
export function createTypeUseCases(
  deps: VolumeTypeDependencies,
): Pick<
  VolumeTypeUseCases,
  | "createVolumeType"
  | "getVolumeType"
  | "listVolumeTypes"
  | "updateVolumeType"
  | "deleteVolumeType"
  | "setVolumeTypeExtraSpecs"
  | "deleteVolumeTypeExtraSpec"
  | "addVolumeTypeAccess"
  | "removeVolumeTypeAccess"
  | "listVolumeTypeAccess"
> {
  const { db, notifications } = deps;

  /** Cinder's types_extra_specs notification: `fields` with the type's id and timestamps after the change. */
  async function announceExtraSpecs(
    tx: Executor,
    eventType: string,
    typeId: string,
    fields: Record<string, unknown>,
  ): Promise<void> {
    const type = await getVolumeTypeBy(tx, { id: typeId });
    if (!type) throw notFound(typeId);
    await notifications.announce(tx, "INFO", eventType, {
      type_id: typeId,
      ...fields,
      created_at: type.createdAt.toISOString(),
      updated_at: type.updatedAt.toISOString(),
    });
  }

  return {
    async createVolumeType(_ctx, input) {
      const name = validateTypeName("name", input.name);
      const description = validateDescription(input.description);
      const extraSpecs = validateSpecs("extra_specs", input.extraSpecs);
      const isPublic = input.isPublic ?? true;
      return reportingRefusal(
        deps,
        "volume_type.create",
        () => typeError({ volume_types: { name, description, is_public: isPublic, extra_specs: extraSpecs } }),
        () =>
          committed(deps, async (tx) => {
            const type = await insertVolumeType(tx, {
              id: randomUUID(),
              name,
              description,
              isPublic,
              extraSpecs,
            }).catch((error: unknown) => nameTaken(error, name));
            await notifications.announce(
              tx,
              "INFO",
              "volume_type.create",
              { volume_types: volumeTypeInfo(type) },
              type.id,
            );
            return type;
          }),
      );
    },

    async getVolumeType(ctx, rawId) {
      const id = validateId("id", rawId);
      const type = await getVolumeTypeBy(db, { id });
      if (!type || !(await mayUseType(db, ctx, type))) throw notFound(id);
      return type;
    },

    async listVolumeTypes(ctx, input) {
      const limit = validatePageSize(input.pageSize);
      const after = readNameToken(deps.pageTokens, input.pageToken);
      const rows = await listVolumeTypes(db, {
        projectId: isAdmin(ctx) ? undefined : ctx.projectId,
        after,
        limit: limit + 1,
      });
      return namePage(rows, limit, deps.pageTokens);
    },

    async updateVolumeType(_ctx, rawId, input) {
      const id = validateId("id", rawId);
      const name = input.name === undefined ? undefined : validateTypeName("name", input.name);
      const description = input.description === undefined ? undefined : validateDescription(input.description);
      const request = {
        ...(name === undefined ? {} : { name }),
        ...(description === undefined ? {} : { description }),
        ...(input.isPublic === undefined ? {} : { is_public: input.isPublic }),
      };
      return reportingRefusal(
        deps,
        "volume_type.update",
        (error) => typeError(error.code === "NOT_FOUND" ? { id } : { volume_types: request }),
        () =>
          committed(deps, async (tx) => {
            // NOTE: FOR UPDATE waits for the creates holding the type (key share) and keeps new ones
            // out, so no volume is recorded under the old name once its quota rows have moved.
            const type = await getVolumeTypeBy(tx, { id }, { lock: "update" });
            if (!type) throw notFound(id);
            const renamed = name !== undefined && name !== type.name;
            if (renamed && type.name === deps.defaultVolumeType) {
              throw new CinderblockError(
                "FAILED_PRECONDITION",
                `name: volume type ${type.name} is the configured default (CINDERBLOCK_DEFAULT_VOLUME_TYPE) and cannot be renamed`,
              );
            }
            const updated = await updateVolumeType(tx, id, {
              ...(name === undefined ? {} : { name }),
              ...(description === undefined ? {} : { description }),
              ...(input.isPublic === undefined ? {} : { isPublic: input.isPublic }),
            }).catch((error: unknown) => nameTaken(error, name ?? ""));
            if (!updated) throw notFound(id);
            if (renamed) await renameVolumeTypeReferences(tx, id, type.name, updated.name);
            await notifications.announce(tx, "INFO", "volume_type.update", { volume_types: volumeTypeInfo(updated) });
            return updated;
          }),
      );
    },

    async deleteVolumeType(_ctx, rawId) {
      const id = validateId("id", rawId);
      let found: VolumeTypeRow | undefined;
      await reportingRefusal(
        deps,
        "volume_type.delete",
        () => typeError(found ? { volume_types: volumeTypeInfo(found) } : { id }),
        () =>
          committed(deps, async (tx) => {
            const type = await getVolumeTypeBy(tx, { id }, { lock: "update" });
            if (!type) throw notFound(id);
            found = type;
            if (type.name === deps.defaultVolumeType) {
              throw new CinderblockError(
                "FAILED_PRECONDITION",
                `volume type ${type.name} is the configured default (CINDERBLOCK_DEFAULT_VOLUME_TYPE) and cannot be deleted`,
              );
            }
            const projects = await countProjectsDefaultingTo(tx, id);
            if (projects > 0) {
              throw new CinderblockError(
                "FAILED_PRECONDITION",
                `volume type ${type.name} is the default of ${projects} project(s); unset it first`,
              );
            }
            const used = await countVolumeTypeUsage(tx, id);
            if (used.volumes + used.snapshots > 0) {
              throw new CinderblockError(
                "FAILED_PRECONDITION",
                `volume type ${type.name} is in use by ${used.volumes} volume(s) and ${used.snapshots} snapshot(s)`,
              );
            }
            await markVolumeTypeDeleted(tx, id);
            // As Cinder's types_manage: the type as it was read before the delete.
            await notifications.announce(tx, "INFO", "volume_type.delete", { volume_types: volumeTypeInfo(type) }, id);
          }),
      );
    },

    async setVolumeTypeExtraSpecs(_ctx, rawId, specs) {
      const id = validateId("id", rawId);
      const extraSpecs = validateSpecs("extra_specs", specs);
      return committed(deps, async (tx) => {
        const result = await setVolumeTypeExtraSpecs(tx, id, extraSpecs);
        if (!result) throw notFound(id);
        // Merged past the bound: refused, and the transaction undoes the merge.
        if (Object.keys(result).length > 128) {
          throw new CinderblockError("INVALID_ARGUMENT", "extra_specs: a type may have at most 128");
        }
        await announceExtraSpecs(tx, "volume_type_extra_specs.create", id, { specs: extraSpecs });
        return result;
      });
    },

    async deleteVolumeTypeExtraSpec(_ctx, rawId, rawKey) {
      const type = await typeForAdmin(deps, rawId);
      const key = validateSpecKey("key", rawKey);
      return committed(deps, async (tx) => {
        const result = await deleteVolumeTypeExtraSpec(tx, type.id, key);
        if (!result) throw new CinderblockError("NOT_FOUND", `volume type ${type.id} has no extra spec ${key}`);
        // Cinder's carries the type's deleted_at too (null: the type is not deleted).
        await announceExtraSpecs(tx, "volume_type_extra_specs.delete", type.id, { id: key, deleted_at: null });
        return result;
      });
    },

    async addVolumeTypeAccess(_ctx, rawId, rawProjectId) {
      const type = await typeForAdmin(deps, rawId);
      const projectId = validateProjectId(rawProjectId);
      if (type.isPublic) {
        throw new CinderblockError("FAILED_PRECONDITION", `volume type ${type.id} is public: every project may use it`);
      }
      await committed(deps, async (tx) => {
        if (!(await addVolumeTypeAccess(tx, type.id, projectId))) {
          throw new CinderblockError(
            "ALREADY_EXISTS",
            `project ${projectId} already has access to volume type ${type.id}`,
          );
        }
        await notifications.announce(tx, "INFO", "volume_type_project.access.add", {
          volume_type_id: type.id,
          project_id: projectId,
        });
      });
    },

    async removeVolumeTypeAccess(_ctx, rawId, rawProjectId) {
      const type = await typeForAdmin(deps, rawId);
      const projectId = validateProjectId(rawProjectId);
      await committed(deps, async (tx) => {
        if (!(await removeVolumeTypeAccess(tx, type.id, projectId))) {
          throw new CinderblockError("NOT_FOUND", `project ${projectId} has no access to volume type ${type.id}`);
        }
        await notifications.announce(tx, "INFO", "volume_type_project.access.remove", {
          volume_type_id: type.id,
          project_id: projectId,
        });
      });
    },
    async listVolumeTypeAccess(_ctx, rawId) {
      const type = await typeForAdmin(deps, rawId);
      if (type.isPublic) {
        throw new CinderblockError("FAILED_PRECONDITION", `volume type ${type.id} is public: it has no access list`);
      }
      return listVolumeTypeAccess(db, type.id);
    },
  };
}

/** The caller's own project unless an administrator named another. */
export function targetProject(ctx: RequestContext, projectId: string): string {
  return projectId ? validateProjectId(projectId) : ctx.projectId;
}
