import { readdirSync } from "node:fs";
import { join } from "node:path";
import * as proto from "@cinderblock/proto";
import {
  availableVolumes,
  codeName,
  identity,
  NO_RATE_LIMITS,
  REPO_ROOT,
  type Stack,
  startStack,
  statusOf,
} from "@cinderblock/testing";
import { Client, credentials, type Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { loadSync, type MethodDefinition } from "@grpc/proto-loader";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HealthProbe, watchHealth } from "./health.js";

// The fuzz suite (issue 14): every public method of cinderblock.v1, enumerated from the generated
// service definitions, gets a few hundred generated requests against the real services. First a
// batch each of requests that must be refused (control characters, oversize strings, maps and
// lists, malformed bytes, forged page tokens): every one INVALID_ARGUMENT and no table changed.
// Then a mixed batch (valid-looking, boundary, unicode, other projects' ids, random tokens):
// never INTERNAL or UNKNOWN. Health stays SERVING throughout. A failure reproduces with the seed
// printed: CINDERBLOCK_FUZZ_SEED=<seed> (and CINDERBLOCK_FUZZ_REQUESTS to change the count).

const SEED = Number(process.env.CINDERBLOCK_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const REQUESTS = Number(process.env.CINDERBLOCK_FUZZ_REQUESTS ?? 250);
const REFUSED_SHARE = 0.25;
const CONCURRENCY = 8;
const STREAM_WAIT_MS = 150;

/** mulberry32: a small seeded PRNG, so a run is reproducible from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A public method: from the generated (ts-proto) definition, with its proto-loader twin for encoding. */
interface FuzzMethod {
  name: string;
  path: string;
  streaming: boolean;
  wire: MethodDefinition<object, object>;
  fields: Field[];
}

type Scalar = "string" | "int" | "bool" | "enum" | "other";
interface Field {
  name: string;
  kind: "scalar" | "list" | "map";
  type: Scalar;
  /** Value type of a map. */
  valueType?: Scalar;
}

interface Descriptor {
  field: Array<{ name: string; label: string; type: string; typeName: string }>;
  nestedType: Array<Descriptor & { name: string; options?: { mapEntry?: boolean } | null }>;
}

function scalarOf(type: string): Scalar {
  if (type === "TYPE_STRING") return "string";
  if (type === "TYPE_BOOL") return "bool";
  if (type === "TYPE_ENUM") return "enum";
  if (/INT|FIXED/.test(type)) return "int";
  return "other";
}

function fieldsOf(type: Descriptor): Field[] {
  return type.field.map((f) => {
    const entry = type.nestedType.find((n) => n.name === f.typeName && n.options?.mapEntry);
    if (entry) return { name: f.name, kind: "map", type: "string", valueType: scalarOf(entry.field[1]?.type ?? "") };
    return { name: f.name, kind: f.label === "LABEL_REPEATED" ? "list" : "scalar", type: scalarOf(f.type) };
  });
}

/** Every method of every generated `cinderblock.v1` service definition. */
function publicMethods(): FuzzMethod[] {
  const protoDir = join(REPO_ROOT, "proto");
  const files = readdirSync(join(protoDir, "cinderblock", "v1")).map((f) => `cinderblock/v1/${f}`);
  const loaded = loadSync(files, { includeDirs: [protoDir], keepCase: true, enums: String, longs: String });
  const byPath = new Map<string, MethodDefinition<object, object>>();
  for (const value of Object.values(loaded)) {
    if (!("format" in value)) {
      for (const m of Object.values(value as Record<string, MethodDefinition<object, object>>)) byPath.set(m.path, m);
    }
  }
  const methods: FuzzMethod[] = [];
  for (const [exportName, value] of Object.entries(proto)) {
    if (!exportName.endsWith("Service") || typeof value !== "object" || value === null) continue;
    for (const [key, def] of Object.entries(value as Record<string, { path?: unknown; responseStream?: boolean }>)) {
      if (typeof def.path !== "string" || !def.path.startsWith("/cinderblock.v1.")) continue;
      const wire = byPath.get(def.path);
      if (!wire) throw new Error(`${def.path}: no descriptor in proto/ for a generated method`);
      methods.push({
        name: def.path.split("/")[2] ?? key,
        path: def.path,
        streaming: def.responseStream === true,
        wire,
        fields: fieldsOf(wire.requestType.type as unknown as Descriptor),
      });
    }
  }
  return methods;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Ids by the kind of resource they name ("volume", "snapshot", "attachment", "group_snapshot"...),
 * so that a request's `snapshot_id` gets a snapshot's id and reaches the paths past the lookup.
 */
type IdPools = Map<string, Set<string>>;

/** The kind an id field names: `volume_id` a volume; a bare `id` the object it sits in (`snapshot`, `snapshots[]`). */
function kindOf(field: string, parent: string): string {
  if (field === "id" || field === "ids") return parent.replace(/s$/, "");
  return field.replace(/_ids?$/, "").replace(/^source_/, "");
}

/** Every UUID under an `id` field of a response (volume.id, snapshot.id, attachment.id...), by kind. */
function idsIn(value: unknown, into: IdPools, parent = ""): void {
  if (value === null || typeof value !== "object") return;
  for (const [key, v] of Object.entries(value)) {
    if (typeof v === "string" && (key === "id" || key.endsWith("_id")) && UUID.test(v)) {
      const kind = kindOf(key, parent);
      into.set(kind, (into.get(kind) ?? new Set()).add(v));
    } else idsIn(v, into, Array.isArray(value) ? parent : key);
  }
}

/** The kind of resource a method's bare `id` names: its name says (GetGroupSnapshot, DeleteVolume...). */
function kindOfMethod(method: string): string {
  const match = /(GroupSnapshot|Snapshot|VolumeType|QosSpecs|Volume|Attachment)/.exec(method);
  return (match?.[1] ?? "").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

let stack: Stack;
let sql: postgres.Sql;
let client: Client;
let health: HealthProbe;
const projectA = "fuzz-project-a";
const projectB = "fuzz-project-b";
const adminProject = "fuzz-admin";
const idsOfA: IdPools = new Map();
const idsOfB: IdPools = new Map();
const pageTokens: string[] = [];
const codes = new Map<string, Map<string, number>>();

const memberB = () => identity(projectB, "bob");
const adminC = () => identity(adminProject, "carol", "admin");

/** The tables a refused call must leave as they were (services: heartbeats change it meanwhile). */
async function tableDigests(): Promise<Record<string, string>> {
  const tables = await sql<{ name: string }[]>`
    select table_name as name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE' and table_name <> 'services'
    order by table_name`;
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const [row] = await sql<{ n: string; digest: string | null }[]>`
      select count(*)::text as n, md5(string_agg(t::text, '|' order by t::text)) as digest from ${sql(name)} t`;
    out[name] = `${row?.n}:${row?.digest ?? ""}`;
  }
  return out;
}

/** A digest of project A's rows: B's calls on A's ids must not change them. */
async function rowsOfA(): Promise<string> {
  const [row] = await sql<{ digest: string | null }[]>`
    select md5(coalesce((select string_agg(t::text, '|' order by t::text) from volumes t where project_id = ${projectA}), '')
      || coalesce((select string_agg(t::text, '|' order by t::text) from snapshots t where project_id = ${projectA}), '')
      || coalesce((select string_agg(t::text, '|' order by t::text) from group_snapshots t where project_id = ${projectA}), ''))
      as digest`;
  return row?.digest ?? "";
}

/** Sends `bytes` and resolves with the status code name (a stream: its first message or error). */
function send(method: FuzzMethod, bytes: Buffer, md: Metadata): Promise<{ code: string; details: string }> {
  const deadline = Date.now() + 30_000;
  const raw = (b: Buffer) => b;
  return new Promise((resolve) => {
    if (!method.streaming) {
      client.makeUnaryRequest(method.path, raw, raw, bytes, md, { deadline }, (err, res) => {
        if (err) resolve({ code: codeName(err.code), details: err.details });
        else {
          const decoded = method.wire.responseDeserialize(res as Buffer);
          idsIn(decoded, md.get("x-project-id")[0] === projectB ? idsOfB : new Map());
          const token = (decoded as { next_page_token?: string }).next_page_token;
          if (token) pageTokens.push(token);
          resolve({ code: "OK", details: "" });
        }
      });
      return;
    }
    const stream = client.makeServerStreamRequest(method.path, raw, raw, bytes, md, { deadline });
    let done = false;
    const finish = (code: string, details = "") => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.cancel();
      resolve({ code, details });
    };
    // NOTE: a valid watch may send nothing for a while (no event): open is what counts then.
    const timer = setTimeout(() => finish("OK"), STREAM_WAIT_MS);
    stream.on("data", () => finish("OK"));
    stream.on("error", (err: ServiceError) =>
      finish(err.code === status.CANCELLED ? "OK" : codeName(err.code), err.details),
    );
    stream.on("end", () => finish("OK"));
  });
}

/** Runs `count` jobs, `CONCURRENCY` at a time. */
async function pool(count: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await job(next++);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

function count(method: string, code: string): void {
  const byCode = codes.get(method) ?? new Map<string, number>();
  byCode.set(code, (byCode.get(code) ?? 0) + 1);
  codes.set(method, byCode);
}

/** Generates requests from a seeded PRNG. */
function generator(random: () => number) {
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  const chance = (p: number) => random() < p;
  const uuid = () => "xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx".replace(/x/g, () => int(16).toString(16)).toLowerCase();
  const text = (n: number) => Array.from({ length: n }, () => String.fromCharCode(97 + int(26))).join("");
  const control = () => String.fromCharCode(pick([0, 1, 7, 8, 9, 10, 13, 27, 31, 127, 0x85, 0x9f]));
  const withControl = (s: string) => {
    const at = int(s.length + 1);
    return `${s.slice(0, at)}${control()}${s.slice(at)}`;
  };
  const UNICODE = ["ünïcødé", "💾 disk", "名前", "\u202eevil", "zero\u200bwidth", "\ud800", "e\u0301", "Ω".repeat(255)];

  /** True while generating a valid-looking request: each field takes its plausible value. */
  let sane = false;

  /** The method a request is being generated for (its bare `id` names that method's resource). */
  let method = "";

  function idValue(field: string, md: Metadata): string {
    const kind = field === "id" ? kindOfMethod(method) : kindOf(field, "");
    const ofKind = (pools: IdPools) =>
      kind === "resource" ? [...pools.values()].flatMap((ids) => [...ids]) : [...(pools.get(kind) ?? [])];
    const own = md.get("x-project-id")[0] === projectB || md.get("x-roles").length > 0 ? ofKind(idsOfB) : [];
    const mine = md.get("x-roles").length > 0 ? own : [...ofKind(idsOfA), ...own];
    // A valid-looking request names the caller's own resource of the right kind (an optional
    // reference, such as CreateVolume's snapshot_id, is left out now and then), so the calls get
    // past the lookup to their deeper paths; the other requests mix in A's ids and junk.
    if (sane) {
      if (field !== "id" && field !== "volume_id" && chance(0.3)) return "";
      return own.length > 0 ? pick(own) : uuid();
    }
    return pick<() => string>([
      () => (mine.length > 0 ? pick(mine) : uuid()),
      () => (mine.length > 0 ? pick(mine) : uuid()),
      () => uuid(),
      () => "",
      () => uuid().toUpperCase(),
      () => text(int(40)),
      () => pick(UNICODE),
    ])();
  }

  function stringValue(field: string, md: Metadata): string {
    if (/(^|_)ids?$/.test(field) && field !== "instance_id") return idValue(field, md);
    // Scheduler hints name volumes of the caller's project.
    if (field === "same_host" || field === "different_host") return idValue("volume_id", md);
    if (sane) {
      const plausible: Record<string, string> = {
        page_token: pageTokens.length > 0 ? pick(pageTokens) : "",
        sort_key: pick(["name", "size", "status", "created_at"]),
        sort_dir: pick(["asc", "desc"]),
        instance_id: `inst-${int(4)}`,
        host: "vol1@file",
        availability_zone: "nova",
        volume_type: "",
        project_id: projectB,
        mountpoint: "/dev/vdb",
        client_request_id: `req-${int(1000)}`,
      };
      return plausible[field] ?? `fuzz-${int(1000)}`;
    }
    switch (field) {
      case "page_token":
        return pick<() => string>([
          () => "",
          () => (pageTokens.length > 0 ? pick(pageTokens) : ""),
          () => {
            // a real token with one character changed
            const real = pageTokens.length > 0 ? pick(pageTokens) : "eyJ4IjoxfQ.AAAA";
            const at = int(real.length);
            return `${real.slice(0, at)}${real[at] === "A" ? "B" : "A"}${real.slice(at + 1)}`;
          },
          () => Buffer.from(JSON.stringify(["name", "asc", "\u0000", uuid()])).toString("base64url"),
          () => Buffer.from(JSON.stringify(["size", "asc", 1e30, uuid()])).toString("base64url"),
          () => Buffer.from(JSON.stringify(["created_at", "desc", "1", uuid()])).toString("base64url"),
          () => text(int(300)),
        ])();
      case "sort_key":
        return pick(["", "name", "size", "status", "created_at", "id", text(8)]);
      case "sort_dir":
        return pick(["", "asc", "desc", "up", text(3)]);
      case "instance_id":
        return pick([`inst-${int(4)}`, `inst-${int(4)}`, "", text(300), "a.b", "*", pick(UNICODE)]);
      case "host":
        return pick(["vol1@file", "vol1@file", "", "vol1", "nohost@none", "a.b@c", text(40)]);
      case "project_id":
        return pick([projectA, projectB, adminProject, "", text(300)]);
      case "mountpoint":
        return pick(["/dev/vdb", "", text(256)]);
      case "client_request_id":
        return pick(["", `req-${int(1000)}`, text(129), "bad id!"]);
    }
    return pick<() => string>([
      () => `fuzz-${int(1000)}`,
      () => `fuzz-${int(1000)}`,
      () => "",
      () => " ",
      () => text(255),
      () => text(256),
      () => pick(UNICODE),
      () => text(int(5000)),
    ])();
  }

  function scalar(type: Scalar, field: string, md: Metadata): unknown {
    if (type === "string") return stringValue(field, md);
    if (type === "bool") return chance(0.5);
    if (type === "enum") return pick([0, 1, 2, 3, 4, 5, 7, 11, 99]);
    if (type === "int" && sane) return 1 + int(3);
    if (type === "int") return pick([0, 1, 1, 2, 3, -1, 100, 1000, 1001, 16384, 16385, 2 ** 31 - 1, -(2 ** 31)]);
    return undefined;
  }

  function map(field: Field): Record<string, unknown> {
    const value = () =>
      sane
        ? field.valueType === "int"
          ? 10 + int(10)
          : `v${int(10)}`
        : field.valueType === "int"
          ? pick([0, -1, 1, 10, 1000, 2 ** 31 - 1])
          : pick(["v", "", text(255), text(256), pick(UNICODE)]);
    const key = () =>
      field.name === "limits"
        ? pick(["volumes", "snapshots", "gigabytes", "bogus", ""])
        : pick(["k", `key-${int(50)}`, "", text(256), pick(UNICODE)]);
    const size = sane ? int(3) : pick([0, 0, 1, 2, 3, 128, 129]);
    const out: Record<string, unknown> = {};
    for (let i = 0; i < size; i++) out[size > 3 || (sane && field.name !== "limits") ? `k${i}` : key()] = value();
    return out;
  }

  function list(field: Field, md: Metadata): unknown[] {
    const size = sane ? 1 + int(2) : pick([0, 1, 2, 3, 64, 65, 129]);
    if (field.name === "event_types") {
      return Array.from({ length: size }, () => pick(["volume.create.end", "snapshot.create.start", text(20), ""]));
    }
    return Array.from({ length: size }, () => scalar(field.type, field.name, md));
  }

  /** A mixed request: each field valid-looking, boundary, unicode, absent or someone else's. */
  function mixed(target: FuzzMethod, md: Metadata): Record<string, unknown> {
    sane = chance(0.4);
    method = target.name;
    const out: Record<string, unknown> = {};
    for (const f of target.fields) {
      if (!sane && chance(0.15)) continue;
      out[f.name] = f.kind === "map" ? map(f) : f.kind === "list" ? list(f, md) : scalar(f.type, f.name, md);
    }
    // A valid-looking CreateVolume has one source at most (a snapshot or a volume to clone).
    if (sane && out.snapshot_id && out.source_volume_id) delete out[chance(0.5) ? "snapshot_id" : "source_volume_id"];
    return out;
  }

  /** A request that must be refused with INVALID_ARGUMENT, as bytes (some not a message at all). */
  function refused(method: FuzzMethod, md: Metadata): { bytes: Buffer; why: string } {
    const base = mixed(method, md);
    sane = false;
    const strings = method.fields.filter((f) => f.type === "string" || f.kind === "map");
    const poisons: Array<() => string> = [
      () => {
        // not a message: a field tag with wire type 7 (none), or a length running past the end
        const bad = pick([Buffer.from([0x0f, 0x01]), Buffer.from([0x0a, 0x7f, 0x61]), Buffer.from([0x08, 0xff])]);
        return `bytes:${bad.toString("hex")}`;
      },
    ];
    if (strings.length > 0) {
      poisons.push(() => {
        const f = pick(strings);
        if (f.kind === "map") base[f.name] = { [withControl("k")]: f.valueType === "int" ? 1 : "v" };
        else if (f.kind === "list") base[f.name] = [withControl(String(scalar("string", f.name, md) || "x"))];
        else base[f.name] = withControl(String(scalar("string", f.name, md)));
        return `control character in ${f.name}`;
      });
      poisons.push(() => {
        const f = pick(strings);
        if (f.kind === "map")
          base[f.name] = Object.fromEntries(
            Array.from({ length: 129 + int(400) }, (_, i) => [`k${i}`, f.valueType === "int" ? 1 : "v"]),
          );
        else if (f.kind === "list") base[f.name] = Array.from({ length: 129 + int(400) }, () => "x");
        else base[f.name] = text(4097 + int(100_000));
        return `oversize ${f.name}`;
      });
      const mapFields = strings.filter((f) => f.kind === "map" && f.valueType === "string");
      if (mapFields.length > 0) {
        poisons.push(() => {
          const f = pick(mapFields);
          base[f.name] = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, text(1000)]));
          return `${f.name} over its total size`;
        });
      }
    }
    if (method.fields.some((f) => f.name === "page_token")) {
      poisons.push(() => {
        base.page_token = pick([
          Buffer.from(JSON.stringify(["name", "asc", "\u0000", uuid()])).toString("base64url"),
          `${Buffer.from(JSON.stringify(["created_at", "desc", "1", uuid()])).toString("base64url")}.${text(43)}`,
          text(int(80) + 1),
        ]);
        base.sort_key = "name";
        base.sort_dir = "asc";
        return "forged page_token";
      });
    }
    const poison = pick(poisons);
    const why = poison();
    if (why.startsWith("bytes:")) return { bytes: Buffer.from(why.slice(6), "hex"), why };
    return { bytes: method.wire.requestSerialize(base), why };
  }

  return { mixed, refused, chance };
}

