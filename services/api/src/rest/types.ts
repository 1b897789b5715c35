import type { VolumeTypeRow } from "@cinderblock/db";
import { CinderblockError } from "@cinderblock/domain";
import type { RestReply } from "./faults.js";
import { authorizeAs, p, type RestCall, type Route } from "./http.js";
import { element, optionalString, parseBoolean, stringMap } from "./input.js";
import { volumeTypeView } from "./views.js";

const bad = (message: string) => new CinderblockError("INVALID_ARGUMENT", message);

/** Every type the caller may see (Cinder's `GET /types` is not paged by default). */
async function allTypes(call: RestCall): Promise<VolumeTypeRow[]> {
  const rows: VolumeTypeRow[] = [];
  let pageToken = "";
  do {
    const page = await call.useCases.listVolumeTypes(call.ctx, { pageSize: 1000, pageToken });
    rows.push(...page.items);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return rows;
}

/** A type by id, or by name as Cinder also accepts (`GET /types/{name}`). */
async function typeOf(call: RestCall): Promise<VolumeTypeRow> {
  const idOrName = call.params.id ?? "";
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrName)) {
    return call.useCases.getVolumeType(call.ctx, idOrName);
  }
  const found = (await allTypes(call)).find((t) => t.name === idOrName);
  if (!found) throw new CinderblockError("NOT_FOUND", `Volume type ${idOrName} could not be found.`);
  return found;
}

const typeReply = (row: VolumeTypeRow, call: RestCall, withQos = true): RestReply => ({
  status: 200,
  body: { volume_type: volumeTypeView(row, call.view, withQos) },
});

async function typeAction(call: RestCall): Promise<RestReply> {
  const body = (call.body ?? {}) as Record<string, unknown>;
  const [name] = Object.keys(body);
  const arg = element(body, name ?? "action");
  const project = optionalString(arg, "project") ?? "";
  const type = await typeOf(call);
  if (name === "addProjectAccess") await call.useCases.addVolumeTypeAccess(call.ctx, type.id, project);
  else if (name === "removeProjectAccess") await call.useCases.removeVolumeTypeAccess(call.ctx, type.id, project);
  else throw bad(`There is no such action: ${name}`);
  return { status: 202 };
}

