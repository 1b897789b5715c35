import { CinderblockError, type QosSpecsView } from "@cinderblock/domain";
import type { RestReply } from "./faults.js";
import { authorizeAs, p, type RestCall, type Route } from "./http.js";
import { element, optionalString, parseBoolean, parseInteger, stringMap } from "./input.js";
import { sortPairs } from "./lists.js";
import { qosSpecsLinks, qosSpecsView } from "./views.js";

const bad = (message: string) => new CinderblockError("INVALID_ARGUMENT", message);

type Consumer = Parameters<RestCall["useCases"]["createQosSpecs"]>[1]["consumer"];

const CONSUMERS: readonly Consumer[] = ["front-end", "back-end", "both"];

const shown = (call: RestCall, view: QosSpecsView): RestReply => ({
  status: 200,
  body: { qos_specs: qosSpecsView(view), links: qosSpecsLinks(call.view, view.qos.id) },
});

/** Every QoS specs (the use case's pages, read through). */
async function allQosSpecs(call: RestCall): Promise<QosSpecsView[]> {
  const all: QosSpecsView[] = [];
  let pageToken = "";
  do {
    const page = await call.useCases.listQosSpecs(call.ctx, { pageSize: 1000, pageToken });
    all.push(...page.items);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

type QosSortKey = "created_at" | "name" | "id" | "consumer";
const QOS_SORT_KEYS: readonly QosSortKey[] = ["created_at", "name", "id", "consumer"];

/** A QoS specs' value for a sort key (timestamps compare as their ISO text). */
function qosSortValue({ qos }: QosSpecsView, key: QosSortKey): string {
  return key === "created_at" ? qos.createdAt.toISOString() : qos[key];
}

/**
 * `GET /qos-specs` as Cinder pages it: filters `id`, `name`, `consumer`; `sort` (or `sort_key` and
 * `sort_dir`) over created_at (default), name, id, consumer, desc by default; `marker` (an id),
 * `offset` and `limit`, with a `qos_specs_links` next link when more follow. QoS specs are few, so
 * the whole list is read and paged here.
 */
async function listQosSpecsPage(call: RestCall): Promise<RestReply> {
  const q = call.query;
  const pairs = sortPairs(q, "created_at");
  for (const [key, dir] of pairs) {
    if (!QOS_SORT_KEYS.includes(key as QosSortKey)) throw bad(`sort_key: must be one of ${QOS_SORT_KEYS.join(", ")}`);
    if (dir !== "asc" && dir !== "desc") throw bad("sort_dir: must be asc or desc");
  }
  const filters = (["id", "name", "consumer"] as const).flatMap((f) => {
    const value = q.get(f);
    return value === null ? [] : [[f, value] as const];
  });
  const all = (await allQosSpecs(call))
    .filter((v) => filters.every(([f, value]) => v.qos[f] === value))
    .sort((a, b) => {
      for (const [key, dir] of pairs) {
        const [x, y] = [qosSortValue(a, key as QosSortKey), qosSortValue(b, key as QosSortKey)];
        if (x !== y) return (x < y ? -1 : 1) * (dir === "asc" ? 1 : -1);
      }
      return 0;
    });
  const limitText = q.get("limit");
  const limit = limitText === null ? 1000 : parseInteger(limitText, "limit");
  if (limit < 0) throw bad("limit: must be 0 or more");
  const offsetText = q.get("offset");
  const offset = offsetText === null ? 0 : parseInteger(offsetText, "offset");
  if (offset < 0) throw bad("offset: must be 0 or more");
  let start = 0;
  const marker = q.get("marker");
  if (marker) {
    const at = all.findIndex((v) => v.qos.id === marker);
    if (at < 0) throw bad(`marker ${marker} could not be found.`);
    start = at + 1;
  }
  const from = start + offset;
  const page = all.slice(from, from + Math.min(limit, 1000));
  const body: Record<string, unknown> = { qos_specs: page.map(qosSpecsView) };
  const last = page[page.length - 1];
  if (last && from + page.length < all.length) {
    const next = new URLSearchParams(q);
    next.set("marker", last.qos.id);
    next.delete("offset");
    body.qos_specs_links = [
      { rel: "next", href: `${call.view.baseUrl}/v3/${call.view.projectId}/qos-specs?${next.toString()}` },
    ];
  }
  return { status: 200, body };
}

/** `POST /qos-specs`: `{"qos_specs": {"name": ..., "consumer": ..., <key>: <value>...}}` (200, as Cinder). */
async function createQosSpecs(call: RestCall): Promise<RestReply> {
  const given = element(call.body, "qos_specs");
  const name = optionalString(given, "name");
  if (!name) throw bad("name: is required");
  const consumer = optionalString(given, "consumer") ?? "back-end";
  if (!CONSUMERS.includes(consumer as Consumer)) throw bad("consumer: must be front-end, back-end or both");
  const { name: _name, consumer: _consumer, ...rest } = given;
  const view = await call.useCases.createQosSpecs(call.ctx, {
    name,
    consumer: consumer as Consumer,
    specs: stringMap(rest, "qos_specs"),
  });
  return shown(call, view);
}

/** `PUT /qos-specs/{id}`: sets keys; answers the keys given, as Cinder. */
async function updateQosSpecs(call: RestCall): Promise<RestReply> {
  const specs = stringMap(element(call.body, "qos_specs"), "qos_specs");
  await call.useCases.setQosSpecsKeys(call.ctx, call.params.id ?? "", specs);
  return { status: 200, body: { qos_specs: specs } };
}

/** `PUT /qos-specs/{id}/delete_keys`: `{"keys": [...]}` (202). */
async function deleteQosSpecsKeys(call: RestCall): Promise<RestReply> {
  const keys = typeof call.body === "object" && call.body !== null ? (call.body as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === "string")) {
    throw bad("keys: must be a non-empty list of strings");
  }
  await call.useCases.deleteQosSpecsKeys(call.ctx, call.params.id ?? "", keys);
  return { status: 202 };
}

/** `GET /qos-specs/{id}/associations`: the volume types the specs are associated with. */
async function associations(call: RestCall): Promise<RestReply> {
  const { volumeTypeIds } = await call.useCases.getQosSpecs(call.ctx, call.params.id ?? "");
  const types = await Promise.all(volumeTypeIds.map((id) => call.useCases.getVolumeType(call.ctx, id)));
  return {
    status: 200,
    body: { qos_associations: types.map((t) => ({ association_type: "volume_type", name: t.name, id: t.id })) },
  };
}

/** The `vol_type_id` query parameter of associate and disassociate (400 naming it when missing). */
function volumeTypeIdOf(call: RestCall): string {
  const id = call.query.get("vol_type_id");
  if (!id) throw bad("vol_type_id: is required");
  return id;
}

/** QoS specs: list (paged), show, create, set and unset keys, delete, associations, associate, disassociate. */
export const qosRoutes: Route[] = [
  {
    method: "GET",
    path: p("/qos-specs"),
    authorize: authorizeAs("ListQosSpecs"),
    handle: listQosSpecsPage,
  },
  { method: "POST", path: p("/qos-specs"), authorize: authorizeAs("CreateQosSpecs"), handle: createQosSpecs },
  {
    method: "GET",
    path: p("/qos-specs/{id}"),
    authorize: authorizeAs("GetQosSpecs"),
    handle: async (call) => shown(call, await call.useCases.getQosSpecs(call.ctx, call.params.id ?? "")),
  },
  { method: "PUT", path: p("/qos-specs/{id}"), authorize: authorizeAs("SetQosSpecsKeys"), handle: updateQosSpecs },
  {
    method: "DELETE",
    path: p("/qos-specs/{id}"),
    authorize: authorizeAs("DeleteQosSpecs"),
    handle: async (call) => {
      const force = parseBoolean(call.query.get("force"), "force");
      await call.useCases.deleteQosSpecs(call.ctx, call.params.id ?? "", force);
      return { status: 202 };
    },
  },
  {
    method: "PUT",
    path: p("/qos-specs/{id}/delete_keys"),
    authorize: authorizeAs("DeleteQosSpecsKeys"),
    handle: deleteQosSpecsKeys,
  },
  // NOTE: Cinder's associations answer under its get_all rule, as ListQosSpecs.
  {
    method: "GET",
    path: p("/qos-specs/{id}/associations"),
    authorize: authorizeAs("ListQosSpecs"),
    handle: associations,
  },
  {
    method: "GET",
    path: p("/qos-specs/{id}/associate"),
    authorize: authorizeAs("AssociateQosSpecs"),
    handle: async (call) => {
      await call.useCases.associateQosSpecs(call.ctx, call.params.id ?? "", volumeTypeIdOf(call));
      return { status: 202 };
    },
  },
  {
    method: "GET",
    path: p("/qos-specs/{id}/disassociate"),
    authorize: authorizeAs("DisassociateQosSpecs"),
    handle: async (call) => {
      await call.useCases.disassociateQosSpecs(call.ctx, call.params.id ?? "", volumeTypeIdOf(call));
      return { status: 202 };
    },
  },
  {
    method: "GET",
    path: p("/qos-specs/{id}/disassociate_all"),
    authorize: authorizeAs("DisassociateQosSpecs"),
    handle: async (call) => {
      const id = call.params.id ?? "";
      const { volumeTypeIds } = await call.useCases.getQosSpecs(call.ctx, id);
      for (const typeId of volumeTypeIds) await call.useCases.disassociateQosSpecs(call.ctx, id, typeId);
      return { status: 202 };
    },
  },
];
