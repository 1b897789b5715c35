import { randomUUID } from "node:crypto";
import {
  getQosSpecsOfType,
  getVolumeActivity,
  insertOperation,
  transaction,
  updateVolumeStatus,
  type VolumeStatus,
} from "@cinderblock/db";
import { castContext } from "../context.js";
import { CinderblockError } from "../errors.js";
import { reserveOrThrow, retypeQuotaDeltas } from "../quota.js";
import { mustGetVolume } from "../rows.js";
import { assertNoConflict, statusList, VOLUME_OPERATIONS } from "../state-machine.js";
import type { ApiDependencies, ApiUseCases } from "../use-cases.js";
import { validateId } from "../validation.js";
import { findUsableType } from "../volume-types/resolve.js";

/** Cinder's migration policies of a retype. */
const MIGRATION_POLICIES = ["never", "on-demand"] as const;
export type MigrationPolicy = (typeof MIGRATION_POLICIES)[number];

/** What RetypeVolume asks. */
export interface RetypeVolumeInput {
  id: string;
  /** The new type, by id or name. */
  newType: string;
  /** "never" (the default when empty) or "on-demand". */
  migrationPolicy: string;
}

/** What a retype operation row records (its `detail`): what the reconciler needs to finish or undo it. */
export interface RetypeDetail {
  newTypeId: string;
  newTypeName: string;
  oldTypeName: string;
  migrationPolicy: MigrationPolicy;
  previousStatus: "available" | "in-use";
  sizeGb: number;
}

/** A retype operation's detail read back (from the operation row's JSON); undefined when it is not one. */
export function retypeDetailOf(detail: Record<string, unknown>): RetypeDetail | undefined {
  const { newTypeId, newTypeName, oldTypeName, migrationPolicy, previousStatus, sizeGb } = detail;
  if (typeof newTypeId !== "string" || typeof newTypeName !== "string" || typeof oldTypeName !== "string") {
    return undefined;
  }
  return {
    newTypeId,
    newTypeName,
    oldTypeName,
    migrationPolicy: migrationPolicy === "on-demand" ? "on-demand" : "never",
    previousStatus: previousStatus === "in-use" ? "in-use" : "available",
    sizeGb: Number(sizeGb),
  };
}

/** Migration statuses that mean a migration is under way (Cinder: anything but none/success/error). */
function migrating(migrationStatus: string | null): boolean {
  return (
    migrationStatus !== null && migrationStatus !== "" && migrationStatus !== "success" && migrationStatus !== "error"
  );
}

/**
 * Cinder's `volume/api.py` `retype`: the volume must be available (or in-use, for an in-place
 * retype only: moving an attached volume needs the instance's side to swap it, which Cinderblock
 * has no compute service for) and not migrating; the new type must be one the project may use and
 * differ from the current one; an in-use volume may not change front-end QoS (the hypervisor
 * applied it at attach). The new type's `volumes_<type>`/`gigabytes_<type>` are reserved (the
 * old type's are given back when the retype is done, the new type's when it fails), the volume
 * goes `retyping`, and the scheduler decides in place or migrate.
 */
export function retypeVolumeUseCase(
  deps: Pick<ApiDependencies, "db" | "scheduler" | "operationTimeoutSeconds" | "onCommitted">,
): ApiUseCases["retypeVolume"] {
  return async (ctx, input) => {
    const id = validateId("id", input.id);
    const policy = input.migrationPolicy || "never";
    if (!(MIGRATION_POLICIES as readonly string[]).includes(policy)) {
      throw new CinderblockError(
        "INVALID_ARGUMENT",
        `migration_policy: must be ${statusList(MIGRATION_POLICIES)}, not ${JSON.stringify(input.migrationPolicy)}`,
      );
    }
    const migrationPolicy = policy as MigrationPolicy;
    if (!input.newType.trim()) throw new CinderblockError("INVALID_ARGUMENT", "new_type: required");
    const result = await transaction(deps.db, async (tx) => {
      const volume = await mustGetVolume(tx, ctx, id, "update");
      const { from, to } = VOLUME_OPERATIONS.retype.start;
      if (!(from as readonly VolumeStatus[]).includes(volume.status) || !volume.host) {
        throw new CinderblockError(
          "FAILED_PRECONDITION",
          `volume ${id} status must be ${statusList(from)} to retype, but is ${volume.status}`,
        );
      }
      if (migrating(volume.migrationStatus)) {
        throw new CinderblockError(
          "FAILED_PRECONDITION",
          `volume ${id} is migrating (migration_status ${volume.migrationStatus})`,
        );
      }
      if (volume.status === "in-use" && migrationPolicy === "on-demand") {
        throw new CinderblockError(
          "FAILED_PRECONDITION",
          `migration_policy: volume ${id} is in-use, and moving an attached volume to another backend needs ` +
            "the instance's side to swap it; retype it in place (migration_policy never) or detach it first",
        );
      }
      const newType = await findUsableType(tx, ctx, input.newType.trim(), { lock: "key share" });
      if (!newType) {
        throw new CinderblockError("NOT_FOUND", `new_type: volume type ${JSON.stringify(input.newType)} not found`);
      }
      if (newType.id === volume.volumeTypeId) {
        throw new CinderblockError(
          "INVALID_ARGUMENT",
          `new_type: volume ${id} is already of type ${newType.name}; the new type must differ`,
        );
      }
      if (volume.status === "in-use") {
        const [oldQos, newQos] = await Promise.all([
          volume.volumeTypeId ? getQosSpecsOfType(tx, volume.volumeTypeId) : undefined,
          getQosSpecsOfType(tx, newType.id),
        ]);
        const frontEnd = (q: typeof oldQos) => q && (q.consumer === "front-end" || q.consumer === "both");
        if ((frontEnd(oldQos) || frontEnd(newQos)) && oldQos?.id !== newQos?.id) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `new_type: volume ${id} is in-use and the retype would change its front-end QoS specs ` +
              "(the hypervisor applied them at attach); detach it first",
          );
        }
      }
      assertNoConflict("volume.retype", `volume ${id}`, await getVolumeActivity(tx, id));
      // The per-type quotas are keyed on the name the row holds (a type rename updates it).
      const oldTypeName = volume.volumeType;
      await reserveOrThrow(tx, volume.projectId, retypeQuotaDeltas(volume.sizeGb, newType.name));
      const previousStatus = volume.status === "in-use" ? "in-use" : "available";
      const retyping = await updateVolumeStatus(tx, id, [volume.status], to, { statusReason: "", statusDetail: "" });
      if (!retyping) throw new CinderblockError("FAILED_PRECONDITION", `volume ${id} changed status; try again`);
      const operationId = randomUUID();
      const detail: RetypeDetail = {
        newTypeId: newType.id,
        newTypeName: newType.name,
        oldTypeName,
        migrationPolicy,
        previousStatus,
        sizeGb: volume.sizeGb,
      };
      await insertOperation(tx, {
        id: operationId,
        kind: "retype_volume",
        resourceId: id,
        projectId: volume.projectId,
        timeoutSeconds: deps.operationTimeoutSeconds,
        detail: { ...detail },
      });
      await deps.scheduler.retypeVolume(
        tx,
        {
          operationId,
          context: castContext(ctx),
          volumeId: id,
          newTypeId: newType.id,
          migrationPolicy,
          previousStatus,
        },
        1,
      );
      return retyping;
    });
    deps.onCommitted?.();
    return result;
  };
}
