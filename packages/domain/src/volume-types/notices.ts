import { type Executor, transaction, type VolumeTypeRow } from "@cinderblock/db";
import { CinderblockError, type ErrorCode } from "../errors.js";
import type { VolumeTypeDependencies } from "./use-cases.js";

/**
 * Cinder's volume type dict (`_dict_with_extra_specs_if_authorized`): what its types_manage
 * notifications carry as `volume_types`.
 */
export function volumeTypeInfo(type: VolumeTypeRow): Record<string, unknown> {
  return {
    id: type.id,
    name: type.name,
    description: type.description,
    is_public: type.isPublic,
    extra_specs: type.extraSpecs,
    qos_specs_id: type.qosSpecsId,
    created_at: type.createdAt.toISOString(),
    updated_at: type.updatedAt.toISOString(),
    deleted: type.deleted,
    deleted_at: type.deletedAt?.toISOString() ?? null,
  };
}

/** Runs the change in a transaction and, once it has committed, kicks the relay. */
export async function committed<T>(deps: VolumeTypeDependencies, change: (tx: Executor) => Promise<T>): Promise<T> {
  const result = await transaction(deps.db, change);
  deps.onCommitted?.();
  return result;
}

/** What the request was refused for (not the service failing it: UNAVAILABLE, ABORTED, ...). */
const REFUSALS = new Set<ErrorCode>(["INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "FAILED_PRECONDITION"]);

/**
 * Runs an operation whose refusals Cinder reports: when it is refused (a {@link CinderblockError},
 * the request itself having passed validation), the ERROR notification of the same event type
 * (Cinder's `notifier.error(context, method, payload)`: no `.error` suffix) is written in a
 * transaction of its own, as the change never committed, and the refusal is rethrown. Failing to
 * write it does not hide the refusal.
 */
export async function reportingRefusal<T>(
  deps: VolumeTypeDependencies,
  eventType: string,
  payload: (error: CinderblockError) => Record<string, unknown>,
  operation: () => Promise<T>,
): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof CinderblockError && REFUSALS.has(error.code)) {
      const body = { ...payload(error), error_message: error.message };
      // NOTE: the refusal is what the caller needs: failing to write its notification does not hide it.
      await committed(deps, (tx) => deps.notifications.announce(tx, "ERROR", eventType, body)).catch(() => undefined);
    }
    throw error;
  }
}
