import { type ParseArgsConfig, parseArgs } from "node:util";
import { EXIT_CODE_TABLE } from "./exit-codes.js";

/** A bad command line: reported with the flag it is about, exit code 2, nothing sent. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(
    message: string,
    /** The command whose --help to point at ("volume create"), if known. */
    readonly command?: string,
  ) {
    super(message);
  }
}

/** One flag of a command. */
interface FlagSpec {
  type: "string" | "boolean";
  /** Repeatable (KEY=VALUE pairs, event types). */
  multiple?: boolean;
  short?: string;
  /** Placeholder shown in --help, e.g. "GB". */
  value?: string;
  help: string;
}

/** One command: `<group> <verb>` (or just `<group>` for `events`). */
export interface CommandSpec {
  name: string;
  summary: string;
  /** Required positional arguments, by placeholder name. */
  args: string[];
  flags: Record<string, FlagSpec>;
  examples?: string[];
}

/** Flags every command takes. */
const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  api: { type: "string", value: "HOST:PORT", help: "the api's address (env CINDERBLOCK_API, default 127.0.0.1:50051)" },
  token: {
    type: "string",
    value: "TOKEN",
    help: "a token (env CINDERBLOCK_TOKEN); without one, OS_AUTH_URL + OS_USERNAME/PASSWORD/PROJECT_NAME log in to Keystone",
  },
  "token-type": {
    type: "string",
    value: "TYPE",
    help: "keystone (x-auth-token, default) or bearer (authorization: Bearer) (env CINDERBLOCK_TOKEN_TYPE)",
  },
  cacert: { type: "string", value: "FILE", help: "TLS to the api, trusting this CA (env CINDERBLOCK_CACERT)" },
  tls: {
    type: "boolean",
    help: "TLS to the api with OS_CACERT or the system roots (env CINDERBLOCK_TLS=1; also https://)",
  },
  project: { type: "string", value: "ID", help: "noauth (development): project to act as (env CINDERBLOCK_PROJECT)" },
  user: { type: "string", value: "ID", help: "noauth: user to act as (env CINDERBLOCK_USER, else $USER)" },
  roles: { type: "string", value: "R1,R2", help: "noauth: roles, comma-separated (env CINDERBLOCK_ROLES)" },
  admin: { type: "boolean", help: "noauth: add the admin role (env CINDERBLOCK_ADMIN=1)" },
  json: { type: "boolean", help: "machine output: one JSON document (streams: one JSON object per line)" },
  timeout: { type: "string", value: "SECONDS", help: "deadline of each call (default 30)" },
  help: { type: "boolean", short: "h", help: "show this help" },
};

const WAIT_FLAGS: Record<string, FlagSpec> = {
  wait: { type: "boolean", help: "follow the operation (progress on stderr) until it ends; exit 11 if it fails" },
  "wait-timeout": { type: "string", value: "SECONDS", help: "give up waiting after this long (default 600; exit 10)" },
};

const PAGE_FLAGS: Record<string, FlagSpec> = {
  limit: { type: "string", value: "N", help: "page size, 1-1000 (default 100)" },
  "page-token": { type: "string", value: "TOKEN", help: "continue from a previous page" },
  "all-pages": { type: "boolean", help: "fetch every page" },
};

const PAGING_FLAGS: Record<string, FlagSpec> = {
  ...PAGE_FLAGS,
  "all-projects": { type: "boolean", help: "every project's (admin only)" },
  name: { type: "string", value: "NAME", help: "only with exactly this name" },
  metadata: { type: "string", multiple: true, value: "KEY=VALUE", help: "only with this metadata pair (repeatable)" },
  "sort-key": { type: "string", value: "KEY", help: "created_at (default), name, status or size" },
  "sort-dir": { type: "string", value: "DIR", help: "desc (default) or asc" },
};