beforeAll(async () => {
  stack = await startStack({
    env: {
      // NOTE: thousands of calls in seconds from two projects: the rate limits (test/src/limits.test.ts)
      // would answer most of them, and this suite is about what the api does with their contents.
      ...NO_RATE_LIMITS,
      CINDERBLOCK_QUIESCE_TIMEOUT_MS: "200",
      CINDERBLOCK_SNAPSHOT_INSTANCE_TIMEOUT: "10",
      CINDERBLOCK_OPERATION_TIMEOUT: "20",
    },
  });
  sql = postgres(stack.database.url, { max: 2, onnotice: () => {} });
  client = new Client(stack.address, credentials.createInsecure());
  health = watchHealth(stack.address);
  // Project A's resources (the other project's ids B calls on), and B's own (for deep paths).
  for (const [project, ids] of [
    [projectA, idsOfA],
    [projectB, idsOfB],
  ] as const) {
    const md = identity(project, "owner");
    const [volumeId = ""] = await availableVolumes(stack.volumes, md, 2, `${project}-v`);
    const volumes = new Set<string>();
    for (const id of await sql<{ id: string }[]>`select id from volumes where project_id = ${project}`)
      volumes.add(id.id);
    ids.set("volume", volumes);
    const snapshot = await new Promise<proto.CreateSnapshotResponse>((resolve, reject) =>
      stack.snapshots.createSnapshot(proto.CreateSnapshotRequest.fromPartial({ volumeId, name: "s" }), md, (e, r) =>
        e || !r ? reject(e) : resolve(r),
      ),
    );
    const snapshotId = snapshot.snapshot?.id ?? "";
    ids.set("snapshot", new Set([snapshotId]));
    expect(await statusOf(sql, "snapshots", snapshotId, "available")).toBe("available");
  }
  await health.until("SERVING");
}, 180_000);

