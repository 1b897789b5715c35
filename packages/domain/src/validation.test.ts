import { describe, expect, it } from "vitest";
import { CinderblockError } from "./errors.js";
import {
  type CreateSnapshotInput,
  type CreateVolumeInput,
  validateCreateSnapshot,
  validateCreateVolume,
  validateId,
  validatePageSize,
  validateRequest,
} from "./validation.js";

const volume: CreateVolumeInput = {
  name: "vol",
  description: "",
  sizeGb: 1,
  volumeType: "",
  availabilityZone: "",
  bootable: false,
  imageMetadata: {},
  encryptionKeyId: "",
  metadata: {},
  clientRequestId: "",
  snapshotId: "",
  sourceVolumeId: "",
  multiattach: false,
  sameHost: [],
  differentHost: [],
};
const snapshot: CreateSnapshotInput = {
  volumeId: "8c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f70",
  name: "snap",
  description: "",
  force: false,
  metadata: {},
  groupSnapshotId: "",
  clientRequestId: "",
};

function errorOf(fn: () => unknown): CinderblockError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CinderblockError) return error;
    throw error;
  }
  throw new Error("expected a CinderblockError");
}

describe("validateCreateVolume", () => {
  it("accepts a valid request", () => {
    expect(validateCreateVolume(volume)).toEqual(volume);
  });

  it.each([
    [{ sizeGb: 0 }, "size_gb: must be at least 1"],
    [{ sizeGb: -3 }, "size_gb: must be at least 1"],
    [{ sizeGb: 1.5 }, "size_gb: must be a whole number of GiB"],
    [{ name: "   " }, "name: must not be blank (leave it empty for an unnamed volume)"],
    [{ name: "x".repeat(256) }, "name: must be at most 255 characters"],
    [{ description: "d".repeat(256) }, "description: must be at most 255 characters"],
    [{ encryptionKeyId: "not-a-uuid" }, "encryption_key_id: must be a UUID"],
    [{ metadata: { k: "v".repeat(256) } }, "metadata.k: values must be at most 255 characters"],
    [{ imageMetadata: { "": "v" } }, "image_metadata"],
  ])("refuses %o with INVALID_ARGUMENT naming the field", (patch, message) => {
    const error = errorOf(() => validateCreateVolume({ ...volume, ...patch }));
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toContain(message);
  });

  it("accepts an unnamed volume (an empty name), as Cinder does", () => {
    expect(validateCreateVolume({ ...volume, name: "" }).name).toBe("");
  });

  it("bounds the number of metadata entries", () => {
    const metadata = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, "v"]));
    const error = errorOf(() => validateCreateVolume({ ...volume, metadata }));
    expect(error.message).toBe("metadata: must have at most 128 entries");
  });
});

describe("validateCreateSnapshot", () => {
  it("accepts a valid request", () => {
    expect(validateCreateSnapshot(snapshot)).toEqual(snapshot);
  });

  it.each([
    [{ volumeId: "" }, "volume_id: must be a UUID"],
    [{ volumeId: "../etc" }, "volume_id: must be a UUID"],
    [{ name: "" }, "name: must not be empty"],
    [{ groupSnapshotId: "g1" }, "group_snapshot_id: must be a UUID"],
  ])("refuses %o naming the field", (patch, message) => {
    const error = errorOf(() => validateCreateSnapshot({ ...snapshot, ...patch }));
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toBe(message);
  });
});

describe("ids and page sizes", () => {
  it("normalises ids to lower case and refuses malformed ones", () => {
    expect(validateId("id", "8C0B4B62-8F0E-4A43-9A43-2D3C4B5A6F70")).toBe("8c0b4b62-8f0e-4a43-9a43-2d3c4b5a6f70");
    expect(errorOf(() => validateId("volume_id", "abc")).message).toBe("volume_id: must be a UUID");
  });

  it("defaults the page size to 100 and caps it at 1000", () => {
    expect(validatePageSize(0)).toBe(100);
    expect(validatePageSize(1000)).toBe(1000);
    expect(errorOf(() => validatePageSize(1001)).message).toContain("page_size");
    expect(errorOf(() => validatePageSize(-1)).code).toBe("INVALID_ARGUMENT");
  });
});

describe("validateRequest", () => {
  const limits = { maxStringLength: 100, maxEntries: 4, maxCollectionBytes: 200 };
  const refusal = (request: object) => {
    try {
      validateRequest(request, limits);
      return "accepted";
    } catch (error) {
      return `${(error as CinderblockError).code} ${(error as Error).message}`;
    }
  };

  it("refuses a control character in any string, map key or list entry, naming the field", () => {
    expect(refusal({ name: "a\u0000b" })).toBe("INVALID_ARGUMENT name: must not contain control characters");
    expect(refusal({ imageMetadata: { "k\u0007": "v" } })).toBe(
      "INVALID_ARGUMENT image_metadata: keys must not contain control characters",
    );
    expect(refusal({ connector: { host: "h\u009f" } })).toBe(
      "INVALID_ARGUMENT connector: must not contain control characters",
    );
    expect(refusal({ volumeIds: ["a", "\n"] })).toBe(
      "INVALID_ARGUMENT volume_ids[1]: must not contain control characters",
    );
  });

  it("bounds every string, map and list, each and in all", () => {
    expect(refusal({ name: "x".repeat(101) })).toBe("INVALID_ARGUMENT name: must be at most 100 characters");
    expect(refusal({ eventTypes: ["a", "b", "c", "d", "e"] })).toBe(
      "INVALID_ARGUMENT event_types: must have at most 4 entries",
    );
    expect(refusal({ connector: { a: "x".repeat(99), b: "x".repeat(99), c: "x" } })).toBe(
      "INVALID_ARGUMENT connector: must be at most 200 bytes in all",
    );
  });

  it("accepts unicode, numbers, booleans and bytes within the bounds", () => {
    expect(refusal({ name: "名前 💾 é", sizeGb: 3, bootable: true, data: new Uint8Array(500), limits: { v: 1 } })).toBe(
      "accepted",
    );
  });
});
