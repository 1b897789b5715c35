import { matchesSpec } from "./extra-specs.js";

/** Where an extra spec's key points in the capabilities, or undefined for a key the filter ignores. */
function capabilityPath(key: string): string[] | undefined {
  const scope = key.split(":");
  if (scope.length > 1 && scope[0] !== "capabilities") return undefined;
  return scope[0] === "capabilities" ? scope.slice(1) : scope;
}

/**
 * Cinder's CapabilitiesFilter on one pool: why its capabilities (Cinder's names, see poolsOf) do
 * not satisfy a type's extra specs, or undefined when they do. Every extra spec that is unscoped
 * (`volume_backend_name`, `thin_provisioning_support`) or scoped `capabilities:` (`capabilities:a:b`
 * walks nested capabilities) must match the pool's capability (see {@link matchesSpec}); a list
 * capability matches when one of its values does (`<all-in>` takes the whole list). Keys with
 * another scope (`qos:`, `provisioning:`, vendor ones) are not about capabilities and are ignored.
 */
export function capabilitiesProblem(
  capabilities: Readonly<Record<string, unknown>>,
  extraSpecs: Readonly<Record<string, string>>,
): string | undefined {
  for (const [key, requirement] of Object.entries(extraSpecs)) {
    const path = capabilityPath(key);
    if (!path) continue;
    let cap: unknown = capabilities;
    for (const name of path) {
      if (typeof cap !== "object" || cap === null || Array.isArray(cap) || !Object.hasOwn(cap, name)) {
        return `does not report capability ${path.join(":")} (extra spec ${key})`;
      }
      cap = (cap as Record<string, unknown>)[name];
    }
    const wholeList = requirement.trimStart().startsWith("<all-in>");
    const values = Array.isArray(cap) && !wholeList ? cap : [cap];
    if (!values.some((v) => matchesSpec(v, requirement))) {
      return `reports ${path.join(":")}=${JSON.stringify(cap)}, extra spec ${key} asks for '${requirement}'`;
    }
  }
  return undefined;
}
