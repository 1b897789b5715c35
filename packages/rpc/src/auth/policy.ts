import { readFileSync } from "node:fs";
import { CinderblockError } from "@cinderblock/domain";
import { parse as parseYaml } from "yaml";

/**
 * Who is asking, as a policy sees it (oslo.policy's "credentials"): `is_admin` is the result of the
 * `context_is_admin` rule, computed once per call.
 */
interface PolicyCredentials {
  project_id: string;
  user_id: string;
  roles: readonly string[];
  is_admin?: boolean;
}

/** What the call acts on (oslo.policy's "target"): at least the project it is scoped to. */
export type PolicyTarget = Readonly<Record<string, string>>;

/**
 * Base rules, as Cinder's (cinder/policies/base.py before the scoped personas): `context_is_admin`
 * decides who counts as an administrator everywhere (also for seeing other projects' resources).
 */
const BASE_RULES: Record<string, string> = {
  context_is_admin: "role:admin",
  admin_or_owner: "is_admin:True or project_id:%(project_id)s",
  admin_api: "is_admin:True",
};

/** One rule of the table: its default, and what it guards (for the README and `--help`). */
export interface RuleDefault {
  check: string;
  description: string;
}

/**
 * Every rule an RPC names, with Cinder's name where Cinder has one, and its default. An operator
 * overrides any of them (or the base rules) in CINDERBLOCK_POLICY_FILE.
 */
