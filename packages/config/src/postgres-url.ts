/** The `target_session_attrs` values postgres.js accepts (a subset of libpq's). */
const TARGET_SESSION_ATTRS: readonly string[] = ["read-write", "read-only", "primary", "standby", "prefer-standby"];

/** One server of a PostgreSQL URL's host list. */
export interface PostgresHost {
  /** A name or an IPv4 address (an IPv6 one only when it is the URL's only host, without brackets). */
  host: string;
  /** The port given for it, else 5432 (libpq's default, per host). */
  port: number;
}

/** A libpq URL taken apart: its servers, and everything else as a WHATWG URL. */
export interface PostgresUrl {
  /** Every server, in the order they are tried; empty when the URL names none (a local socket). */
  hosts: PostgresHost[];
  /**
   * The URL with its first server as the host: user, password, database (`pathname`) and
   * parameters (`searchParams`) read and change as on any URL; {@link formatPostgresUrl} puts the
   * whole host list back.
   */
  url: URL;
}

const URL_SHAPE = /^(postgres(?:ql)?:)\/\/([^/?#]*)(.*)$/s;

/**
 * Parses a libpq connection URL, one server (`postgres://user@db:5432/x`) or several
 * (`postgres://user@h1:5432,h2:5433/x?target_session_attrs=read-write`, tried in order), which
 * `new URL` refuses. Throws an Error saying what is wrong (the caller names the setting).
 *
 * NOTE: postgres.js splits each entry of a host list at its first colon, so an IPv6 address is
 * refused in a list of several (a name that resolves to it works); alone it is fine.
 */
export function parsePostgresUrl(text: string): PostgresUrl {
  const shape = URL_SHAPE.exec(text);
  if (!shape) throw new Error("expected a postgres:// or postgresql:// URL");
  const [, scheme, authority = "", rest = ""] = shape;
  const at = authority.lastIndexOf("@");
  const userInfo = at >= 0 ? authority.slice(0, at + 1) : "";
  const list = authority.slice(at + 1);
  const entries = list === "" ? [] : list.split(",");
  const hosts = entries.map((entry) => hostOf(entry, entries.length));
  let url: URL;
  try {
    url = new URL(`${scheme}//${userInfo}${entries[0] ?? ""}${rest}`);
  } catch {
    throw new Error("not a valid URL");
  }
  return { hosts, url };
}

function hostOf(entry: string, count: number): PostgresHost {
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(entry);
  if (bracketed) {
    if (count > 1) throw new Error(`IPv6 address ${entry} in a list of several hosts (use a host name for it)`);
    return { host: bracketed[1] as string, port: portOf(bracketed[2], entry) };
  }
  const plain = /^([^:[\]]+)(?::(\d{0,5}))?$/.exec(entry);
  if (!plain) throw new Error(`bad host "${entry}" (expected host or host:port, hosts separated by commas)`);
  return { host: decodeURIComponent(plain[1] as string), port: portOf(plain[2], entry) };
}

function portOf(digits: string | undefined, entry: string): number {
  if (!digits) return 5432;
  const port = Number(digits);
  if (port < 1 || port > 65535) throw new Error(`bad port in "${entry}"`);
  return port;
}

/**
 * The URL text of `parsed` (after any change to its `url`), with every server of its host list
 * and each one's port written out.
 * NOTE: the ports are always written: postgres.js gives a listed host without one the first
 * host's port, where libpq gives it 5432.
 */
export function formatPostgresUrl(parsed: PostgresUrl): string {
  const { url, hosts } = parsed;
  const user = url.username + (url.password ? `:${url.password}` : "");
  const list = hosts
    .map(({ host, port }) => `${host.includes(":") ? `[${host}]` : encodeURIComponent(host)}:${port}`)
    .join(",");
  return `${url.protocol}//${user ? `${user}@` : ""}${list}${url.pathname}${url.search}${url.hash}`;
}

/**
 * What is wrong with a PostgreSQL URL setting, or undefined: not a libpq URL, or a
 * `target_session_attrs` postgres.js does not know.
 */
export function postgresUrlProblem(text: string): string | undefined {
  let parsed: PostgresUrl;
  try {
    parsed = parsePostgresUrl(text);
  } catch (error) {
    return (error as Error).message;
  }
  const attrs = parsed.url.searchParams.get("target_session_attrs");
  if (attrs !== null && !TARGET_SESSION_ATTRS.includes(attrs)) {
    return `unknown target_session_attrs=${attrs} (expected one of ${TARGET_SESSION_ATTRS.join(", ")})`;
  }
  return undefined;
}
