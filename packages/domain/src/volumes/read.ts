import { getVolume, listVolumes } from "@cinderblock/db";
import { CinderblockError } from "../errors.js";
import { listQuery, toPage } from "../pages.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId } from "../validation.js";

/** Cinder's `volume/api.py` `get`: one of the project's volumes. */
export function getVolumeUseCase(deps: Pick<ApiDependencies, "db">): ApiUseCases["getVolume"] {
  return async (ctx, id) => {
    const row = await getVolume(deps.db, ctx.projectId, validateId("id", id));
    if (!row) throw new CinderblockError("NOT_FOUND", `volume ${id} not found`);
    return row;
  };
}

/** Cinder's `volume/api.py` `get_all`: a page of the project's (or, for an admin, all) volumes. */
export function listVolumesUseCase(deps: Pick<ApiDependencies, "db" | "pageTokens">): ApiUseCases["listVolumes"] {
  return async (ctx, input) => {
    const query = listQuery(ctx, input, deps.pageTokens);
    return toPage(await listVolumes(deps.db, query), query, (v) => v.sizeGb, deps.pageTokens);
  };
}
