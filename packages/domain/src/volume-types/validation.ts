import { CinderblockError } from "../errors.js";
import { QOS_TUNE_KEYS } from "./resolve.js";

/** C0 and C1 control characters. */
const CONTROL = /\p{Cc}/u;
/** Cinder's validate_key_names: letters, digits, '-', '_', ':', '.' and spaces. */
const KEY = /^[A-Za-z0-9_:. -]+$/;
const MAX_LENGTH = 255;
const MAX_SPECS = 128;

const refuse = (field: string, message: string): never => {
  throw new CinderblockError("INVALID_ARGUMENT", `${field}: ${message}`);
};

/** A type's or QoS specs' name: 1-255 characters, not blank, no control characters. */
export function validateTypeName(field: string, name: string): string {
  if (name.trim().length === 0) refuse(field, "must not be empty");
  if (name.length > MAX_LENGTH) refuse(field, `must be at most ${MAX_LENGTH} characters`);
  if (CONTROL.test(name)) refuse(field, "must not contain control characters");
  return name;
}

/** A description: at most 255 characters, no control characters. */
export function validateDescription(description: string): string {
  if (description.length > MAX_LENGTH) refuse("description", `must be at most ${MAX_LENGTH} characters`);
  if (CONTROL.test(description)) refuse("description", "must not contain control characters");
  return description;
}

/** An extra spec or QoS key (Cinder: at most 255 characters of letters, digits, '-', '_', ':', '.', space). */
export function validateSpecKey(field: string, key: string): string {
  if (key.length === 0 || key.length > MAX_LENGTH) refuse(field, `keys must be 1-${MAX_LENGTH} characters`);
  if (!KEY.test(key)) refuse(field, "keys must be letters, digits, '-', '_', ':', '.' or spaces");
  return key;
}

/** Extra specs (Cinder: keys and values at most 255 characters); `field` names the map. */
export function validateSpecs(field: string, specs: Record<string, string>): Record<string, string> {
  const entries = Object.entries(specs);
  if (entries.length > MAX_SPECS) refuse(field, `must have at most ${MAX_SPECS} entries`);
  for (const [key, value] of entries) {
    validateSpecKey(field, key);
    if (value.length > MAX_LENGTH) refuse(field, `values must be at most ${MAX_LENGTH} characters`);
    if (CONTROL.test(value)) refuse(field, "values must not contain control characters");
  }
  return specs;
}

const NUMERIC_QOS_KEYS = new Set(
  QOS_TUNE_KEYS.flatMap((k) => [k, `${k}_per_gb`, `${k}_per_gb_min`, `${k}_max`, `${k}_max_length`]),
);

/** QoS specs: as extra specs, and the limits an attach computes with must be whole numbers ≥ 0. */
export function validateQosSpecs(specs: Record<string, string>): Record<string, string> {
  validateSpecs("specs", specs);
  for (const [key, value] of Object.entries(specs)) {
    if (NUMERIC_QOS_KEYS.has(key) && !/^\d{1,15}$/.test(value)) refuse("specs", `${key} must be a whole number`);
  }
  return specs;
}

/** QoS consumers, as Cinder spells them. */
export type QosConsumer = "front-end" | "back-end" | "both";

/** A project id named by an administrator: 1-255 characters, no control characters. */
export function validateProjectId(projectId: string): string {
  if (projectId.length === 0 || projectId.length > MAX_LENGTH)
    refuse("project_id", `must be 1-${MAX_LENGTH} characters`);
  if (CONTROL.test(projectId)) refuse("project_id", "must not contain control characters");
  return projectId;
}
