import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { cancellingQueuedStatements } from "@cinderblock/db";
import {
  type ApiUseCases,
  CinderblockError,
  type PageTokens,
  type RequestContext,
  type RequestLimits,
  validateRequest,
} from "@cinderblock/domain";
import type { Authenticator, Guard } from "@cinderblock/rpc";
import { Metadata } from "@grpc/grpc-js";
import { attachmentRoutes } from "./attachments.js";
import { defaultTypeRoutes } from "./default-types.js";
import { fault, faultOf, internalFault, type RestReply } from "./faults.js";
import { groupSnapshotRoutes } from "./group-snapshots.js";
import type { Route, UnauthorizedCall } from "./http.js";
import { manageableRoutes } from "./manageable.js";
import {
  formatMicroversion,
  MAX_MICROVERSION,
  MIN_MICROVERSION,
  type Microversion,
  negotiateMicroversion,
} from "./microversion.js";
import { checkPathProject, projectRoutes } from "./projects.js";
import { qosRoutes } from "./qos.js";
import { serviceRoutes } from "./services.js";
import { snapshotRoutes } from "./snapshots.js";
import { typeRoutes } from "./types.js";
import { versionView } from "./views.js";
import { volumeRoutes } from "./volumes.js";

/** Every route of the REST listener. */
const ROUTES: Route[] = [
  ...volumeRoutes,
  ...snapshotRoutes,
  ...typeRoutes,
  ...projectRoutes,
  ...serviceRoutes,
  ...qosRoutes,
  ...manageableRoutes,
  ...defaultTypeRoutes,
  ...groupSnapshotRoutes,
  ...attachmentRoutes,
];

/** The first path segments that name a collection (so `/v3/volumes` has no project id). */
const COLLECTIONS = new Set([
  "volumes",
  "snapshots",
  "types",
  "limits",
  "os-quota-sets",
  "os-availability-zone",
  "extensions",
  "os-services",
  "scheduler-stats",
  "qos-specs",
  "os-snapshot-manage",
  "manageable_snapshots",
  "default-types",
  "group_snapshots",
  "attachments",
]);

/** Collections whose `{id}` is a UUID, and what Cinder calls one of their resources. */
const NAMED_BY_UUID: Record<string, string> = {
  volumes: "Volume",
  snapshots: "Snapshot",
  "qos-specs": "QoS Specs",
  group_snapshots: "GroupSnapshot",
  attachments: "Attachment",
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Largest request body read (Cinder's osapi_max_request_body_size is 112 KiB). */
const MAX_BODY_BYTES = 112 * 1024;

/** Options for {@link createRestServer}. */
export interface RestServerOptions {
  useCases: ApiUseCases;
  /** The gRPC api's guard (authentication, then API_METHOD_RULES), rate limits included. */
  guard: Guard;
  /** Which strategy the guard authenticates with: noauth reads `X-Auth-Token: user:project[:roles]`. */
  strategy: Authenticator["strategy"];
  limits: RequestLimits;
  pageTokens: PageTokens;
  quotaDefaults: Record<string, number>;
  /** Base of the links (CINDERBLOCK_REST_PUBLIC_URL); by default from the request's Host. */
  publicUrl?: string;
  report(error: unknown, info: { method: string; requestId: string }): void;
}

/** The metadata the guard's authenticator reads, from the HTTP headers of `req`. */
function credentialsOf(req: IncomingMessage, strategy: Authenticator["strategy"]): Metadata {
  const md = new Metadata();
  const token = req.headers["x-auth-token"];
  const authorization = req.headers.authorization;
  if (typeof authorization === "string") md.set("authorization", authorization);
  if (typeof token !== "string" || token === "") return md;
  if (strategy !== "noauth") {
    md.set("x-auth-token", token);
    return md;
  }
  // Cinder's noauth: `user:project` (project defaults to the user); ours may add `:role,role`.
  const [user = "", project = "", roles = ""] = token.split(":");
  md.set("x-user-id", user);
  md.set("x-project-id", project || user);
  if (roles) md.set("x-roles", roles);
  return md;
}

/** The request body as JSON (undefined when empty); 400 for malformed JSON, 413 past the bound. */
async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new CinderblockError("RESOURCE_EXHAUSTED", "Request is too large.");
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new CinderblockError("INVALID_ARGUMENT", "Malformed request body: not JSON");
  }
}

