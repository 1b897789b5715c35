import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createPolicy, loadPolicy, PolicyError, RULE_DEFAULTS } from "./policy.js";

const member = { project_id: "p1", user_id: "u1", roles: ["member"], is_admin: false };
const admin = { project_id: "p0", user_id: "root", roles: ["admin"], is_admin: true };
const own = { project_id: "p1", user_id: "u1" };

describe("the default policy", () => {
  const policy = createPolicy();

  it("counts only the exact role admin as admin", () => {
    expect(policy.isAdmin({ project_id: "p", user_id: "u", roles: ["admin"] })).toBe(true);
    for (const roles of [["Admin"], ["ADMIN"], ["member,admin"], ["administrator"], []]) {
      expect(policy.isAdmin({ project_id: "p", user_id: "u", roles })).toBe(false);
    }
  });

  it("lets an owner act on its own project and not on another's", () => {
    expect(policy.allows("volume:create_snapshot", member, own)).toBe(true);
    expect(policy.allows("volume_extension:quotas:show", member, { project_id: "p2" })).toBe(false);
    expect(policy.allows("volume_extension:quotas:show", admin, { project_id: "p2" })).toBe(true);
  });

  it("keeps admin_api rules for admins, naming the rule when it refuses", () => {
    expect(policy.allows("volume_extension:snapshot_admin_actions:reset_status", admin, own)).toBe(true);
    expect(() => policy.enforce("volume_extension:snapshot_admin_actions:reset_status", member, own)).toThrow(
      "policy does not allow volume_extension:snapshot_admin_actions:reset_status to be performed",
    );
  });

  it("allows nothing for a rule that is not defined", () => {
    expect(policy.allows("volume:no_such_rule", admin, own)).toBe(false);
  });

  it("names a rule for every admin-only method", () => {
    const adminOnly = Object.entries(RULE_DEFAULTS).filter(([, r]) => r.check === "rule:admin_api");
    expect(adminOnly.map(([name]) => name)).toContain("volume_extension:quotas:update");
    for (const [name] of adminOnly) expect(policy.allows(name, member, own)).toBe(false);
  });
});

describe("overrides", () => {
  it("parses and, or, not, parentheses, @ and !", () => {
    const policy = createPolicy({
      a: "role:x and (role:y or not role:z)",
      b: "@",
      c: "!",
      d: "",
      e: "user_id:%(user_id)s",
      f: "project_id:p1",
    });
    expect(policy.allows("a", { ...member, roles: ["x", "y"] }, own)).toBe(true);
    expect(policy.allows("a", { ...member, roles: ["x", "z"] }, own)).toBe(false);
    expect(policy.allows("a", { ...member, roles: ["x"] }, own)).toBe(true);
    expect(policy.allows("b", member, own)).toBe(true);
    expect(policy.allows("c", admin, own)).toBe(false);
    expect(policy.allows("d", member, own)).toBe(true);
    expect(policy.allows("e", member, { user_id: "u1" })).toBe(true);
    expect(policy.allows("e", member, { user_id: "u2" })).toBe(false);
    expect(policy.allows("f", member, {})).toBe(true);
  });

  it("lets an operator give an admin action to another role, and take one from owners", () => {
    const policy = createPolicy({
      storage_operator: "role:storage-operator",
      "volume_extension:volume_admin_actions:reset_status": "rule:admin_api or rule:storage_operator",
      "volume:delete": "rule:admin_api",
    });
    const operator = { ...member, roles: ["storage-operator"] };
    expect(policy.allows("volume_extension:volume_admin_actions:reset_status", operator, own)).toBe(true);
    expect(policy.allows("volume:delete", member, own)).toBe(false);
  });

  it.each([
    [{ x: "role:a and" }, /policy rule "x": unexpected end/],
    [{ x: "(role:a" }, /missing '\)'/],
    [{ x: "role:a or banana" }, /"banana" is not a check/],
    [{ x: "rule:nope" }, /rule:nope is not defined/],
  ])("refuses a broken rule %o", (overrides, message) => {
    expect(() => createPolicy(overrides)).toThrow(message);
  });

  it("reads Cinder's policy.yaml format, and names the file when it is wrong", () => {
    const dir = mkdtempSync(join(tmpdir(), "policy-"));
    const good = join(dir, "policy.yaml");
    writeFileSync(good, '# ours\n"volume:create_snapshot": "role:member"\n');
    const policy = loadPolicy(good);
    expect(policy.allows("volume:create_snapshot", { ...member, roles: ["reader"] }, own)).toBe(false);
    expect(policy.allows("volume:create_snapshot", member, own)).toBe(true);
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, '"volume:create_snapshot": 3\n');
    expect(() => loadPolicy(bad)).toThrow(PolicyError);
    expect(() => loadPolicy(bad)).toThrow(
      /CINDERBLOCK_POLICY_FILE=.*bad.yaml: rule "volume:create_snapshot" must be a string/,
    );
    expect(() => loadPolicy(join(dir, "missing.yaml"))).toThrow(/missing.yaml/);
  });
});
