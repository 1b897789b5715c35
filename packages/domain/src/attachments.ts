import { randomUUID } from "node:crypto";
import {
  type AttachmentRow,
  type AttachmentSearch,
  type Db,
  deleteAttachment,
  type Executor,
  findAttachments,
  finishOperation,
  getQosSpecsOfType,
  getService,
  getVolume,
  getVolumeElevated,
  insertAttachment,
  insertOperation,
  instanceAttachedElsewhere,
  listAttachmentsOfVolume,
  lockInstance,
  markAttached,
  transaction,
  updateVolumeStatus,
  type VolumeRow,
  type VolumeStatus,
} from "@cinderblock/db";
import { isAdmin, type RequestContext } from "./context.js";
import { CinderblockError, hostCallError, hostCallReason } from "./errors.js";
import type { Announcer, HostConnection, VolumeHostCalls } from "./ports.js";
import { ATTACHMENT_STATUSES, VOLUME_OPERATIONS } from "./state-machine.js";
import { volumeUsage } from "./usage.js";
import { validateId } from "./validation.js";
import { frontEndQosSpecs } from "./volume-types/resolve.js";

/** What attach and detach need. */
export interface AttachmentDependencies {
  db: Db;
  hosts: VolumeHostCalls;
  notifications: Announcer;
  serviceDownTimeSeconds: number;
  operationTimeoutSeconds: number;
  onCommitted?(): void;
}

/** An attach request. */
export interface AttachInput {
  volumeId: string;
  instanceId: string;
  mountpoint: string;
  connector: Record<string, string>;
}

/** Attach and detach, after Cinder's reserve → initialize_connection → attach. */
export interface AttachmentUseCases {
  attachVolume(
    ctx: RequestContext,
    input: AttachInput,
  ): Promise<{ attachment: AttachmentRow; connection: HostConnection }>;
  detachVolume(ctx: RequestContext, volumeId: string, attachmentId: string): Promise<void>;
  /**
   * A volume's attachments; `allProjects` (an administrator's all_tenants list, the policy decides
   * who) reads those of any project's volume.
   */
  listAttachments(ctx: RequestContext, volumeId: string, options?: { allProjects?: boolean }): Promise<AttachmentRow[]>;
  /**
   * Attachments of the project's volumes (every project's with `allProjects`, the policy decides
   * who) by id, volume, instance or status: Cinder's attachments API (3.27) lists and shows these.
   */
  findAttachments(
    ctx: RequestContext,
    filter: { allProjects: boolean; id?: string; volumeId?: string; instanceId?: string; attachStatus?: string },
  ): Promise<AttachmentRow[]>;
}

/** An instance id: it names a NATS subject token too (the compute agent's), so a strict charset. */
export function validateInstanceId(instanceId: string): string {
  if (!/^[A-Za-z0-9_-]{1,255}$/.test(instanceId)) {
    throw new CinderblockError("INVALID_ARGUMENT", "instance_id: must be 1-255 letters, digits, '-' or '_'");
  }
  return instanceId;
}

