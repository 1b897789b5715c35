/**
 * Cinder's extra-spec matching (cinder/scheduler/filters/extra_specs_ops.py): does a capability
 * value a backend reports satisfy one requirement of a volume type?
 *
 * A requirement is either a plain string (the value must be that very string) or an operator and
 * its operand(s), separated by whitespace:
 *
 * | requirement        | matches when the value is...                                          |
 * | ------------------ | --------------------------------------------------------------------- |
 * | `<is> True`        | the same boolean (`1 t true on y yes` are true, anything else false)  |
 * | `<in> abc`         | a string containing `abc`                                             |
 * | `<or> a <or> b`    | the string `a` or the string `b`                                      |
 * | `<all-in> a b`     | a list holding every word (or a string containing every word)         |
 * | `= 10`             | a number **at least** 10 (Cinder's quirk: `=` is `>=`)                |
 * | `== 10`, `!= 10`   | a number equal (or not) to 10                                         |
 * | `>= 10`, `<= 10`   | a number at least / at most 10                                        |
 * | `s== x`, `s!= x`   | the string `x` (or anything else)                                     |
 * | `s< x` ... `s>= x` | a string ordered before / after `x`                                   |
 *
 * NOTE: `<`, `>` are no operators in Cinder: `> 2` is compared as the plain string "> 2" (and so
 * matches nothing a driver reports). `<all-in>` is Nova's operator, not Cinder's; it is here
 * because types written for Nova use it on list capabilities.
 */

/** What a value must be for a numeric operator: Python's float() of it, or undefined when float() would raise. */
export function pythonFloat(value: unknown): number | undefined {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number") return value;
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  if (/^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i.test(text)) return Number(text);
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(text);
  if (!special) return undefined;
  if (special[2]?.toLowerCase() === "nan") return Number.NaN;
  return special[1] === "-" ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
}

/** oslo's strutils.bool_from_string (not strict): a boolean as is, anything else true only when it spells true. */
export function boolFromString(value: unknown): boolean {
  if (typeof value === "boolean") return value;
  return ["1", "t", "true", "on", "y", "yes"].includes(String(value).trim().toLowerCase());
}

type Operator = (value: unknown, operand: string) => boolean;

const numeric =
  (compare: (a: number, b: number) => boolean): Operator =>
  (value, operand) => {
    const a = pythonFloat(value);
    const b = pythonFloat(operand);
    return a !== undefined && b !== undefined && compare(a, b);
  };

const ordered =
  (compare: (a: string, b: string) => boolean): Operator =>
  (value, operand) =>
    typeof value === "string" && compare(value, operand);

const OPERATORS: Record<string, Operator> = {
  "=": numeric((a, b) => a >= b),
  "==": numeric((a, b) => a === b),
  "!=": numeric((a, b) => a !== b),
  ">=": numeric((a, b) => a >= b),
  "<=": numeric((a, b) => a <= b),
  "<in>": (value, operand) => typeof value === "string" && value.includes(operand),
  "<is>": (value, operand) => boolFromString(value) === boolFromString(operand),
  // NOTE: Python's == and != between a number and a string: never equal.
  "s==": (value, operand) => value === operand,
  "s!=": (value, operand) => value !== operand,
  "s<": ordered((a, b) => a < b),
  "s<=": ordered((a, b) => a <= b),
  "s>": ordered((a, b) => a > b),
  "s>=": ordered((a, b) => a >= b),
};

/**
 * Whether a capability value satisfies a requirement, as Cinder's extra_specs_ops.match. A
 * `null`/`undefined` requirement matches only a missing value; a value the operator cannot
 * compare (a number for `s<`, "abc" for `>=`) does not match.
 */
export function matchesSpec(value: unknown, requirement: string | null | undefined): boolean {
  if (requirement === null || requirement === undefined) return value === null || value === undefined;
  const words = requirement.split(/\s+/).filter((w) => w !== "");
  const op = words.shift();
  const method = op === undefined ? undefined : OPERATORS[op];
  if (op !== "<or>" && op !== "<all-in>" && !method) return value === requirement;
  if (value === null || value === undefined) return false;
  if (op === "<or>") {
    // "<or> a <or> b": every other word is a choice.
    for (let i = 0; i < words.length; i += 2) if (words[i] === value) return true;
    return false;
  }
  if (op === "<all-in>") {
    if (words.length === 0) return false;
    if (Array.isArray(value)) return words.every((w) => value.includes(w));
    return typeof value === "string" && words.every((w) => value.includes(w));
  }
  const operand = words[0];
  return operand !== undefined && method?.(value, operand) === true;
}
