import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { negotiateMicroversion } from "./microversion.js";
import { ATTACHMENT, created, POOL, QOS, SERVICE, SNAPSHOT, TYPE, VOLUME } from "./rows.fixtures.js";
import {
  cinderTime,
  limitsView,
  poolsView,
  qosSpecsLinks,
  qosSpecsView,
  quotaSetView,
  serviceListView,
  snapshotView,
  versionView,
  volumeSummaryView,
  volumeTypeView,
  volumeView,
} from "./views.js";

// The views checked against the JSON schemas tempest validates Cinder's responses with
// (tempest-schemas.json, converted unchanged from openstack/tempest).

const SCHEMAS = JSON.parse(readFileSync(new URL("./tempest-schemas.json", import.meta.url), "utf8")) as Record<
  string,
  { response_body: object; status_code: number[] }
>;

// NOTE: tempest's checker is jsonschema's Draft4 FORMAT_CHECKER plus iso8601-date-time (oslo's
// parse_isotime); Draft4 has no `uuid` format, so tempest does not check it and neither do we.
const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addFormat("uuid", true);
ajv.addFormat("uri", (s: string) => URL.canParse(s));
ajv.addFormat("iso8601-date-time", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?$/);

function expectValid(schema: string, body: unknown): void {
  const entry = SCHEMAS[schema];
  if (!entry) throw new Error(`no schema ${schema}`);
  const validate = ajv.compile(entry.response_body);
  const ok = validate(body);
  expect(ok ? [] : validate.errors, `${schema}: ${JSON.stringify(body)}`).toEqual([]);
}

const at = (version: string) => negotiateMicroversion({ "openstack-api-version": `volume ${version}` });
const view = (version: string, isAdmin: boolean) => ({
  version: at(version),
  isAdmin,
  baseUrl: "http://127.0.0.1:8776",
  projectId: "7a6f3e58a0d24b6b9a5e0e0c1f4c2a11",
});

