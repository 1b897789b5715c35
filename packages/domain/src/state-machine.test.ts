import type { VolumeStatus } from "@cinderblock/db";
import { describe, expect, it } from "vitest";
import { assertVolumeSnapshottable } from "./state-machine.js";

const id = "8c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f70";

function check(status: VolumeStatus, migrationStatus: string | null = null) {
  return () => assertVolumeSnapshottable({ id, status, migrationStatus });
}

describe("assertVolumeSnapshottable", () => {
  it("allows an available volume", () => {
    expect(check("available")).not.toThrow();
  });

  it("allows an in-use volume without force (Cinder 3.66)", () => {
    expect(check("in-use")).not.toThrow();
  });

  it.each<VolumeStatus>(["creating", "error", "deleting", "error_deleting", "attaching", "extending"])(
    "refuses a %s volume naming its status",
    (status) => {
      expect(check(status)).toThrow(`status must be available or in-use, but is ${status}`);
    },
  );

  it("refuses a volume in maintenance", () => {
    expect(check("maintenance")).toThrow(`volume ${id} is in maintenance`);
  });

  it("refuses a migrating volume but not one whose migration ended", () => {
    expect(check("available", "migrating")).toThrow(/migrating \(migration_status migrating\)/);
    expect(check("available", "starting")).toThrow(/migrating/);
    expect(check("available", "success")).not.toThrow();
    expect(check("available", "error")).not.toThrow();
  });
});