/** Every command, in the order `cinderblock --help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: "volume create",
    summary: "create a volume (blank, from a snapshot, or a clone of a volume)",
    args: [],
    flags: {
      size: { type: "string", value: "GB", help: "size in GB (required unless --from-snapshot or --source-volume)" },
      name: { type: "string", value: "NAME", help: "display name" },
      description: { type: "string", value: "TEXT", help: "description" },
      type: { type: "string", value: "TYPE", help: "volume type" },
      "availability-zone": { type: "string", value: "ZONE", help: "availability zone" },
      bootable: { type: "boolean", help: "mark the volume bootable" },
      multiattach: { type: "boolean", help: "allow attaching to several instances at once" },
      "from-snapshot": { type: "string", value: "SNAPSHOT_ID", help: "create from this snapshot" },
      "source-volume": { type: "string", value: "VOLUME_ID", help: "clone this volume (its size unless --size)" },
      metadata: { type: "string", multiple: true, value: "KEY=VALUE", help: "metadata pair (repeatable)" },
      "image-metadata": { type: "string", multiple: true, value: "KEY=VALUE", help: "image metadata (repeatable)" },
      "client-request-id": { type: "string", value: "KEY", help: "idempotency key: a retry returns the first volume" },
      ...WAIT_FLAGS,
    },
    examples: [
      "cinderblock volume create --name data --size 2 --wait",
      "cinderblock volume create --name copy --source-volume <volume id> --wait",
    ],
  },
  {
    name: "volume list",
    summary: "list volumes, newest first",
    args: [],
    flags: {
      status: { type: "string", value: "STATUS", help: "only in this status (available, in-use, error, ...)" },
      ...PAGING_FLAGS,
    },
    examples: ["cinderblock volume list --status available --all-pages --json"],
  },
  { name: "volume show", summary: "show one volume", args: ["VOLUME_ID"], flags: {} },
  {
    name: "volume delete",
    summary: "delete a volume",
    args: ["VOLUME_ID"],
    flags: { cascade: { type: "boolean", help: "delete its snapshots too" }, ...WAIT_FLAGS },
  },
  {
    name: "volume retype",
    summary: "change a volume's type (in place, or migrating with --migration-policy on-demand)",
    args: ["VOLUME_ID", "TYPE"],
    flags: {
      "migration-policy": {
        type: "string",
        value: "POLICY",
        help: "never (default: in place only) or on-demand (migrate when the backend cannot take the type)",
      },
      ...WAIT_FLAGS,
    },
    examples: ["cinderblock volume retype <volume id> fast --migration-policy on-demand --wait"],
  },
  {
    name: "snapshot create",
    summary: "snapshot a volume",
    args: ["VOLUME_ID"],
    flags: {
      name: { type: "string", value: "NAME", help: "display name" },
      description: { type: "string", value: "TEXT", help: "description" },
      force: { type: "boolean", help: "accepted for older clients; an in-use volume needs no force" },
      metadata: { type: "string", multiple: true, value: "KEY=VALUE", help: "metadata pair (repeatable)" },
      "client-request-id": {
        type: "string",
        value: "KEY",
        help: "idempotency key: a retry returns the first snapshot",
      },
      ...WAIT_FLAGS,
    },
    examples: ["cinderblock snapshot create <volume id> --name nightly --wait"],
  },
  {
    name: "snapshot list",
    summary: "list snapshots, newest first",
    args: [],
    flags: {
      volume: { type: "string", value: "VOLUME_ID", help: "only of this volume" },
      status: { type: "string", value: "STATUS", help: "only in this status (available, creating, error, ...)" },
      ...PAGING_FLAGS,
    },
  },
  { name: "snapshot show", summary: "show one snapshot", args: ["SNAPSHOT_ID"], flags: {} },
  {
    name: "snapshot delete",
    summary: "delete a snapshot",
    args: ["SNAPSHOT_ID"],
    flags: { force: { type: "boolean", help: "delete whatever its status (admin only)" }, ...WAIT_FLAGS },
  },
  {
    name: "snapshot watch",
    summary: "print a snapshot's changes until it reaches a terminal status (exit 11 if error)",
    args: ["SNAPSHOT_ID"],
    flags: {},
  },
  {
    name: "type list",
    summary: "list the volume types the project may use (every type for an admin), by name",
    args: [],
    flags: PAGE_FLAGS,
  },
  { name: "type show", summary: "show one volume type, by id or name", args: ["TYPE"], flags: {} },
  {
    name: "type create",
    summary: "create a volume type (admin only)",
    args: ["NAME"],
    flags: {
      description: { type: "string", value: "TEXT", help: "description" },
      property: {
        type: "string",
        multiple: true,
        value: "KEY=VALUE",
        help: "extra spec, e.g. volume_backend_name=file (repeatable)",
      },
      private: { type: "boolean", help: "usable only by projects given access (default public)" },
    },
    examples: ["cinderblock type create fast --property volume_backend_name=file2 --description 'SSD'"],
  },
  {
    name: "type delete",
    summary: "delete an unused volume type, by id or name (admin only)",
    args: ["TYPE"],
    flags: {},
  },
  {
    name: "quota show",
    summary: "show a project's limits and usage (another project's: admin only)",
    args: [],
    flags: { "for-project": { type: "string", value: "ID", help: "another project (admin only)" } },
  },
  {
    name: "events",
    summary: "stream the project's notifications until interrupted",
    args: [],
    flags: {
      resource: { type: "string", value: "ID", help: "only about this volume or snapshot" },
      type: { type: "string", multiple: true, value: "EVENT_TYPE", help: "only this event type (repeatable)" },
      "all-projects": { type: "boolean", help: "every project's events (admin only)" },
      count: { type: "string", value: "N", help: "exit after N events" },
    },
    examples: ["cinderblock events --type snapshot.create.end --json"],
  },
];

/** Values of a parsed command line. */
export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/** A parsed command line. */
export type Parsed =
  | { kind: "help"; text: string }
  | { kind: "command"; command: CommandSpec; args: string[]; flags: FlagValues };