afterAll(async () => {
  health?.close();
  client?.close();
  await sql?.end();
  await stack?.stop();
});

describe("fuzz: every public method", () => {
  const methods = publicMethods();

  it("covers every method of the generated cinderblock.v1 services", () => {
    expect(methods.length).toBeGreaterThanOrEqual(32);
    console.log(`fuzz seed ${SEED} (CINDERBLOCK_FUZZ_SEED=${SEED}), ${REQUESTS} requests per method`);
  });

  it("refuses control characters, oversize input, malformed bytes and forged tokens with INVALID_ARGUMENT, writing nothing", async () => {
    const gen = generator(prng(SEED));
    const wrong: string[] = [];
    for (const method of methods) {
      const before = await tableDigests();
      await pool(Math.round(REQUESTS * REFUSED_SHARE), async () => {
        const md = adminC();
        const { bytes, why } = gen.refused(method, md);
        const { code, details } = await send(method, bytes, md);
        count(method.name, code);
        if (code !== "INVALID_ARGUMENT") wrong.push(`${method.name} (${why}): ${code} ${details.slice(0, 200)}`);
      });
      const after = await tableDigests();
      const changed = Object.keys(after).filter((t) => after[t] !== before[t]);
      if (changed.length > 0) wrong.push(`${method.name}: refused calls changed ${changed.join(", ")}`);
      expect(await health.check()).toBe("SERVING");
    }
    expect(wrong).toEqual([]);
  }, 240_000);

  it("answers mixed requests (valid-looking, boundary, unicode, other projects' ids) never with INTERNAL or UNKNOWN", async () => {
    const gen = generator(prng(SEED + 1));
    const beforeA = await rowsOfA();
    const failures: string[] = [];
    // The calls that end B's resources go last, so the others still find some to work on.
    const ending = (m: FuzzMethod) => /^(Delete|Unmanage)/.test(m.name) && !m.name.includes("Metadata");
    const ordered = [...methods.filter((m) => !ending(m)), ...methods.filter(ending)];
    for (const method of ordered) {
      await pool(Math.round(REQUESTS * (1 - REFUSED_SHARE)), async () => {
        // NOTE: the admin is of its own project and never gets A's ids, so A's rows stay A's.
        const md = gen.chance(0.3) ? adminC() : memberB();
        const request = gen.mixed(method, md);
        const bytes = method.wire.requestSerialize(request);
        const { code, details } = await send(method, bytes, md);
        count(method.name, code);
        if (code === "INTERNAL" || code === "UNKNOWN") {
          failures.push(`${method.name} ${JSON.stringify(request).slice(0, 300)}: ${code} ${details}`);
        }
      });
      // An administrator's DisableService or FreezeHost may have hit the stack's backend: undo it,
      // so that the methods after it still reach the paths past the scheduler.
      await sql`update services set disabled = false, disabled_reason = '', frozen = false`;
      expect(await health.check()).toBe("SERVING");
    }
    const all = [...new Set([...codes.values()].flatMap((m) => [...m.keys()]))].sort();
    const rows = methods.map((m) =>
      [
        m.name.padEnd(24),
        ...all.map((c) => String(codes.get(m.name)?.get(c) ?? 0).padStart(Math.max(c.length, 5))),
      ].join(" "),
    );
    console.log(
      [
        `fuzz figures (seed ${SEED}, ${REQUESTS} requests per method):`,
        ["method".padEnd(24), ...all.map((c) => c.padStart(5))].join(" "),
        ...rows,
      ].join("\n"),
    );
    expect(failures).toEqual([]);
    expect(await rowsOfA()).toBe(beforeA);
    expect(health.seen.filter((s) => s !== "SERVING")).toEqual([]);
  }, 300_000);
});
