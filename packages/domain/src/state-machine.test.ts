import type { VolumeStatus } from "@cinderblock/db";
import { describe, expect, it } from "vitest";
import { assertVolumeSnapshottable } from "./state-machine.js";

const id = "8c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f70";

function check(status: VolumeStatus, force: boolean, migrationStatus: string | null = null) {
  return () => assertVolumeSnapshottable({ id, status, migrationStatus }, force);
}

describe("assertVolumeSnapshottable", () => {
  it("allows an available volume, with or without force", () => {
    expect(check("available", false)).not.toThrow();
    expect(check("available", true)).not.toThrow();
  });

  it("allows an in-use volume only with force", () => {
    expect(check("in-use", false)).toThrow(/in-use; set force/);
    expect(check("in-use", true)).not.toThrow();
  });

  it.each<VolumeStatus>(["creating", "error", "deleting", "error_deleting", "attaching", "extending"])(
    "refuses a %s volume naming its status, even with force",
    (status) => {
      expect(check(status, true)).toThrow(`status must be available or in-use, but is ${status}`);
    },
  );

  it("refuses a volume in maintenance", () => {
    expect(check("maintenance", true)).toThrow(`volume ${id} is in maintenance`);
  });

  it("refuses a migrating volume but not one whose migration ended", () => {
    expect(check("available", false, "migrating")).toThrow(/migrating \(migration_status migrating\)/);
    expect(check("available", false, "starting")).toThrow(/migrating/);
    expect(check("available", false, "success")).not.toThrow();
    expect(check("available", false, "error")).not.toThrow();
  });
});