export const RULE_DEFAULTS: Readonly<Record<string, RuleDefault>> = {
  "volume:create": { check: "rule:admin_or_owner", description: "CreateVolume" },
  "volume:get": { check: "rule:admin_or_owner", description: "GetVolume" },
  "volume:get_all": { check: "rule:admin_or_owner", description: "ListVolumes" },
  "volume:update": { check: "rule:admin_or_owner", description: "UpdateVolume" },
  "volume:delete": { check: "rule:admin_or_owner", description: "DeleteVolume (cascade too)" },
  "volume:extend": { check: "rule:admin_or_owner", description: "ExtendVolume" },
  "volume:retype": { check: "rule:admin_or_owner", description: "RetypeVolume" },
  "volume:revert_to_snapshot": { check: "rule:admin_or_owner", description: "RevertVolumeToSnapshot" },
  "volume:update_volume_metadata": { check: "rule:admin_or_owner", description: "SetVolumeMetadata" },
  "volume:delete_volume_metadata": { check: "rule:admin_or_owner", description: "DeleteVolumeMetadata" },
  "volume:attachment_create": { check: "rule:admin_or_owner", description: "AttachVolume" },
  "volume:attachment_delete": { check: "rule:admin_or_owner", description: "DetachVolume" },
  "volume_extension:volume_admin_actions:reset_status": { check: "rule:admin_api", description: "ResetVolumeStatus" },
  "volume:create_snapshot": { check: "rule:admin_or_owner", description: "CreateSnapshot" },
  "volume:get_snapshot": { check: "rule:admin_or_owner", description: "GetSnapshot, WatchSnapshot" },
  "volume:get_all_snapshots": { check: "rule:admin_or_owner", description: "ListSnapshots" },
  "volume:update_snapshot": { check: "rule:admin_or_owner", description: "UpdateSnapshot" },
  "volume:delete_snapshot": { check: "rule:admin_or_owner", description: "DeleteSnapshot" },
  "volume:update_snapshot_metadata": { check: "rule:admin_or_owner", description: "SetSnapshotMetadata" },
  "volume:delete_snapshot_metadata": { check: "rule:admin_or_owner", description: "DeleteSnapshotMetadata" },
  "volume_extension:snapshot_admin_actions:reset_status": {
    check: "rule:admin_api",
    description: "ResetSnapshotStatus",
  },
  "volume_extension:snapshot_admin_actions:force_delete": {
    check: "rule:admin_api",
    description: "DeleteSnapshot with force",
  },
  "volume_extension:volume_admin_actions:force_delete": {
    check: "rule:admin_api",
    description: "DeleteVolume with force",
  },
  "snapshot_extension:list_manageable": { check: "rule:admin_api", description: "ListManageableSnapshots" },
  "snapshot_extension:snapshot_manage": { check: "rule:admin_api", description: "ManageSnapshot" },
  "snapshot_extension:snapshot_unmanage": { check: "rule:admin_api", description: "UnmanageSnapshot" },
  "volume_extension:quotas:show": {
    check: "rule:admin_or_owner",
    description: "GetQuotas (the target is the project asked about)",
  },
  "volume_extension:quotas:update": { check: "rule:admin_api", description: "UpdateQuotas" },
  "volume_extension:quotas:delete": { check: "rule:admin_api", description: "DeleteQuotas" },
  "group:create_group_snapshot": { check: "rule:admin_or_owner", description: "CreateGroupSnapshot" },
  "group:get_group_snapshot": { check: "rule:admin_or_owner", description: "GetGroupSnapshot" },
  "group:get_all_group_snapshots": { check: "rule:admin_or_owner", description: "ListGroupSnapshots" },
  "group:delete_group_snapshot": { check: "rule:admin_or_owner", description: "DeleteGroupSnapshot" },
  "volume_extension:type_create": { check: "rule:admin_api", description: "CreateVolumeType" },
  "volume_extension:type_update": { check: "rule:admin_api", description: "UpdateVolumeType" },
  "volume_extension:type_delete": { check: "rule:admin_api", description: "DeleteVolumeType" },
  "volume_extension:type_get": {
    check: "@",
    description: "GetVolumeType (a private type only with access, or for an admin)",
  },
  "volume_extension:type_get_all": {
    check: "@",
    description: "ListVolumeTypes (public types and the private ones the project has access to)",
  },
  "volume_extension:types_extra_specs:create": { check: "rule:admin_api", description: "SetVolumeTypeExtraSpecs" },
  "volume_extension:types_extra_specs:delete": { check: "rule:admin_api", description: "DeleteVolumeTypeExtraSpec" },
  "volume_extension:volume_type_access:addProjectAccess": {
    check: "rule:admin_api",
    description: "AddVolumeTypeAccess",
  },
  "volume_extension:volume_type_access:removeProjectAccess": {
    check: "rule:admin_api",
    description: "RemoveVolumeTypeAccess",
  },
  "volume_extension:volume_type_access:get_all_for_type": {
    check: "rule:admin_api",
    description: "ListVolumeTypeAccess",
  },
  "volume_extension:default_get": { check: "rule:admin_api", description: "GetDefaultVolumeType" },
  "volume_extension:default_set_or_update": { check: "rule:admin_api", description: "SetDefaultVolumeType" },
  "volume_extension:default_unset": { check: "rule:admin_api", description: "UnsetDefaultVolumeType" },
  "volume_extension:default_get_all": { check: "rule:admin_api", description: "ListDefaultVolumeTypes" },
  "volume_extension:qos_specs_manage:create": { check: "rule:admin_api", description: "CreateQosSpecs" },
  "volume_extension:qos_specs_manage:get": { check: "rule:admin_api", description: "GetQosSpecs" },
  "volume_extension:qos_specs_manage:get_all": { check: "rule:admin_api", description: "ListQosSpecs" },
  "volume_extension:qos_specs_manage:update": {
    check: "rule:admin_api",
    description: "SetQosSpecsKeys, AssociateQosSpecs, DisassociateQosSpecs",
  },
  "volume_extension:qos_specs_manage:delete": {
    check: "rule:admin_api",
    description: "DeleteQosSpecs, DeleteQosSpecsKeys",
  },
  "volume_extension:services:index": { check: "rule:admin_api", description: "ListServices" },
  "volume_extension:services:update": {
    check: "rule:admin_api",
    description: "EnableService, DisableService, FreezeHost, ThawHost",
  },
  "volume:freeze_host": { check: "rule:admin_api", description: "FreezeHost (with volume_extension:services:update)" },
  "volume:thaw_host": { check: "rule:admin_api", description: "ThawHost (with volume_extension:services:update)" },
  "scheduler_extension:scheduler_stats:get_pools": { check: "rule:admin_api", description: "ListPools" },
  // Cinderblock's own (Cinder has no API for these).
  "cinderblock:availability_zones": {
    check: "@",
    description: "ListAvailabilityZones (Cinder's os-availability-zone checks no rule: anyone authenticated)",
  },
  "cinderblock:snapshot_instance": { check: "rule:admin_or_owner", description: "SnapshotInstance" },
  "cinderblock:watch_events": { check: "rule:admin_or_owner", description: "WatchEvents" },
  "cinderblock:all_projects": {
    check: "rule:context_is_admin",
    description: "all_projects on ListVolumes, ListSnapshots and WatchEvents (Cinder's all_tenants)",
  },
};