describe("Cinder's response shapes (tempest's schemas)", () => {
  it("writes timestamps as Cinder does: microseconds, no zone", () => {
    expect(cinderTime(created)).toBe("2026-12-06T10:00:00.123000");
    expect(cinderTime(null)).toBeNull();
  });

  it.each([
    ["3.0", false],
    ["3.0", true],
    ["3.50", true],
  ] as const)("show volume at %s (admin %s)", (version, isAdmin) => {
    const volume = volumeView(VOLUME, view(version, isAdmin), { attachments: [ATTACHMENT], extended: true });
    expectValid("show_volume", { volume });
    expect(volume.bootable).toBe("false");
    expect(volume["os-vol-tenant-attr:tenant_id"]).toBe(VOLUME.projectId);
    expect(volume.attachments).toEqual([
      expect.objectContaining({ server_id: ATTACHMENT.instanceId, attachment_id: ATTACHMENT.id, device: "/dev/vdb" }),
    ]);
    if (isAdmin) expect(volume["os-vol-host-attr:host"]).toBe("vol1@file#data");
    else expect(volume).not.toHaveProperty("os-vol-host-attr:host");
  });

  it("adds the 3.63 and 3.64 fields only from those versions on", () => {
    expect(volumeView(VOLUME, view("3.62", false))).not.toHaveProperty("volume_type_id");
    const volume = volumeView(VOLUME, view("3.64", false), { extended: true });
    expect(volume.volume_type_id).toBe(VOLUME.volumeTypeId);
    expectValid("show_volume_v3_64", { volume });
  });

  it("create, update and list volumes", () => {
    expectValid("create_volume", { volume: volumeView(VOLUME, view("3.0", false)) });
    expectValid("update_volume", { volume: volumeView(VOLUME, view("3.0", true)) });
    expectValid("list_volumes_no_detail", {
      volumes: [volumeSummaryView(VOLUME, view("3.0", false))],
      volumes_links: [{ rel: "next", href: "http://127.0.0.1:8776/v3/p/volumes?marker=x" }],
    });
    expectValid("list_volumes_with_detail", {
      volumes: [volumeView(VOLUME, view("3.0", true), { extended: true })],
    });
  });

  it("shows an unnamed volume's name as null, as Cinder does", () => {
    const unnamed = { ...VOLUME, name: "" };
    const volume = volumeView(unnamed, view("3.0", true), { extended: true });
    expect(volume.name).toBeNull();
    expectValid("show_volume", { volume });
    expect(volumeSummaryView(unnamed, view("3.0", false)).name).toBeNull();
  });

  it("snapshots: create and update without, show and detail with the extended attributes", () => {
    expectValid("create_snapshot", { snapshot: snapshotView(SNAPSHOT, view("3.0", false), false) });
    expectValid("update_snapshot", { snapshot: snapshotView(SNAPSHOT, view("3.0", false), false) });
    const shown = snapshotView(SNAPSHOT, view("3.0", false), true);
    expectValid("show_snapshot", { snapshot: shown });
    expect(shown["os-extended-snapshot-attributes:progress"]).toBe("100%");
    expectValid("list_snapshots_with_detail", { snapshots: [shown] });
    expectValid("list_snapshots_no_detail", { snapshots: [snapshotView(SNAPSHOT, view("3.0", false), false)] });
    expect(snapshotView(SNAPSHOT, view("3.41", false), false).user_id).toBe("alice");
    expect(snapshotView(SNAPSHOT, view("3.40", false), false)).not.toHaveProperty("user_id");
  });

  it("volume types, quota sets, limits and versions", () => {
    expectValid("show_volume_type", { volume_type: volumeTypeView(TYPE, view("3.0", true)) });
    expectValid("show_volume_type", { volume_type: volumeTypeView(TYPE, view("3.0", false)) });
    expectValid("list_volume_types", { volume_types: [volumeTypeView(TYPE, view("3.0", true))] });
    // Create's answer has no qos_specs_id, even for an admin (tempest's create schema refuses it).
    expectValid("create_volume_type", { volume_type: volumeTypeView(TYPE, view("3.0", true), false) });
    expect(volumeTypeView(TYPE, view("3.0", true), false)).not.toHaveProperty("qos_specs_id");
    const quotas = [
      { resource: "volumes", limit: 10, inUse: 1 },
      { resource: "snapshots", limit: 10, inUse: 0 },
      { resource: "gigabytes", limit: 1000, inUse: 2 },
      { resource: "volumes_gold", limit: -1, inUse: 1 },
    ];
    expectValid("show_quota_set", { quota_set: quotaSetView(VOLUME.projectId, quotas, false) });
    expectValid("show_quota_set_usage", { quota_set: quotaSetView(VOLUME.projectId, quotas, true) });
    expectValid("update_quota_set", { quota_set: quotaSetView(undefined, quotas, false) });
    expectValid("show_limits", { limits: limitsView(quotas) });
    expectValid("list_versions", { versions: [versionView("http://127.0.0.1:8776", "3.0", "3.64")] });
  });

  it.each([
    ["3.0", "list_services"],
    ["3.7", "list_services_v3_7"],
    ["3.49", "list_services_v3_7"],
  ])("os-services at %s", (version, schema) => {
    const service = serviceListView(SERVICE, view(version, true));
    expectValid(schema, { services: [service] });
    expect(service).toMatchObject({ host: "vol1@file", status: "disabled", disabled_reason: "maintenance" });
    if (version === "3.49") expect(service.backend_state).toBe("up");
    else expect(service).not.toHaveProperty("backend_state");
    const enabled = serviceListView({ ...SERVICE, status: "enabled", disabledReason: "" }, view(version, true));
    expect(enabled.disabled_reason).toBeNull();
  });

  it("get_pools with and without detail (a storage_protocol list shows its first variant)", () => {
    expectValid("get_pools_no_detail", { pools: poolsView([POOL], false) });
    const [detailed] = poolsView([POOL], true);
    expectValid("get_pools_with_detail", { pools: [detailed] });
    expect(detailed?.capabilities).toMatchObject({ storage_protocol: "file", free_capacity_gb: 90.5 });
    expect(POOL.capabilities.storage_protocol).toEqual(["file", "local"]);
  });

  it("QoS specs: show and create with links, list without", () => {
    const v = view("3.0", true);
    expectValid("show_qos", { qos_specs: qosSpecsView(QOS), links: qosSpecsLinks(v, QOS.qos.id) });
    expectValid("list_qos", { qos_specs: [qosSpecsView(QOS)] });
    expect(qosSpecsView(QOS)).toEqual({
      id: QOS.qos.id,
      name: "fast",
      consumer: "front-end",
      specs: { total_iops_sec: "1000" },
    });
  });
});
