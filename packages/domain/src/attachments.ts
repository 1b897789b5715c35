import { randomUUID } from "node:crypto";
import {
  type AttachmentRow,
  type Db,
  deleteAttachment,
  finishOperation,
  getService,
  getVolume,
  insertAttachment,
  insertOperation,
  listAttachmentsOfVolume,
  markAttached,
  transaction,
  updateVolumeStatus,
  type VolumeStatus,
} from "@cinderblock/db";
import type { RequestContext } from "./context.js";
import { CinderblockError } from "./errors.js";
import type { HostConnection, VolumeHostCalls } from "./ports.js";
import { validateId } from "./validation.js";

/** What attach and detach need. */
export interface AttachmentDependencies {
  db: Db;
  hosts: VolumeHostCalls;
  serviceDownTimeSeconds: number;
  operationTimeoutSeconds: number;
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
  listAttachments(ctx: RequestContext, volumeId: string): Promise<AttachmentRow[]>;
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
      const { previous, host } = await transaction(db, async (tx) => {
        const volume = await getVolume(tx, ctx.projectId, volumeId);
        if (!volume) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
        const existing = await listAttachmentsOfVolume(tx, volumeId);
        if (existing.some((a) => a.instanceId === instanceId)) {
          throw new CinderblockError("FAILED_PRECONDITION", `volume ${volumeId} is already attached to ${instanceId}`);
        }
        const from: VolumeStatus[] = volume.multiattach ? ["available", "in-use"] : ["available"];
        if (!from.includes(volume.status)) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            volume.status === "in-use"
              ? `volume ${volumeId} is in-use and not multiattach`
              : `volume ${volumeId} status must be available to attach, but is ${volume.status}`,
          );
        }
        await updateVolumeStatus(tx, volumeId, from, "attaching");
        await insertAttachment(tx, {
          id: attachmentId,
          volumeId,
          projectId: ctx.projectId,
          instanceId,
          mountpoint: input.mountpoint,
        });
        await insertOperation(tx, {
          id: operationId,
          kind: "attach_volume",
          resourceId: volumeId,
          projectId: ctx.projectId,
          timeoutSeconds: deps.operationTimeoutSeconds,
          detail: { attachmentId, previousStatus: volume.status },
        });
        return { previous: volume.status, host: volume.host };
      });
      let connection: HostConnection;
      try {
        connection = await deps.hosts.initializeConnection(
          await hostAddress(host, volumeId),
          ctx,
          volumeId,
          input.connector,
        );
      } catch (error) {
        // Roll the reservation back: the volume is as it was, no attachment remains.
        await transaction(db, async (tx) => {
          await deleteAttachment(tx, attachmentId);
          await updateVolumeStatus(tx, volumeId, ["attaching"], previous);
          await finishOperation(tx, operationId, "failed", String(error));
        });
        if (error instanceof CinderblockError) throw error;
        throw new CinderblockError("UNAVAILABLE", `the host of volume ${volumeId} did not answer; try again`);
      }
      const attachment = await transaction(db, async (tx) => {
        const row = await markAttached(tx, attachmentId, {
          driver_volume_type: connection.driverVolumeType,
          data: connection.data,
        });
        await updateVolumeStatus(tx, volumeId, ["attaching"], "in-use");
        await finishOperation(tx, operationId, "done");
        return row;
      });
      if (!attachment) throw new CinderblockError("FAILED_PRECONDITION", `attachment ${attachmentId} was cancelled`);
      return { attachment, connection };
    },

    async detachVolume(ctx, rawVolumeId, rawAttachmentId) {
      const volumeId = validateId("volume_id", rawVolumeId);
      const attachmentId = validateId("attachment_id", rawAttachmentId);
      const operationId = randomUUID();
      const volume = await transaction(db, async (tx) => {
        const row = await getVolume(tx, ctx.projectId, volumeId);
        if (!row) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
        const attachment = (await listAttachmentsOfVolume(tx, volumeId)).find((a) => a.id === attachmentId);
        if (attachment?.attachStatus !== "attached") {
          throw new CinderblockError("NOT_FOUND", `volume ${volumeId} has no attachment ${attachmentId}`);
        }
        if (!(await updateVolumeStatus(tx, volumeId, ["in-use"], "detaching"))) {
          throw new CinderblockError(
            "FAILED_PRECONDITION",
            `volume ${volumeId} status must be in-use to detach, but is ${row.status}`,
          );
        }
        return row;
      });
      try {
        await deps.hosts.terminateConnection(await hostAddress(volume.host, volumeId), ctx, volumeId, {});
      } catch (error) {
        await transaction(db, async (tx) => {
          await updateVolumeStatus(tx, volumeId, ["detaching"], "in-use");
          await finishOperation(tx, operationId, "failed", String(error));
        });
        if (error instanceof CinderblockError) throw error;
        throw new CinderblockError("UNAVAILABLE", `the host of volume ${volumeId} did not answer; try again`);
      }
      await transaction(db, async (tx) => {
        await deleteAttachment(tx, attachmentId);
        const remaining = await listAttachmentsOfVolume(tx, volumeId);
        await updateVolumeStatus(tx, volumeId, ["detaching"], remaining.length > 0 ? "in-use" : "available");
        await finishOperation(tx, operationId, "done");
      });
    },

    async listAttachments(ctx, rawVolumeId) {
      const volumeId = validateId("volume_id", rawVolumeId);
      const volume = await getVolume(db, ctx.projectId, volumeId);
      if (!volume) throw new CinderblockError("NOT_FOUND", `volume ${volumeId} not found`);
      return listAttachmentsOfVolume(db, volumeId);
    },
  };
}