const PROGRAM = "cinderblock";

function flagLines(flags: Record<string, FlagSpec>): string[] {
  const rows = Object.entries(flags).map(([name, f]) => {
    const short = f.short ? `-${f.short}, ` : "";
    const value = f.value ? ` ${f.value}` : "";
    return [`${short}--${name}${value}`, f.multiple ? `${f.help}` : f.help] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, help]) => `  ${left.padEnd(width)}  ${help}`);
}

/** `cinderblock --help`. */
function programHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `usage: ${PROGRAM} <command> [arguments] [flags]`,
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${`${c.name}${c.args.map((a) => ` ${a}`).join("")}`.padEnd(width + 14)}  ${c.summary}`),
    "",
    "flags of every command:",
    ...flagLines(GLOBAL_FLAGS),
    "",
    "exit codes:",
    ...EXIT_CODE_TABLE.map((r) => `  ${String(r.code).padStart(3)}  ${r.meaning}`),
    "",
    `Run '${PROGRAM} <command> --help' for a command's flags.`,
    "",
  ].join("\n");
}

/** `cinderblock <command> --help`. */
function commandHelp(spec: CommandSpec): string {
  return [
    `usage: ${PROGRAM} ${spec.name}${spec.args.map((a) => ` ${a}`).join("")} [flags]`,
    "",
    `${spec.summary[0]?.toUpperCase() ?? ""}${spec.summary.slice(1)}.`,
    "",
    ...(Object.keys(spec.flags).length > 0 ? ["flags:", ...flagLines(spec.flags), ""] : []),
    "flags of every command:",
    ...flagLines(GLOBAL_FLAGS),
    ...(spec.examples ? ["", "examples:", ...spec.examples.map((e) => `  ${e}`)] : []),
    "",
    `Exit codes: see '${PROGRAM} --help'.`,
    "",
  ].join("\n");
}

function groupHelp(group: string): string {
  const commands = COMMANDS.filter((c) => c.name.split(" ")[0] === group);
  return [
    `usage: ${PROGRAM} ${group} <${commands.map((c) => c.name.split(" ")[1]).join("|")}> [arguments] [flags]`,
    "",
    ...commands.map((c) => `  ${c.name}${c.args.map((a) => ` ${a}`).join("")}: ${c.summary}`),
    "",
  ].join("\n");
}

