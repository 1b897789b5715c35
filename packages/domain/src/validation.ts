import { z } from "zod";
import { CinderblockError } from "./errors.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Limits on user-supplied key/value maps (Cinder: 255 characters per key and value). */
const MAX_METADATA_ENTRIES = 128;
const MAX_METADATA_LENGTH = 255;
/** Largest volume accepted, in GiB (16 TiB). */
const MAX_VOLUME_SIZE_GB = 16384;

/** C0 and C1 control characters (NUL included): PostgreSQL refuses NUL, and none belongs in a name. */
const CONTROL = /\p{Cc}/u;
const CONTROL_MESSAGE = "must not contain control characters";
const noControl = (s: string) => !CONTROL.test(s);

const uuid = z.string().regex(UUID, "must be a UUID");
const optionalUuid = z.union([z.literal(""), uuid]);
const name = z
  .string()
  .max(255, "must be at most 255 characters")
  .refine(noControl, CONTROL_MESSAGE)
  .refine((s) => s.trim().length > 0, "must not be empty");
/** A volume's name may be left empty (Cinder's unnamed volume, e.g. Nova's boot volumes), never blank. */
const volumeName = z
  .string()
  .max(255, "must be at most 255 characters")
  .refine(noControl, CONTROL_MESSAGE)
  .refine((s) => s === "" || s.trim().length > 0, "must not be blank (leave it empty for an unnamed volume)");
const description = z.string().max(255, "must be at most 255 characters").refine(noControl, CONTROL_MESSAGE);
const stringMap = z
  .record(
    z
      .string()
      .min(1, "keys must not be empty")
      .max(MAX_METADATA_LENGTH, `keys must be at most ${MAX_METADATA_LENGTH} characters`)
      .refine(noControl, `keys ${CONTROL_MESSAGE}`),
    z
      .string()
      .max(MAX_METADATA_LENGTH, `values must be at most ${MAX_METADATA_LENGTH} characters`)
      .refine(noControl, `values ${CONTROL_MESSAGE}`),
  )
  .refine((m) => Object.keys(m).length <= MAX_METADATA_ENTRIES, `must have at most ${MAX_METADATA_ENTRIES} entries`);

const clientRequestId = z.string().regex(/^[A-Za-z0-9._:-]{0,128}$/, "must be at most 128 letters, digits or . _ : -");

const sizeGb = z
  .number()
  .int("must be a whole number of GiB")
  .max(MAX_VOLUME_SIZE_GB, `must be at most ${MAX_VOLUME_SIZE_GB}`);

const createVolumeSchema = z
  .object({
    name: volumeName,
    description,
    sizeGb,
    volumeType: z.string().max(255, "must be at most 255 characters"),
    availabilityZone: z.string().max(255, "must be at most 255 characters"),
    bootable: z.boolean(),
    imageMetadata: stringMap,
    encryptionKeyId: optionalUuid,
    metadata: stringMap,
    clientRequestId,
    snapshotId: optionalUuid,
    sourceVolumeId: optionalUuid,
    multiattach: z.boolean(),
    sameHost: z.array(uuid),
    differentHost: z.array(uuid),
  })
  // One source at most (Cinder refuses a snapshot_id together with a source_volid).
  .refine((v) => v.snapshotId === "" || v.sourceVolumeId === "", {
    path: ["sourceVolumeId"],
    message: "must be empty when snapshot_id is set: a volume has one source",
  })
  // 0 means "the source's size" when creating from a snapshot or a volume; otherwise a size is required.
  .refine((v) => v.sizeGb >= 1 || (v.sizeGb === 0 && (v.snapshotId !== "" || v.sourceVolumeId !== "")), {
    path: ["sizeGb"],
    message: "must be at least 1",
  });

const createSnapshotSchema = z.object({
  volumeId: uuid,
  name,
  description,
  force: z.boolean(),
  metadata: stringMap,
  groupSnapshotId: optionalUuid,
  clientRequestId,
});

const updateSchema = z.object({
  name: name.optional(),
  description: description.optional(),
});

const metadataKey = z
  .string()
  .min(1, "must not be empty")
  .max(MAX_METADATA_LENGTH, `must be at most ${MAX_METADATA_LENGTH} characters`)
  .refine(noControl, CONTROL_MESSAGE);

/** A validated Update request (unset fields stay as they are). */
export type UpdateInput = z.infer<typeof updateSchema>;

/** Validates an Update request; throws INVALID_ARGUMENT naming the first bad field. */
export function validateUpdate(input: UpdateInput): UpdateInput {
  return validate(updateSchema, input);
}

/** Validates metadata given to a SetMetadata request. */
export function validateMetadata(metadata: Record<string, string>): Record<string, string> {
  return validate(z.object({ metadata: stringMap }), { metadata }).metadata;
}

/** Validates a metadata key given to a DeleteMetadata request. */
export function validateMetadataKey(key: string): string {
  return validate(z.object({ key: metadataKey }), { key }).key;
}

/** Refuses metadata that grew past the bound by merging. */
export function assertMetadataBound(metadata: Record<string, string>): void {
  if (Object.keys(metadata).length > MAX_METADATA_ENTRIES) {
    throw new CinderblockError("INVALID_ARGUMENT", `metadata: must have at most ${MAX_METADATA_ENTRIES} entries`);
  }
}

/** A validated CreateVolume request. */
export type CreateVolumeInput = z.infer<typeof createVolumeSchema>;
/** A validated CreateSnapshot request. */
export type CreateSnapshotInput = z.infer<typeof createSnapshotSchema>;

