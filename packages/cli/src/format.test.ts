import { Snapshot, SnapshotStatus, Volume, VolumeStatus, VolumeType } from "@cinderblock/proto";
import { describe, expect, it } from "vitest";
import {
  eventLine,
  parseSnapshotStatus,
  parseVolumeStatus,
  quotaTable,
  snapshotJson,
  table,
  volumeJson,
  volumeStatusName,
  volumeTypeJson,
  volumeTypeTable,
} from "./format.js";

describe("status names", () => {
  it("uses Cinder's spelling and reads it back", () => {
    expect(volumeStatusName(VolumeStatus.VOLUME_STATUS_IN_USE)).toBe("in-use");
    expect(volumeStatusName(VolumeStatus.VOLUME_STATUS_ERROR_DELETING)).toBe("error_deleting");
    expect(parseVolumeStatus("in-use")).toBe(VolumeStatus.VOLUME_STATUS_IN_USE);
    expect(parseVolumeStatus("IN_USE")).toBe(VolumeStatus.VOLUME_STATUS_IN_USE);
    expect(parseVolumeStatus("VOLUME_STATUS_AVAILABLE")).toBe(VolumeStatus.VOLUME_STATUS_AVAILABLE);
    expect(parseSnapshotStatus("error-deleting")).toBe(SnapshotStatus.SNAPSHOT_STATUS_ERROR_DELETING);
    expect(() => parseVolumeStatus("unspecified")).toThrow("--status: unknown volume status 'unspecified'");
    expect(() => parseSnapshotStatus("sleeping")).toThrow(/--status: .*one of creating, available/);
  });
});

describe("JSON output", () => {
  it("is proto3 JSON with every field present", () => {
    const createdAt = new Date("2026-01-02T03:04:05.000Z");
    const json = volumeJson(
      Volume.fromPartial({
        id: "v1",
        name: "data",
        status: VolumeStatus.VOLUME_STATUS_AVAILABLE,
        sizeGb: 1,
        createdAt,
      }),
    );
    expect(json).toMatchObject({
      id: "v1",
      status: "VOLUME_STATUS_AVAILABLE",
      sizeGb: 1,
      bootable: false,
      description: "",
      metadata: {},
      attachments: [],
      createdAt: "2026-01-02T03:04:05.000Z",
    });
    expect(json).not.toHaveProperty("updatedAt");
    expect(snapshotJson(Snapshot.fromPartial({ id: "s1" }))).toMatchObject({
      status: "SNAPSHOT_STATUS_UNSPECIFIED",
      progress: "",
      volumeSizeGb: 0,
    });
  });
});

describe("tables", () => {
  it("pads columns to the widest cell and trims trailing space", () => {
    expect(
      table(
        ["ID", "NAME"],
        [
          ["a", "x"],
          ["long-id", ""],
        ],
      ),
    ).toBe("ID       NAME\na        x\nlong-id\n");
    expect(
      quotaTable([
        { resource: "volumes", limit: -1, inUse: 2 },
        { resource: "snapshots", limit: 10, inUse: 0 },
      ]),
    ).toBe("RESOURCE   LIMIT      IN_USE\nvolumes    unlimited  2\nsnapshots  10         0\n");
  });

  it("says what an event is about", () => {
    const line = eventLine({
      messageId: "m",
      eventType: "snapshot.create.end",
      publisherId: "snapshot.vol1",
      priority: "INFO",
      timestamp: new Date("2026-01-02T03:04:05.000Z"),
      payload: { snapshot_id: "s1", volume_id: "v1", status: "available" },
    });
    expect(line).toBe(
      "2026-01-02T03:04:05.000Z  INFO   snapshot.create.end         snapshot s1 (volume v1)  available",
    );
  });
});

describe("volume types", () => {
  it("are a table of id, name, visibility, description and extra specs, and full JSON", () => {
    const type = VolumeType.fromPartial({
      id: "t1",
      name: "fast",
      isPublic: false,
      extraSpecs: { volume_backend_name: "ssd", multiattach: "<is> True" },
    });
    expect(volumeTypeTable([type])).toBe(
      "ID  NAME  PUBLIC  DESCRIPTION  EXTRA_SPECS\n" +
        "t1  fast  false                volume_backend_name=ssd, multiattach=<is> True\n",
    );
    expect(volumeTypeJson(type)).toEqual({
      id: "t1",
      name: "fast",
      description: "",
      isPublic: false,
      extraSpecs: { volume_backend_name: "ssd", multiattach: "<is> True" },
      qosSpecsId: "",
    });
  });
});