/** Finds which command the words at the start of argv name; the rest are its arguments and flags. */
function findCommand(argv: string[]): { spec: CommandSpec; rest: string[] } | Parsed {
  const [group, verb] = argv;
  const wantsHelp = argv.includes("--help") || argv.includes("-h");
  if (group === undefined || group.startsWith("-")) {
    if (wantsHelp) return { kind: "help", text: programHelp() };
    throw new UsageError(group === undefined ? "missing command" : `unknown flag ${group} before the command`);
  }
  const single = COMMANDS.find((c) => c.name === group);
  if (single) return { spec: single, rest: argv.slice(1) };
  const inGroup = COMMANDS.filter((c) => c.name.split(" ")[0] === group);
  if (inGroup.length === 0) throw new UsageError(`unknown command '${group}'`);
  const spec = inGroup.find((c) => c.name === `${group} ${verb}`);
  if (!spec) {
    if (wantsHelp && (verb === undefined || verb.startsWith("-"))) return { kind: "help", text: groupHelp(group) };
    const known = inGroup.map((c) => c.name.split(" ")[1]).join(", ");
    throw new UsageError(
      verb === undefined || verb.startsWith("-")
        ? `missing subcommand (one of ${known})`
        : `unknown subcommand '${verb}' (one of ${known})`,
      group,
    );
  }
  return { spec, rest: argv.slice(2) };
}

/** What node's parseArgs says, told in terms of the flag. */
function describeParseError(error: unknown, command: string): UsageError {
  const e = error as { code?: string; message?: string };
  const message = e.message ?? String(error);
  if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const flag = /'(-[^']*)'/.exec(message)?.[1] ?? "";
    return new UsageError(`unknown flag ${flag}`, command);
  }
  if (e.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    return new UsageError(`unexpected argument: ${message}`, command);
  }
  return new UsageError(message.replace(/^Option /, "flag "), command);
}

/** Parses argv (without node and the script): the command, its positional arguments and flags. */
export function parseCommandLine(argv: string[]): Parsed {
  const found = findCommand(argv);
  if ("kind" in found) return found;
  const { spec, rest } = found;
  const all = { ...spec.flags, ...GLOBAL_FLAGS };
  const options: NonNullable<ParseArgsConfig["options"]> = {};
  for (const [name, f] of Object.entries(all)) {
    options[name] = { type: f.type, ...(f.multiple ? { multiple: true } : {}), ...(f.short ? { short: f.short } : {}) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (error) {
    if (rest.includes("--help") || rest.includes("-h")) return { kind: "help", text: commandHelp(spec) };
    throw describeParseError(error, spec.name);
  }
  const flags = parsed.values as FlagValues;
  if (flags.help) return { kind: "help", text: commandHelp(spec) };
  const args = parsed.positionals;
  if (args.length < spec.args.length) {
    throw new UsageError(`missing ${spec.args.slice(args.length).join(" ")}`, spec.name);
  }
  if (args.length > spec.args.length) {
    throw new UsageError(`unexpected argument '${args[spec.args.length]}'`, spec.name);
  }
  return { kind: "command", command: spec, args, flags };
}

/** A whole number flag value within [min, max]; absent gives undefined. */
export function intFlag(flags: FlagValues, name: string, min: number, max = 2_147_483_647): number | undefined {
  const raw = flags[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`--${name}: expected a whole number from ${min} to ${max}, got '${String(raw)}'`);
  }
  return Number(raw);
}

/** A string flag's value, or "" when absent. */
export function stringFlag(flags: FlagValues, name: string): string {
  const raw = flags[name];
  return typeof raw === "string" ? raw : "";
}

/** Repeated KEY=VALUE flags as a map. */
export function pairsFlag(flags: FlagValues, name: string): Record<string, string> {
  const raw = flags[name];
  const pairs: Record<string, string> = {};
  for (const item of Array.isArray(raw) ? raw : []) {
    const at = item.indexOf("=");
    if (at <= 0) throw new UsageError(`--${name}: expected KEY=VALUE, got '${item}'`);
    pairs[item.slice(0, at)] = item.slice(at + 1);
  }
  return pairs;
}

/** A repeatable flag's values. */
export function listFlag(flags: FlagValues, name: string): string[] {
  const raw = flags[name];
  return Array.isArray(raw) ? raw : [];
}
