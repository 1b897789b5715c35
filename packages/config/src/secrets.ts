import { readFileSync } from "node:fs";

/** Settings whose value is a secret as a whole: never printed, whatever it holds. */
const SECRET_VALUE = /_(PASSWORD|TOKEN|SECRET)$/;

/** Settings that may be given as `<NAME>_FILE` (the file's content): secrets, and URLs that may carry one. */
const FILE_ALLOWED = /_(PASSWORD|TOKEN|SECRET|URL)$/;

/** The suffix of a setting that names the file holding another setting's value. */
const FILE_SUFFIX = "_FILE";

/** What a redacted secret is printed as. */
export const REDACTED = "[redacted]";

/**
 * `scheme://user:password@` anywhere in a text (one or several URLs, e.g. a NATS server list).
 * NOTE: the password runs to the last `@` before the host: an unencoded `@` or `:` in it is still
 * hidden whole.
 */
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s:@/]*:)[^\s/]*@/gi;

/** The text with the password of every URL in it replaced by `***` (`postgres://user:***@host/db`). */
export function scrubUrlPasswords(text: string): string {
  return text.replace(URL_PASSWORD, "$1***@");
}

/** True for a setting (or field) name whose whole value is a secret (`*_PASSWORD`, `*_TOKEN`, `*_SECRET`). */
function isSecretName(name: string): boolean {
  return SECRET_VALUE.test(name.toUpperCase());
}

/** A setting's value as it may be printed: `[redacted]` for a secret, a URL without its password. */
export function printableSetting(name: string, value: string): string {
  // NOTE: an empty secret is shown as empty: there is nothing to hide, and "missing" is the news.
  return isSecretName(name) && value !== "" ? REDACTED : scrubUrlPasswords(value);
}

/** Where a value read from a `<NAME>_FILE` came from, for error messages. */
interface SecretFileSource {
  /** The `<NAME>_FILE` setting. */
  variable: string;
  path: string;
}

/** Settings after their `<NAME>_FILE` forms were read, and what went wrong. */
interface ResolvedSecrets {
  values: Record<string, string>;
  /** Setting name → the file its value came from. */
  files: Map<string, SecretFileSource>;
  problems: string[];
}

/** True when `key` is `<NAME>_FILE` for a setting NAME that may be given from a file. */
export function isSecretFileKey(key: string, isSetting: (name: string) => boolean): boolean {
  if (!key.endsWith(FILE_SUFFIX)) return false;
  const name = key.slice(0, -FILE_SUFFIX.length);
  return FILE_ALLOWED.test(name) && isSetting(name);
}

/**
 * Replaces each `<NAME>_FILE` in `values` (one source: the environment, or the config file) whose
 * NAME is one of `names` and ends in _PASSWORD, _TOKEN, _SECRET or _URL by NAME = the file's content, its
 * trailing newline trimmed. Works by the name alone, so a setting added anywhere gets it for free.
 * Both forms in one source, or an unreadable file, is a problem (naming the variables and the path,
 * never the content). `where` says which source, e.g. ` (in /etc/cinderblock.json)`.
 */
export function resolveSecretFiles(
  values: Record<string, string | undefined>,
  names: readonly string[],
  where = "",
): ResolvedSecrets {
  const resolved: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) if (value !== undefined) resolved[key] = value;
  const files = new Map<string, SecretFileSource>();
  const problems: string[] = [];
  for (const name of names) {
    if (!FILE_ALLOWED.test(name)) continue;
    const variable = `${name}${FILE_SUFFIX}`;
    const path = resolved[variable];
    if (path === undefined) continue;
    delete resolved[variable];
    // NOTE: an empty NAME counts as not given (`DATABASE_URL=` left over in a compose file).
    if (resolved[name] !== undefined && resolved[name] !== "") {
      problems.push(`  ${name} and ${variable}${where}: both are set; give one of them`);
      delete resolved[name];
      continue;
    }
    try {
      resolved[name] = readFileSync(path, "utf8").replace(/[\r\n]+$/, "");
      files.set(name, { variable, path });
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? "unreadable";
      problems.push(`  ${variable}=${JSON.stringify(path)}${where}: cannot read the file (${reason})`);
    }
  }
  return { values: resolved, files, problems };
}

/** Field names (any case) whose values a log line must never show. */
const SECRET_FIELD = /(^|_)(password|pass|passwd|token|secret|authorization|cookie|credentials?)$|^x-auth-token$/i;

/**
 * A copy of `value` safe to log: fields named like secrets (`password`, `token`, `*_PASSWORD`,
 * `authorization`, `x-auth-token`...) become `[redacted]`, and URL passwords in every string become
 * `***`. Walks plain objects and arrays (to `depth`), leaves other objects as they are.
 */
export function redactSecrets(value: unknown, depth = 4): unknown {
  if (typeof value === "string") return scrubUrlPasswords(value);
  if (depth <= 0 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth - 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    out[key] =
      SECRET_FIELD.test(key) && field !== undefined && field !== null ? REDACTED : redactSecrets(field, depth - 1);
  }
  return out;
}
