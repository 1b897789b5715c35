/**
 * Cinder's microversion negotiation (cinder/api/openstack/api_version_request.py and wsgi.py):
 * `OpenStack-API-Version: volume 3.x` (or the legacy `X-OpenStack-Volume-API-Version: 3.x`); none
 * means the minimum, `latest` the maximum, a version outside the range is refused with 406.
 */

/** The oldest microversion served (Cinder's _MIN_API_VERSION). */
export const MIN_MICROVERSION = "3.0";
/**
 * The newest microversion whose response shapes this listener follows: fields Cinder adds up to
 * 3.64 (group_id 3.13, provider_id 3.21, user_id on snapshots 3.41, count 3.45, shared_targets and
 * service_uuid 3.48, cluster_name 3.61, volume_type_id 3.63, encryption_key_id 3.64).
 */
export const MAX_MICROVERSION = "3.64";

/** A negotiated version: major 3 and its minor number. */
export interface Microversion {
  major: number;
  minor: number;
}

/** `3.41` → {3, 41}; undefined for anything that is not `<digits>.<digits>` without leading zeros. */
function parse(text: string): Microversion | undefined {
  const m = /^([1-9]\d*)\.(0|[1-9]\d*)$/.exec(text.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

const MIN = parse(MIN_MICROVERSION) as Microversion;
const MAX = parse(MAX_MICROVERSION) as Microversion;

/** The version as Cinder writes it, e.g. `3.41`. */
export function formatMicroversion(v: Microversion): string {
  return `${v.major}.${v.minor}`;
}

/** Whether `v` is at least `major.minor` (Cinder's `req_version.matches(x, None)`). */
export function atLeast(v: Microversion, version: string): boolean {
  const want = parse(version) as Microversion;
  return v.major > want.major || (v.major === want.major && v.minor >= want.minor);
}

/** Why negotiation failed: 400 for a malformed header, 406 for a version not served. */
export class MicroversionError extends Error {
  constructor(
    readonly status: 400 | 406,
    message: string,
  ) {
    super(message);
    this.name = "MicroversionError";
  }
}

/**
 * The microversion of a request from its headers (lower-case names). The new header wins over the
 * legacy one; `OpenStack-API-Version` may name several services (`compute 2.1, volume 3.5`).
 */
export function negotiateMicroversion(headers: Record<string, string | string[] | undefined>): Microversion {
  const one = (name: string) => {
    const value = headers[name];
    return Array.isArray(value) ? value.join(",") : value;
  };
  let requested: string | undefined;
  const modern = one("openstack-api-version");
  if (modern !== undefined) {
    for (const part of modern.split(",")) {
      const [service, version, ...rest] = part.trim().split(/\s+/);
      if (service?.toLowerCase() === "volume" && version !== undefined && rest.length === 0) requested = version;
    }
  }
  requested ??= one("x-openstack-volume-api-version")?.trim();
  if (requested === undefined || requested === "") return MIN;
  if (requested.toLowerCase() === "latest") return MAX;
  const v = parse(requested);
  if (!v) {
    throw new MicroversionError(400, `API Version String ${requested} is of invalid format. Must be of format 3.x`);
  }
  const tooLow = v.major < MIN.major || (v.major === MIN.major && v.minor < MIN.minor);
  const tooHigh = v.major > MAX.major || (v.major === MAX.major && v.minor > MAX.minor);
  if (tooLow || tooHigh) {
    throw new MicroversionError(
      406,
      `Version ${requested} is not supported by the API. Minimum is ${MIN_MICROVERSION} and maximum is ${MAX_MICROVERSION}.`,
    );
  }
  return v;
}