type Node =
  | { kind: "and" | "or"; items: Node[] }
  | { kind: "not"; item: Node }
  | { kind: "always" | "never" }
  | { kind: "rule"; name: string }
  | { kind: "role"; role: string }
  | { kind: "match"; key: string; value: string };

/** Thrown for a rule that does not parse; the message names the rule and what is wrong. */
export class PolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PolicyError";
  }
}

/**
 * Parses oslo.policy's rule language: checks `role:R`, `rule:NAME`, `is_admin:True`,
 * `KEY:%(target_key)s` (a credential equal to the target's value), `KEY:literal`, `@` (always),
 * `!` (never), "" (always), joined by `and`, `or`, `not` and parentheses.
 */
function parseRule(name: string, text: string): Node {
  // NOTE: as oslo.policy's tokenizer: split on spaces, then peel parentheses off a word's ends
  // only, so `project_id:%(project_id)s` stays one check.
  const tokens: string[] = [];
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    const open = /^\(*/.exec(word)?.[0].length ?? 0;
    const rest = word.slice(open);
    const close = /\)*$/.exec(rest)?.[0].length ?? 0;
    tokens.push(...Array<string>(open).fill("("));
    if (rest.length > close) tokens.push(rest.slice(0, rest.length - close));
    tokens.push(...Array<string>(close).fill(")"));
  }
  let pos = 0;
  const fail = (why: string): never => {
    throw new PolicyError(`policy rule ${JSON.stringify(name)}: ${why} in ${JSON.stringify(text)}`);
  };
  const peek = () => tokens[pos];
  const orExpr = (): Node => {
    const items = [andExpr()];
    while (peek() === "or") {
      pos++;
      items.push(andExpr());
    }
    return items.length === 1 ? (items[0] as Node) : { kind: "or", items };
  };
  const andExpr = (): Node => {
    const items = [notExpr()];
    while (peek() === "and") {
      pos++;
      items.push(notExpr());
    }
    return items.length === 1 ? (items[0] as Node) : { kind: "and", items };
  };
  const notExpr = (): Node => {
    if (peek() === "not") {
      pos++;
      return { kind: "not", item: notExpr() };
    }
    return atom();
  };
  const atom = (): Node => {
    const token = tokens[pos++];
    if (token === undefined) return fail("unexpected end");
    if (token === "(") {
      const inner = orExpr();
      if (tokens[pos++] !== ")") fail("missing ')'");
      return inner;
    }
    if (token === "@") return { kind: "always" };
    if (token === "!") return { kind: "never" };
    const colon = token.indexOf(":");
    if (colon <= 0 || colon === token.length - 1) return fail(`${JSON.stringify(token)} is not a check (kind:value)`);
    const kind = token.slice(0, colon);
    const value = token.slice(colon + 1);
    if (kind === "rule") return { kind: "rule", name: value };
    if (kind === "role") return { kind: "role", role: value };
    return { kind: "match", key: kind, value };
  };
  if (tokens.length === 0) return { kind: "always" };
  const node = orExpr();
  if (pos !== tokens.length) fail(`unexpected ${JSON.stringify(tokens[pos])}`);
  return node;
}

/** The rules in force: defaults, overridden by the policy file. */
export interface Policy {
  /** Whether `rule` allows `credentials` on `target`. */
  allows(rule: string, credentials: PolicyCredentials, target: PolicyTarget): boolean;
  /** Throws PERMISSION_DENIED naming the rule when it does not allow the call. */
  enforce(rule: string, credentials: PolicyCredentials, target: PolicyTarget): void;
  /** The `context_is_admin` rule for these credentials. */
  isAdmin(credentials: Omit<PolicyCredentials, "is_admin">): boolean;
}