/** Field names as the API spells them (proto's snake_case). */
function fieldName(path: readonly PropertyKey[]): string {
  return path.map((p) => String(p).replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)).join(".");
}

/** Validates a list's name filter (as a name, but empty means "any"). */
export function validateNameFilter(filter: string): string {
  if (filter.length > 255) throw new CinderblockError("INVALID_ARGUMENT", "name: must be at most 255 characters");
  if (CONTROL.test(filter)) throw new CinderblockError("INVALID_ARGUMENT", `name: ${CONTROL_MESSAGE}`);
  return filter;
}

/** Bounds on every public request, whatever its method (the api's CINDERBLOCK_REQUEST_* settings). */
export interface RequestLimits {
  /** Characters of any one string: a field, a map key or value, a list entry. */
  maxStringLength: number;
  /** Entries of any one map or list. */
  maxEntries: number;
  /** UTF-8 bytes of any one map (keys and values) or list of strings, all entries together. */
  maxCollectionBytes: number;
}

/**
 * Refuses a request (a decoded protobuf message) holding a control character in any string, map
 * key included, or a string, map or list past `limits`: INVALID_ARGUMENT naming the field as the
 * API spells it (`connector: ...`, `volume_ids[3]: ...`). Runs on every public call before the use
 * case, so a field added later is covered without a line of its own; use cases still check their
 * fields' own, tighter rules.
 */
export function validateRequest(request: object, limits: RequestLimits): void {
  const refuse = (field: string, message: string): never => {
    throw new CinderblockError("INVALID_ARGUMENT", `${field}: ${message}`);
  };
  const checkString = (field: string, value: string, what = ""): number => {
    if (value.length > limits.maxStringLength)
      refuse(field, `${what}must be at most ${limits.maxStringLength} characters`);
    if (CONTROL.test(value)) refuse(field, `${what}${CONTROL_MESSAGE}`);
    return Buffer.byteLength(value, "utf8");
  };
  const checkTotal = (field: string, count: number, bytes: number): number => {
    if (count > limits.maxEntries) refuse(field, `must have at most ${limits.maxEntries} entries`);
    if (bytes > limits.maxCollectionBytes) refuse(field, `must be at most ${limits.maxCollectionBytes} bytes in all`);
    return bytes;
  };
  /** Checks a field's value and returns its size in bytes (strings and map keys). */
  const sizeOf = (field: string, value: unknown): number => {
    if (typeof value === "string") return checkString(field, value);
    if (value instanceof Uint8Array) return value.length;
    if (value === null || typeof value !== "object") return 0;
    if (Array.isArray(value)) {
      if (value.length > limits.maxEntries) refuse(field, `must have at most ${limits.maxEntries} entries`);
      const bytes = value.reduce<number>((sum, entry, i) => sum + sizeOf(`${field}[${i}]`, entry), 0);
      return checkTotal(field, value.length, bytes);
    }
    // NOTE: below the top level a plain object is a map (no public request nests a message);
    // entries are named by the map alone, so a refused key is never echoed back.
    const entries = Object.entries(value);
    if (entries.length > limits.maxEntries) refuse(field, `must have at most ${limits.maxEntries} entries`);
    const bytes = entries.reduce(
      (sum, [key, entry]) => sum + checkString(field, key, "keys ") + sizeOf(field, entry),
      0,
    );
    return checkTotal(field, entries.length, bytes);
  };
  for (const [key, value] of Object.entries(request)) sizeOf(fieldName([key]), value);
}

function validate<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue ? fieldName(issue.path) : "request";
  throw new CinderblockError("INVALID_ARGUMENT", `${field}: ${issue?.message ?? "is invalid"}`);
}

/** Validates a CreateVolume request; throws INVALID_ARGUMENT naming the first bad field. */
export function validateCreateVolume(input: CreateVolumeInput): CreateVolumeInput {
  return validate(createVolumeSchema, input);
}

/** Validates a CreateSnapshot request; throws INVALID_ARGUMENT naming the first bad field. */
export function validateCreateSnapshot(input: CreateSnapshotInput): CreateSnapshotInput {
  return validate(createSnapshotSchema, input);
}

/** Validates an idempotency key (empty: none); throws INVALID_ARGUMENT naming the field. */
export function validateClientRequestId(key: string): string {
  return validate(z.object({ clientRequestId }), { clientRequestId: key }).clientRequestId;
}

/** Validates a resource id given by a caller; throws INVALID_ARGUMENT naming the field. */
export function validateId(field: string, id: string): string {
  if (!UUID.test(id)) throw new CinderblockError("INVALID_ARGUMENT", `${field}: must be a UUID`);
  return id.toLowerCase();
}

/** Validates the new size of an ExtendVolume request against the current one. */
export function validateNewSize(newSizeGb: number, currentGb: number): number {
  validate(z.object({ newSizeGb: sizeGb }), { newSizeGb });
  if (newSizeGb <= currentGb) {
    throw new CinderblockError("INVALID_ARGUMENT", `new_size_gb: must be larger than the current size ${currentGb}`);
  }
  return newSizeGb;
}

/** Validates a page size: 0 means the default (100); at most 1000. */
export function validatePageSize(pageSize: number): number {
  if (!Number.isInteger(pageSize) || pageSize < 0 || pageSize > 1000) {
    throw new CinderblockError("INVALID_ARGUMENT", "page_size: must be between 0 and 1000");
  }
  return pageSize === 0 ? 100 : pageSize;
}