/** Volume types, their extra specs and access. */
export const typeRoutes: Route[] = [
  {
    method: "GET",
    path: p("/types"),
    authorize: authorizeAs("ListVolumeTypes"),
    handle: async (call) => ({
      status: 200,
      body: { volume_types: (await allTypes(call)).map((t) => volumeTypeView(t, call.view)) },
    }),
  },
  {
    method: "GET",
    path: p("/types/default"),
    authorize: authorizeAs("GetDefaultVolumeType"),
    handle: async (call) => typeReply((await call.useCases.getDefaultVolumeType(call.ctx, "")).type, call),
  },
  {
    method: "GET",
    path: p("/types/{id}"),
    authorize: authorizeAs("GetVolumeType"),
    handle: async (c) => typeReply(await typeOf(c), c),
  },
  {
    method: "POST",
    path: p("/types"),
    authorize: authorizeAs("CreateVolumeType"),
    handle: async (call) => {
      const t = element(call.body, "volume_type");
      const isPublic = t["os-volume-type-access:is_public"] ?? t.is_public;
      const row = await call.useCases.createVolumeType(call.ctx, {
        name: optionalString(t, "name") ?? "",
        description: optionalString(t, "description") ?? "",
        isPublic: isPublic === undefined ? undefined : parseBoolean(isPublic, "os-volume-type-access:is_public"),
        extraSpecs: stringMap(t.extra_specs, "extra_specs"),
      });
      return typeReply(row, call, false);
    },
  },
  {
    method: "PUT",
    path: p("/types/{id}"),
    authorize: authorizeAs("UpdateVolumeType"),
    handle: async (call) => {
      const t = element(call.body, "volume_type");
      const type = await typeOf(call);
      const isPublic = t.is_public;
      const row = await call.useCases.updateVolumeType(call.ctx, type.id, {
        name: optionalString(t, "name"),
        description: optionalString(t, "description"),
        isPublic: isPublic === undefined ? undefined : parseBoolean(isPublic, "is_public"),
      });
      return typeReply(row, call, false);
    },
  },
  {
    method: "DELETE",
    path: p("/types/{id}"),
    authorize: authorizeAs("DeleteVolumeType"),
    handle: async (call) => {
      await call.useCases.deleteVolumeType(call.ctx, (await typeOf(call)).id);
      return { status: 202 };
    },
  },
  {
    method: "GET",
    path: p("/types/{id}/extra_specs"),
    authorize: authorizeAs("GetVolumeType"),
    handle: async (call) => ({
      status: 200,
      body: { extra_specs: volumeTypeView(await typeOf(call), call.view).extra_specs },
    }),
  },
  {
    method: "POST",
    path: p("/types/{id}/extra_specs"),
    authorize: authorizeAs("SetVolumeTypeExtraSpecs"),
    handle: async (call) => {
      const specs = stringMap(element(call.body, "extra_specs"), "extra_specs");
      const all = await call.useCases.setVolumeTypeExtraSpecs(call.ctx, (await typeOf(call)).id, specs);
      const given = Object.fromEntries(Object.keys(specs).map((k) => [k, all[k] ?? specs[k]]));
      return { status: 200, body: { extra_specs: given } };
    },
  },
  {
    method: "GET",
    path: p("/types/{id}/extra_specs/{key}"),
    authorize: authorizeAs("GetVolumeType"),
    handle: async (call) => {
      const key = call.params.key ?? "";
      const specs = volumeTypeView(await typeOf(call), call.view).extra_specs as Record<string, string>;
      if (!Object.hasOwn(specs, key)) {
        throw new CinderblockError("NOT_FOUND", `Volume Type ${call.params.id} has no extra specs with key ${key}.`);
      }
      return { status: 200, body: { [key]: specs[key] } };
    },
  },
  {
    method: "PUT",
    path: p("/types/{id}/extra_specs/{key}"),
    authorize: authorizeAs("SetVolumeTypeExtraSpecs"),
    handle: async (call) => {
      const key = call.params.key ?? "";
      const given = stringMap(call.body, "body");
      if (Object.keys(given).length !== 1) throw bad("Request body contains too many items.");
      if (!Object.hasOwn(given, key)) throw bad("Request body and URI mismatch");
      await call.useCases.setVolumeTypeExtraSpecs(call.ctx, (await typeOf(call)).id, given);
      return { status: 200, body: given };
    },
  },
  {
    method: "DELETE",
    path: p("/types/{id}/extra_specs/{key}"),
    authorize: authorizeAs("DeleteVolumeTypeExtraSpec"),
    handle: async (call) => {
      await call.useCases.deleteVolumeTypeExtraSpec(call.ctx, (await typeOf(call)).id, call.params.key ?? "");
      return { status: 202 };
    },
  },
  {
    method: "GET",
    path: p("/types/{id}/os-volume-type-access"),
    authorize: authorizeAs("ListVolumeTypeAccess"),
    handle: async (call) => {
      const type = await typeOf(call);
      const projects = await call.useCases.listVolumeTypeAccess(call.ctx, type.id);
      return {
        status: 200,
        body: { volume_type_access: projects.map((project_id) => ({ volume_type_id: type.id, project_id })) },
      };
    },
  },
  {
    method: "POST",
    path: p("/types/{id}/action"),
    authorize: (call) => {
      const name = Object.keys((call.body ?? {}) as object)[0];
      return {
        method: name === "removeProjectAccess" ? "RemoveVolumeTypeAccess" : "AddVolumeTypeAccess",
        request: {},
      };
    },
    handle: typeAction,
  },
];
