import type { EditableTable } from "@cinderblock/db";
import { CinderblockError } from "@cinderblock/domain";
import { authorizeAs, p, type RestCall, type Route } from "./http.js";
import { element, stringMap } from "./input.js";

/** How one resource's metadata is reached: its collection, table, policy methods and reader. */
export interface MetadataOptions {
  collection: string;
  table: EditableTable;
  read: string;
  set: string;
  remove: string;
  get(call: RestCall, id: string): Promise<{ id: string; metadata: Record<string, string> }>;
}

/**
 * Cinder's metadata sub-resource: `GET`/`POST` (merge)/`PUT` (replace) `.../metadata` and
 * `GET`/`PUT`/`DELETE` `.../metadata/{key}`, over the same use cases as the gRPC metadata calls.
 */
export function metadataRoutes(o: MetadataOptions): Route[] {
  const base = `/${o.collection}/{id}/metadata`;
  const set = (replace: boolean) => async (call: RestCall) => {
    const metadata = stringMap(element(call.body, "metadata"), "metadata");
    const id = call.params.id ?? "";
    return {
      status: 200,
      body: { metadata: await call.useCases.setMetadata(call.ctx, o.table, id, metadata, replace) },
    };
  };
  return [
    {
      method: "GET",
      path: p(base),
      authorize: authorizeAs(o.read),
      handle: async (call) => ({ status: 200, body: { metadata: (await o.get(call, call.params.id ?? "")).metadata } }),
    },
    { method: "POST", path: p(base), authorize: authorizeAs(o.set), handle: set(false) },
    { method: "PUT", path: p(base), authorize: authorizeAs(o.set), handle: set(true) },
    {
      method: "GET",
      path: p(`${base}/{key}`),
      authorize: authorizeAs(o.read),
      handle: async (call) => {
        const { id = "", key = "" } = call.params;
        const { metadata } = await o.get(call, id);
        if (!Object.hasOwn(metadata, key))
          throw new CinderblockError("NOT_FOUND", `Metadata item ${key} was not found.`);
        return { status: 200, body: { meta: { [key]: metadata[key] } } };
      },
    },
    {
      method: "PUT",
      path: p(`${base}/{key}`),
      authorize: authorizeAs(o.set),
      handle: async (call) => {
        const { id = "", key = "" } = call.params;
        const meta = stringMap(element(call.body, "meta"), "meta");
        if (Object.keys(meta).length !== 1)
          throw new CinderblockError("INVALID_ARGUMENT", "Request body contains too many items.");
        if (!Object.hasOwn(meta, key)) throw new CinderblockError("INVALID_ARGUMENT", "Request body and URI mismatch");
        const all = await call.useCases.setMetadata(call.ctx, o.table, id, meta, false);
        return { status: 200, body: { meta: { [key]: all[key] } } };
      },
    },
    {
      method: "DELETE",
      path: p(`${base}/{key}`),
      authorize: authorizeAs(o.remove),
      handle: async (call) => {
        const { id = "", key = "" } = call.params;
        const { metadata } = await o.get(call, id);
        if (!Object.hasOwn(metadata, key))
          throw new CinderblockError("NOT_FOUND", `Metadata item ${key} was not found.`);
        await call.useCases.deleteMetadata(call.ctx, o.table, id, key);
        return { status: 200 };
      },
    },
  ];
}