/**
 * Builds a policy from the defaults and `overrides` (rule name → check string). Every rule must
 * parse and every `rule:NAME` must name a defined rule, or this throws a PolicyError.
 */
export function createPolicy(overrides: Readonly<Record<string, string>> = {}): Policy {
  const texts: Record<string, string> = { ...BASE_RULES };
  for (const [name, rule] of Object.entries(RULE_DEFAULTS)) texts[name] = rule.check;
  Object.assign(texts, overrides);
  const rules = new Map<string, Node>();
  for (const [name, text] of Object.entries(texts)) rules.set(name, parseRule(name, text));
  const check = (node: Node, from: string): void => {
    if (node.kind === "rule" && !rules.has(node.name)) {
      throw new PolicyError(`policy rule ${JSON.stringify(from)}: rule:${node.name} is not defined`);
    }
    if (node.kind === "and" || node.kind === "or") for (const item of node.items) check(item, from);
    if (node.kind === "not") check(node.item, from);
  };
  for (const [name, node] of rules) check(node, name);

  const evaluate = (node: Node, creds: PolicyCredentials, target: PolicyTarget, depth: number): boolean => {
    if (depth > 32) throw new PolicyError("policy rules refer to each other in a loop");
    switch (node.kind) {
      case "always":
        return true;
      case "never":
        return false;
      case "and":
        return node.items.every((item) => evaluate(item, creds, target, depth));
      case "or":
        return node.items.some((item) => evaluate(item, creds, target, depth));
      case "not":
        return !evaluate(node.item, creds, target, depth);
      case "rule": {
        const rule = rules.get(node.name);
        return rule !== undefined && evaluate(rule, creds, target, depth + 1);
      }
      case "role":
        return creds.roles.includes(node.role);
      case "match": {
        if (node.key === "is_admin") return String(creds.is_admin === true) === node.value.toLowerCase();
        const fromTarget = /^%\((\w+)\)s$/.exec(node.value);
        const expected = fromTarget ? target[fromTarget[1] as string] : node.value;
        const actual = (creds as unknown as Record<string, unknown>)[node.key];
        return expected !== undefined && typeof actual === "string" && actual === expected;
      }
    }
  };

  const policy: Policy = {
    allows(rule, credentials, target) {
      const node = rules.get(rule);
      // NOTE: a rule nobody defined allows nothing (a typo in code must not open a method).
      return node !== undefined && evaluate(node, credentials, target, 0);
    },
    enforce(rule, credentials, target) {
      if (!policy.allows(rule, credentials, target)) {
        throw new CinderblockError("PERMISSION_DENIED", `policy does not allow ${rule} to be performed`);
      }
    },
    isAdmin(credentials) {
      return policy.allows("context_is_admin", { ...credentials, is_admin: false }, {});
    },
  };
  return policy;
}

/**
 * Reads a policy file (YAML or JSON, as Cinder's policy.yaml: `"rule name": "check string"`) and
 * builds the policy; a file that cannot be read or parsed throws a PolicyError naming it.
 */
export function loadPolicy(path: string | undefined): Policy {
  if (!path) return createPolicy();
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, "utf8"));
  } catch (error) {
    throw new PolicyError(`CINDERBLOCK_POLICY_FILE=${path}: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return createPolicy();
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new PolicyError(`CINDERBLOCK_POLICY_FILE=${path}: expected a mapping of rule names to check strings`);
  }
  const overrides: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value !== "string") {
      throw new PolicyError(`CINDERBLOCK_POLICY_FILE=${path}: rule ${JSON.stringify(name)} must be a string`);
    }
    overrides[name] = value;
  }
  try {
    return createPolicy(overrides);
  } catch (error) {
    throw new PolicyError(`CINDERBLOCK_POLICY_FILE=${path}: ${(error as Error).message}`);
  }
}