/** Builds attach and detach. */
export function createAttachmentUseCases(deps: AttachmentDependencies): AttachmentUseCases {
  const { db } = deps;

  async function hostAddress(host: string | null, volumeId: string): Promise<string> {
    const service = host ? await getService(db, host, deps.serviceDownTimeSeconds) : undefined;
    if (!service?.up || !service.grpcAddress) {
      throw new CinderblockError("FAILED_PRECONDITION", `the backend of volume ${volumeId} is down`);
    }
    return service.grpcAddress;
  }

  /** Announces a volume event with the attachment it concerns. */
  async function announce(
    tx: Executor,
    priority: "INFO" | "ERROR",
    eventType: string,
    volume: VolumeRow | undefined,
    extra: Record<string, unknown>,
  ): Promise<void> {
    if (volume) await deps.notifications.announce(tx, priority, eventType, { ...volumeUsage(volume), ...extra });
  }

  return {
    async attachVolume(ctx, input) {
      const volumeId = validateId("volume_id", input.volumeId);
      const instanceId = validateInstanceId(input.instanceId);
      if (input.mountpoint.length > 255) {
        throw new CinderblockError("INVALID_ARGUMENT", "mountpoint: must be at most 255 characters");
      }
      const attachmentId = randomUUID();
      const operationId = randomUUID();
      // Reserve: the volume goes to attaching and the attachment is recorded, or nothing happens.
      const { previous, host, typeId, sizeGb } = await transaction(db, async (tx) => {
        // NOTE: the instance, then the volume, locked: concurrent attaches of one instance (from
        // any project) or of one volume take turns, the second seeing the first's attachment
        // instead of both passing the checks. Always in this order, so two attaches cannot deadlock.
        await lockInstance(tx, instanceId);
        const volume = await getVolume(tx, ctx.projectId, volumeId, { lock: "update" });
        if (!volume) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
        // An instance is the project's that attached to it first: another project attaching its
        // own volume there would make the instance's SnapshotInstance its to call (Nova's instance
        // ids are per project). Only an administrator may attach across projects.
        if (!isAdmin(ctx) && (await instanceAttachedElsewhere(tx, ctx.projectId, instanceId))) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `instance ${instanceId} has volumes of another project attached; only an administrator can attach to it`,
          );
        }
        const existing = await listAttachmentsOfVolume(tx, volumeId);
        if (existing.some((a) => a.instanceId === instanceId)) {
          throw new CinderblockError("FAILED_PRECONDITION", `volume ${volumeId} is already attached to ${instanceId}`);
        }
        const { from: all, to } = VOLUME_OPERATIONS.attach.start;
        const from: readonly VolumeStatus[] = all.filter((status) => volume.multiattach || status !== "in-use");
        if (!from.includes(volume.status)) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            volume.status === "in-use"
              ? `volume ${volumeId} is in-use and not multiattach`
              : `volume ${volumeId} status must be available to attach, but is ${volume.status}`,
          );
        }
        const attaching = await updateVolumeStatus(tx, volumeId, from, to);
        if (!attaching) {
          throw new CinderblockError("FAILED_PRECONDITION", `volume ${volumeId} changed status; try again`);
        }
        await insertAttachment(tx, {
          id: attachmentId,
          volumeId,
          projectId: ctx.projectId,
          instanceId,
          mountpoint: input.mountpoint,
          connector: input.connector,
        });
        await insertOperation(tx, {
          id: operationId,
          kind: "attach_volume",
          resourceId: volumeId,
          projectId: ctx.projectId,
          timeoutSeconds: deps.operationTimeoutSeconds,
          detail: { attachmentId, previousStatus: volume.status },
        });
        await announce(tx, "INFO", "volume.attach.start", attaching, {
          attachment_id: attachmentId,
          instance_uuid: instanceId,
        });
        return { previous: volume.status, host: volume.host, typeId: volume.volumeTypeId, sizeGb: volume.sizeGb };
      });
      deps.onCommitted?.();
      let connection: HostConnection;
      try {
        connection = await deps.hosts.initializeConnection(
          await hostAddress(host, volumeId),
          ctx,
          volumeId,
          input.connector,
        );
      } catch (raw) {
        const error = hostCallError(raw, `the host of volume ${volumeId} did not answer; try again`);
        // Roll the reservation back: the volume is as it was, no attachment remains.
        await transaction(db, async (tx) => {
          await deleteAttachment(tx, attachmentId);
          const back = await updateVolumeStatus(tx, volumeId, VOLUME_OPERATIONS.attach.failed.from, previous);
          await finishOperation(tx, operationId, "failed", String(error));
          await announce(tx, "ERROR", "volume.attach.error", back, {
            attachment_id: attachmentId,
            instance_uuid: instanceId,
            reason: hostCallReason(error),
          });
        });
        deps.onCommitted?.();
        throw error;
      }
      // Cinder's _parse_connection_options: the type's front-end QoS specs go to the hypervisor.
      const qos = frontEndQosSpecs(typeId ? await getQosSpecsOfType(db, typeId) : undefined, sizeGb);
      if (qos) connection = { ...connection, data: { ...connection.data, qos_specs: JSON.stringify(qos) } };
      const attachment = await transaction(db, async (tx) => {
        const row = await markAttached(tx, attachmentId, {
          driver_volume_type: connection.driverVolumeType,
          data: connection.data,
        });
        const { from, to } = VOLUME_OPERATIONS.attach.done;
        const inUse = await updateVolumeStatus(tx, volumeId, from, to);
        await finishOperation(tx, operationId, "done");
        await announce(tx, "INFO", "volume.attach.end", inUse, {
          attachment_id: attachmentId,
          instance_uuid: instanceId,
        });
        return row;
      });
      deps.onCommitted?.();
      if (!attachment) throw new CinderblockError("FAILED_PRECONDITION", `attachment ${attachmentId} was cancelled`);
      return { attachment, connection };
    },

    async detachVolume(ctx, rawVolumeId, rawAttachmentId) {
      const volumeId = validateId("volume_id", rawVolumeId);
      const attachmentId = validateId("attachment_id", rawAttachmentId);
      const operationId = randomUUID();
      const { volume, attachment } = await transaction(db, async (tx) => {
        const row = await getVolume(tx, ctx.projectId, volumeId);
        if (!row) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
        const found = (await listAttachmentsOfVolume(tx, volumeId)).find((a) => a.id === attachmentId);
        if (found?.attachStatus !== "attached") {
          throw new CinderblockError("NOT_FOUND", `volume ${volumeId} has no attachment ${attachmentId}`);
        }
        const { from, to } = VOLUME_OPERATIONS.detach.start;
        const detaching = await updateVolumeStatus(tx, volumeId, from, to);
        if (!detaching) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `volume ${volumeId} status must be in-use to detach, but is ${row.status}`,
          );
        }
        // Should this process die before the host answers, the reconciler puts the volume back in-use.
        await insertOperation(tx, {
          id: operationId,
          kind: "detach_volume",
          resourceId: volumeId,
          projectId: ctx.projectId,
          timeoutSeconds: deps.operationTimeoutSeconds,
          detail: { attachmentId },
        });
        await announce(tx, "INFO", "volume.detach.start", detaching, {
          attachment_id: attachmentId,
          instance_uuid: found.instanceId,
        });
        return { volume: row, attachment: found };
      });
      deps.onCommitted?.();
      const event = { attachment_id: attachmentId, instance_uuid: attachment.instanceId };
      try {
        // The driver gets back the connector the attach was made with (which host to unexport to).
        await deps.hosts.terminateConnection(
          await hostAddress(volume.host, volumeId),
          ctx,
          volumeId,
          attachment.connector,
        );
      } catch (raw) {
        const error = hostCallError(raw, `the host of volume ${volumeId} did not answer; try again`);
        await transaction(db, async (tx) => {
          const { from, to } = VOLUME_OPERATIONS.detach.failed;
          const back = await updateVolumeStatus(tx, volumeId, from, to);
          await finishOperation(tx, operationId, "failed", String(error));
          await announce(tx, "ERROR", "volume.detach.error", back, {
            ...event,
            reason: hostCallReason(error),
          });
        });
        deps.onCommitted?.();
        throw error;
      }
      await transaction(db, async (tx) => {
        await deleteAttachment(tx, attachmentId);
        const remaining = await listAttachmentsOfVolume(tx, volumeId);
        const after = await updateVolumeStatus(
          tx,
          volumeId,
          ["detaching"],
          remaining.length > 0 ? "in-use" : "available",
        );
        await finishOperation(tx, operationId, "done");
        await announce(tx, "INFO", "volume.detach.end", after, event);
      });
      deps.onCommitted?.();
    },

    async listAttachments(ctx, rawVolumeId, options = {}) {
      const volumeId = validateId("volume_id", rawVolumeId);
      const volume = options.allProjects
        ? await getVolumeElevated(db, volumeId)
        : await getVolume(db, ctx.projectId, volumeId);
      if (!volume) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
      return listAttachmentsOfVolume(db, volumeId);
    },

    async findAttachments(ctx, filter) {
      const search: AttachmentSearch = filter.allProjects ? {} : { projectId: ctx.projectId };
      if (filter.id !== undefined) search.id = validateId("id", filter.id);
      if (filter.volumeId !== undefined) search.volumeId = validateId("volume_id", filter.volumeId);
      if (filter.instanceId !== undefined) search.instanceId = validateInstanceId(filter.instanceId);
      if (filter.attachStatus !== undefined) {
        if (!(ATTACHMENT_STATUSES as readonly string[]).includes(filter.attachStatus)) {
          throw new CinderblockError("INVALID_ARGUMENT", `status: must be one of ${ATTACHMENT_STATUSES.join(", ")}`);
        }
        search.attachStatus = filter.attachStatus;
      }
      return findAttachments(db, search);
    },
  };
}
