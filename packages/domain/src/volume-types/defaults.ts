import { listProjectDefaultTypes, setProjectDefaultType, transaction, unsetProjectDefaultType } from "@cinderblock/db";
import { CinderblockError } from "../errors.js";
import { defaultTypeOf, findUsableType } from "./resolve.js";
import { targetProject } from "./types.js";
import type { VolumeTypeDependencies, VolumeTypeUseCases } from "./use-cases.js";

/** Cinder's default-types API (3.62): a project's own default type, over the configured one. */
export function createDefaultTypeUseCases(
  deps: VolumeTypeDependencies,
): Pick<
  VolumeTypeUseCases,
  "getDefaultVolumeType" | "setDefaultVolumeType" | "unsetDefaultVolumeType" | "listDefaultVolumeTypes"
> {
  const { db } = deps;
  return {
    async getDefaultVolumeType(ctx, rawProjectId) {
      return defaultTypeOf(db, targetProject(ctx, rawProjectId), deps.defaultVolumeType);
    },

    async setDefaultVolumeType(ctx, rawProjectId, ref) {
      const projectId = targetProject(ctx, rawProjectId);
      if (!ref) throw new CinderblockError("INVALID_ARGUMENT", "volume_type: must name a volume type");
      return transaction(db, async (tx) => {
        // The type must be one the project may use (its own access, not the administrator's).
        const type = await findUsableType(tx, { ...ctx, projectId, isAdmin: false, roles: [] }, ref, {
          lock: "key share",
        });
        if (!type) throw new CinderblockError("NOT_FOUND", `volume_type: volume type ${JSON.stringify(ref)} not found`);
        await setProjectDefaultType(tx, projectId, type.id);
        return { projectId, volumeTypeId: type.id };
      });
    },

    async unsetDefaultVolumeType(ctx, rawProjectId) {
      const projectId = targetProject(ctx, rawProjectId);
      if (!(await unsetProjectDefaultType(db, projectId))) {
        throw new CinderblockError("NOT_FOUND", `project ${projectId} has no default volume type of its own`);
      }
    },

    async listDefaultVolumeTypes() {
      return listProjectDefaultTypes(db);
    },
  };
}
