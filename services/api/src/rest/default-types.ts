import { CinderblockError } from "@cinderblock/domain";
import type { RestReply } from "./faults.js";
import { authorizeAs, p, type RestCall, type Route } from "./http.js";
import { element, optionalString } from "./input.js";
import { since } from "./since.js";

const target = (call: { params: Record<string, string> }) => ({ projectId: call.params.project ?? "" });

const defaultTypeView = (d: { projectId: string; volumeTypeId: string }) => ({
  project_id: d.projectId,
  volume_type_id: d.volumeTypeId,
});

/** `PUT /default-types/{project}`: `{"default_type": {"volume_type": <name or id>}}`; an unknown type is 400, as Cinder. */
async function setDefaultType(call: RestCall): Promise<RestReply> {
  const volumeType = optionalString(element(call.body, "default_type"), "volume_type");
  if (!volumeType) throw new CinderblockError("INVALID_ARGUMENT", "volume_type: is required");
  try {
    const set = await call.useCases.setDefaultVolumeType(call.ctx, call.params.project ?? "", volumeType);
    return { status: 200, body: { default_type: defaultTypeView(set) } };
  } catch (error) {
    if (error instanceof CinderblockError && error.code === "NOT_FOUND") {
      throw new CinderblockError("INVALID_ARGUMENT", error.message);
    }
    throw error;
  }
}

/** `GET /default-types/{project}`: the project's own default; 404 when it has none (the configured one is not shown). */
async function getDefaultType(call: RestCall): Promise<RestReply> {
  const projectId = call.params.project ?? "";
  const { type, projectOverride } = await call.useCases.getDefaultVolumeType(call.ctx, projectId);
  if (!projectOverride) {
    throw new CinderblockError("NOT_FOUND", `Default type for project ${projectId} not found.`);
  }
  return { status: 200, body: { default_type: defaultTypeView({ projectId, volumeTypeId: type.id }) } };
}

/** `DELETE /default-types/{project}` (204): unsetting a default the project does not have is no error, as in Cinder. */
async function unsetDefaultType(call: RestCall): Promise<RestReply> {
  try {
    await call.useCases.unsetDefaultVolumeType(call.ctx, call.params.project ?? "");
  } catch (error) {
    if (!(error instanceof CinderblockError && error.code === "NOT_FOUND")) throw error;
  }
  return { status: 204 };
}

/** Cinder's default-types API (3.62): the projects' own default volume types, over the configured one. */
export const defaultTypeRoutes: Route[] = [
  {
    method: "GET",
    path: p("/default-types"),
    authorize: since("3.62", authorizeAs("ListDefaultVolumeTypes")),
    handle: async (call) => ({
      status: 200,
      body: { default_types: (await call.useCases.listDefaultVolumeTypes(call.ctx)).map(defaultTypeView) },
    }),
  },
  {
    method: "GET",
    path: p("/default-types/{project}"),
    authorize: since("3.62", authorizeAs("GetDefaultVolumeType", target)),
    handle: getDefaultType,
  },
  {
    method: "PUT",
    path: p("/default-types/{project}"),
    authorize: since("3.62", authorizeAs("SetDefaultVolumeType", target)),
    handle: setDefaultType,
  },
  {
    method: "DELETE",
    path: p("/default-types/{project}"),
    authorize: since("3.62", authorizeAs("UnsetDefaultVolumeType", target)),
    handle: unsetDefaultType,
  },
];