function send(res: ServerResponse, reply: RestReply, headers: Record<string, string>): void {
  const all: Record<string, string> = { ...headers, ...reply.headers };
  if (reply.body === undefined) {
    res.writeHead(reply.status, { ...all, "content-length": "0" });
    res.end();
    return;
  }
  const body = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    ...all,
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/**
 * The Cinder v3 REST front door: an HTTP server translating Cinder's block-storage API onto the
 * same use cases, guard and policy as the gRPC api (a view, not a second implementation).
 */
export function createRestServer(options: RestServerOptions): Server {
  const { useCases, guard, strategy, limits, pageTokens, quotaDefaults } = options;
  const handle = async (req: IncomingMessage, res: ServerResponse, requestId: string) => {
    const headers: Record<string, string> = { "x-openstack-request-id": requestId };
    const url = new URL(req.url ?? "/", "http://localhost");
    const host = req.headers.host ?? "localhost";
    const baseUrl = (options.publicUrl ?? `http://${host}`).replace(/\/+$/, "");
    const path = url.pathname.replace(/\/+$/, "");
    const versions = { versions: [versionView(baseUrl, MIN_MICROVERSION, MAX_MICROVERSION)] };
    if (path === "" && req.method === "GET") return send(res, { status: 300, body: versions }, headers);
    if (path === "/v3" && req.method === "GET") return send(res, { status: 200, body: versions }, headers);
    let version: Microversion;
    try {
      version = negotiateMicroversion(req.headers);
    } catch (error) {
      return send(res, faultOf(error) ?? internalFault(requestId), headers);
    }
    headers["openstack-api-version"] = `volume ${formatMicroversion(version)}`;
    headers.vary = "OpenStack-API-Version";
    const segments = path.split("/").slice(1);
    if (segments[0] !== "v3") return send(res, fault(404, "The resource could not be found."), headers);
    let rest = segments.slice(1);
    let pathProject: string | undefined;
    if (rest.length > 0 && !COLLECTIONS.has(rest[0] ?? "")) {
      pathProject = decodeURIComponent(rest[0] ?? "");
      rest = rest.slice(1);
    }
    // Cinder's routes match no resource path with a trailing slash: `GET /v3/{project}/volumes/` (a
    // show or delete of the id "") is 404, not the list.
    if (url.pathname.endsWith("/") && rest.length > 0) {
      return send(res, fault(404, "The resource could not be found."), headers);
    }
    const subPath = `/${rest.join("/")}`;
    const candidates = ROUTES.filter((r) => r.path.test(subPath));
    const route = candidates.find((r) => r.method === req.method);
    if (!route) {
      if (candidates.length > 0) return send(res, fault(405, "The method is not allowed for this resource."), headers);
      return send(res, fault(404, "The resource could not be found."), headers);
    }
    const params = Object.fromEntries(
      Object.entries(route.path.exec(subPath)?.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)]),
    );
    const kind = NAMED_BY_UUID[rest[0] ?? ""];
    if (kind && params.id !== undefined && !UUID.test(params.id)) {
      // Cinder answers a lookup by anything but an id with 404 (clients then search by name).
      return send(res, fault(404, `${kind} ${params.id} could not be found.`), headers);
    }
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    try {
      const body = await readBody(req);
      const call: UnauthorizedCall = {
        params,
        query: url.searchParams,
        body,
        version,
        useCases,
        pageTokens,
        quotaDefaults,
      };
      const { method, request, otherwise } = route.authorize(call);
      const credentials = { metadata: credentialsOf(req, strategy) };
      let granted = request;
      let identified: RequestContext;
      try {
        identified = await guard(method, request, credentials, requestId);
      } catch (error) {
        if (!otherwise || !(error instanceof CinderblockError) || error.code !== "PERMISSION_DENIED") throw error;
        granted = otherwise;
        identified = await guard(method, otherwise, credentials, requestId);
      }
      const ctx = { ...identified };
      ctx.signal = abort.signal;
      checkPathProject(pathProject, ctx.projectId);
      // NOTE: the same generic bounds as every gRPC request (strings, maps, lists, control characters).
      const fields = typeof body === "object" && body !== null && !Array.isArray(body) ? body : { body };
      validateRequest({ ...params, ...fields }, limits);
      const view = { version, isAdmin: ctx.isAdmin === true, baseUrl, projectId: ctx.projectId };
      const reply = await cancellingQueuedStatements(abort.signal, () => route.handle({ ...call, ctx, view, granted }));
      send(res, reply, headers);
    } catch (error) {
      const known = faultOf(error);
      if (!known) options.report(error, { method: `${req.method} ${subPath}`, requestId });
      send(res, known ?? internalFault(requestId), headers);
    }
  };
  return createServer((req, res) => {
    const given = req.headers["x-openstack-request-id"];
    const requestId =
      typeof given === "string" && /^req-[A-Za-z0-9-]{1,64}$/.test(given) ? given : `req-${randomUUID()}`;
    handle(req, res, requestId).catch((error: unknown) => {
      options.report(error, { method: `${req.method} ${req.url}`, requestId });
      if (!res.headersSent) send(res, internalFault(requestId), {});
      else res.destroy();
    });
  });
}
