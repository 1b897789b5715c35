import { CinderblockError } from "@cinderblock/domain";

const bad = (message: string) => new CinderblockError("INVALID_ARGUMENT", message);

/** The object under `key` of a request body (`{"volume": {...}}`), or 400 as Cinder words it. */
export function element(body: unknown, key: string): Record<string, unknown> {
  const value = typeof body === "object" && body !== null ? (body as Record<string, unknown>)[key] : undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad(`Missing required element '${key}' in request body.`);
  }
  return value as Record<string, unknown>;
}

/** A string field (undefined when absent or null); 400 naming the field when it is something else. */
export function optionalString(obj: Record<string, unknown>, field: string): string | undefined {
  const value = obj[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw bad(`${field}: must be a string`);
  return value;
}

const TRUE = new Set(["1", "t", "true", "on", "y", "yes"]);
const FALSE = new Set(["0", "f", "false", "off", "n", "no"]);

/**
 * A boolean as Cinder's `strutils.bool_from_string(strict=True)` reads it: JSON booleans, and the
 * strings real clients send (`"True"`, `"false"`, `"yes"`, `"1"`...); anything else is 400.
 */
export function parseBoolean(value: unknown, field: string, fallback = false): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === "boolean") return value;
  const text = String(value).trim().toLowerCase();
  if (TRUE.has(text)) return true;
  if (FALSE.has(text)) return false;
  throw bad(`Invalid value '${String(value)}' for ${field}: must be a boolean`);
}

/** A whole number given as a JSON number or a string of digits (Cinder takes both for sizes). */
export function parseInteger(value: unknown, field: string): number {
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "string" && /^-?\d{1,10}$/.test(value.trim())) return Number(value.trim());
  throw bad(`${field}: must be an integer`);
}

/** A string-to-string map (metadata, extra specs); 400 naming the field for anything else. */
export function stringMap(value: unknown, field: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw bad(`${field}: must be an object`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== "string") throw bad(`${field}.${k}: must be a string`);
    out[k] = v;
  }
  return out;
}

/**
 * A `metadata` query filter as clients send it: JSON (`{"k": "v"}`), or a Python dict's repr
 * (`{'k': 'v'}`, what cinderclient sends).
 */
export function metadataFilter(text: string | null): Record<string, string> {
  if (text === null || text === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    try {
      parsed = JSON.parse(text.replace(/'/g, '"'));
    } catch {
      throw bad("metadata: must be a JSON object of strings");
    }
  }
  return stringMap(parsed, "metadata");
}
