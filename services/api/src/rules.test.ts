import { readFileSync } from "node:fs";
import {
  EventsServiceService,
  GroupSnapshotsServiceService,
  QuotasServiceService,
  ServicesServiceService,
  SnapshotsServiceService,
  VolumesServiceService,
  VolumeTypesServiceService,
} from "@cinderblock/proto";
import { RULE_DEFAULTS } from "@cinderblock/rpc";
import { describe, expect, it } from "vitest";
import { API_METHOD_RULES } from "./rules.js";

const SERVICES = [
  VolumesServiceService,
  SnapshotsServiceService,
  QuotasServiceService,
  EventsServiceService,
  GroupSnapshotsServiceService,
  VolumeTypesServiceService,
  ServicesServiceService,
];
const METHODS = SERVICES.flatMap((service) =>
  Object.values(service).map((m) => (m as { path: string }).path.split("/").pop() as string),
);

describe("the policy table", () => {
  it("names a rule for every public RPC, and only rules the policy defines", () => {
    expect(Object.keys(API_METHOD_RULES).sort()).toEqual([...METHODS].sort());
    for (const [method, entry] of Object.entries(API_METHOD_RULES)) {
      const request = { force: true, allProjects: true, projectId: "p" } as never;
      for (const rule of (entry.rules as (r: never) => string[])(request)) {
        expect(RULE_DEFAULTS[rule], `${method}: ${rule}`).toBeDefined();
      }
    }
  });

  it("is what the README's Security section lists", () => {
    const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
    const security = readme.slice(readme.indexOf("## Security"), readme.indexOf("## Deployment"));
    for (const [rule, { check }] of Object.entries(RULE_DEFAULTS)) {
      const row = security.split("\n").find((line) => line.startsWith("|") && line.includes(`\`${rule}\``));
      expect(row, rule).toBeDefined();
      expect(row, rule).toContain(`\`${check}\``);
    }
  });
});
