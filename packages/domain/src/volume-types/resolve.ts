import {
  type Executor,
  getProjectDefaultTypeId,
  getVolumeTypeBy,
  hasVolumeTypeAccess,
  type QosSpecsRow,
  type TypeLock,
  type VolumeTypeRow,
} from "@cinderblock/db";
import { isAdmin, type RequestContext } from "../context.js";
import { CinderblockError } from "../errors.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether the caller may see and use the type: a public one, one its project has access to, or any for an admin. */
export async function mayUseType(db: Executor, ctx: RequestContext, type: VolumeTypeRow): Promise<boolean> {
  return type.isPublic || isAdmin(ctx) || (await hasVolumeTypeAccess(db, type.id, ctx.projectId));
}

/**
 * The type `ref` names (an id, else a name) if the caller may use it; undefined otherwise, so that
 * another project's private type and a type that does not exist look the same.
 */
export async function findUsableType(
  db: Executor,
  ctx: RequestContext,
  ref: string,
  options: TypeLock = {},
): Promise<VolumeTypeRow | undefined> {
  const type =
    (UUID.test(ref) ? await getVolumeTypeBy(db, { id: ref.toLowerCase() }, options) : undefined) ??
    (await getVolumeTypeBy(db, { name: ref }, options));
  return type && (await mayUseType(db, ctx, type)) ? type : undefined;
}

/**
 * The type a volume without one gets (Cinder's volume_types.get_default_volume_type): the
 * project's own default, else the configured one; FAILED_PRECONDITION when that does not exist.
 */
export async function defaultTypeOf(
  db: Executor,
  projectId: string,
  configured: string,
  options: TypeLock = {},
): Promise<{ type: VolumeTypeRow; projectOverride: boolean }> {
  const own = await getProjectDefaultTypeId(db, projectId);
  const type = own ? await getVolumeTypeBy(db, { id: own }, options) : undefined;
  if (type) return { type, projectOverride: true };
  const fallback = await getVolumeTypeBy(db, { name: configured }, options);
  if (!fallback) {
    throw new CinderblockError(
      "FAILED_PRECONDITION",
      `volume_type: the default volume type ${JSON.stringify(configured)} does not exist; ask an administrator`,
    );
  }
  return { type: fallback, projectOverride: false };
}

/**
 * The type a new volume gets (Cinder's create flow, `_extract_volume_type`): `ref` by id or name
 * when given (NOT_FOUND naming volume_type when the project may not use it), else the default.
 * The type row is key-share locked: it cannot be deleted or renamed until the caller commits.
 */
export async function resolveVolumeType(
  tx: Executor,
  ctx: RequestContext,
  ref: string,
  configuredDefault: string,
): Promise<VolumeTypeRow> {
  if (!ref) return (await defaultTypeOf(tx, ctx.projectId, configuredDefault, { lock: "key share" })).type;
  const type = await findUsableType(tx, ctx, ref, { lock: "key share" });
  if (!type) throw new CinderblockError("NOT_FOUND", `volume_type: volume type ${JSON.stringify(ref)} not found`);
  return type;
}

/** Extra spec keys every project may read (Cinder's USER_VISIBLE_EXTRA_SPECS); the rest are for admins. */
const USER_VISIBLE_EXTRA_SPECS = new Set(["RESKEY:availability_zones", "multiattach", "replication_enabled"]);

/** A type's extra specs as a reader may see them: all for an administrator, else the user-visible ones. */
export function visibleExtraSpecs(admin: boolean, specs: Record<string, string>): Record<string, string> {
  if (admin) return specs;
  return Object.fromEntries(Object.entries(specs).filter(([key]) => USER_VISIBLE_EXTRA_SPECS.has(key)));
}

/** The limits Cinder tunes per GiB (`<limit>_per_gb`, with `_per_gb_min` and `_max`). */
export const QOS_TUNE_KEYS = [
  "read_iops_sec",
  "read_bytes_sec",
  "write_iops_sec",
  "write_bytes_sec",
  "total_iops_sec",
  "total_bytes_sec",
] as const;

/**
 * The QoS specs an attach hands the hypervisor (Cinder's `_parse_connection_options`): only those
 * of a front-end or both consumer; each `<limit>_per_gb` becomes `<limit>` = value × size, at least
 * `<limit>_per_gb_min` and at most `<limit>_max`. Undefined when there are none for the front end.
 */
export function frontEndQosSpecs(
  qos: Pick<QosSpecsRow, "consumer" | "specs"> | undefined,
  sizeGb: number,
): Record<string, string> | undefined {
  if (!qos || (qos.consumer !== "front-end" && qos.consumer !== "both")) return undefined;
  const specs = { ...qos.specs };
  for (const option of QOS_TUNE_KEYS) {
    const perGb = specs[`${option}_per_gb`];
    if (perGb === undefined) continue;
    const minimum = Number(specs[`${option}_per_gb_min`] ?? 0);
    const value = Math.max(minimum, Number(perGb) * sizeGb);
    const maximum = Number(specs[`${option}_max`] ?? value);
    specs[option] = String(Math.min(value, maximum));
    delete specs[`${option}_per_gb`];
    delete specs[`${option}_per_gb_min`];
    delete specs[`${option}_max`];
  }
  return specs;
}
