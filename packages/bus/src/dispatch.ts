import { type Executor, enqueueOutbox } from "@cinderblock/db";
import type { Dispatcher, SchedulerCreateVolumeCast } from "@cinderblock/domain";
import {
  SchedulerCreateSnapshot,
  SchedulerCreateVolume,
  SchedulerRetypeVolume,
  VolumeCreateSnapshot,
  VolumeCreateVolume,
  VolumeDeleteSnapshot,
  VolumeDeleteVolume,
  VolumeExtendVolume,
  VolumeMigrateVolume,
  VolumeRetypeVolume,
  VolumeRevertToSnapshot,
} from "@cinderblock/proto";
import { traceCarrier } from "@cinderblock/telemetry";
import type { Bus } from "./connection.js";
import type { Subjects } from "./subjects.js";
import { publishTraced } from "./tracing.js";

/** The JetStream message id of one dispatch of an operation (a re-dispatch is a new message). */
function msgId(operationId: string, attempt: number, step: string): string {
  return `${operationId}:${attempt}:${step}`;
}

/** The host part of a backend name "<host>@<backend>": the volume process that owns it. */
export function hostNameOf(backendHost: string): string {
  return backendHost.split("@")[0] ?? backendHost;
}

/**
 * Writes a cast into the outbox with the active trace context, so the relay (maybe in another
 * process, after a crash) publishes it as a continuation of the request that wrote it.
 */
function enqueue(tx: Executor, message: { subject: string; msgId: string; payload: Uint8Array }): Promise<void> {
  return enqueueOutbox(tx, { ...message, traceContext: traceCarrier() });
}

/** A dispatcher that writes casts into the transactional outbox. */
export function createOutboxDispatcher(subjects: Subjects): Dispatcher {
  return {
    async deleteSnapshot(tx: Executor, host: string, cast: VolumeDeleteSnapshot, attempt: number) {
      await enqueue(tx, {
        subject: subjects.volumeDeleteSnapshot(hostNameOf(host)),
        msgId: msgId(cast.operationId, attempt, "volume"),
        payload: VolumeDeleteSnapshot.encode(cast).finish(),
      });
    },
    async extendVolume(tx: Executor, host: string, cast: VolumeExtendVolume, attempt: number) {
      await enqueue(tx, {
        subject: subjects.volumeExtendVolume(hostNameOf(host)),
        msgId: msgId(cast.operationId, attempt, "volume"),
        payload: VolumeExtendVolume.encode(cast).finish(),
      });
    },
    async revertToSnapshot(tx: Executor, host: string, cast: VolumeRevertToSnapshot, attempt: number) {
      await enqueue(tx, {
        subject: subjects.volumeRevertToSnapshot(hostNameOf(host)),
        msgId: msgId(cast.operationId, attempt, "volume"),
        payload: VolumeRevertToSnapshot.encode(cast).finish(),
      });
    },
    async deleteVolume(tx: Executor, host: string, cast: VolumeDeleteVolume, attempt: number) {
      await enqueue(tx, {
        subject: subjects.volumeDeleteVolume(hostNameOf(host)),
        msgId: msgId(cast.operationId, attempt, "volume"),
        payload: VolumeDeleteVolume.encode(cast).finish(),
      });
    },
    async createSnapshot(tx: Executor, cast: SchedulerCreateSnapshot, attempt: number) {
      await enqueueOutbox(tx, this.createSnapshotMessage(cast, attempt));
    },
    createSnapshotMessage(cast: SchedulerCreateSnapshot, attempt: number) {
      return {
        subject: subjects.schedulerCreateSnapshot,
        msgId: msgId(cast.operationId, attempt, "scheduler"),
        payload: SchedulerCreateSnapshot.encode(cast).finish(),
        traceContext: traceCarrier(),
      };
    },
    async createVolume(tx: Executor, cast: SchedulerCreateVolumeCast, attempt: number) {
      await enqueue(tx, {
        subject: subjects.schedulerCreateVolume,
        msgId: msgId(cast.operationId, attempt, "scheduler"),
        payload: SchedulerCreateVolume.encode({ failedPlacements: [], ...cast }).finish(),
      });
    },
    async retypeVolume(tx: Executor, cast: SchedulerRetypeVolume, attempt: number) {
      await enqueue(tx, {
        subject: subjects.schedulerRetypeVolume,
        msgId: msgId(cast.operationId, attempt, "scheduler"),
        payload: SchedulerRetypeVolume.encode(cast).finish(),
      });
    },
  };
}

/**
 * Writes into the outbox the cast that hands a volume whose create failed on its backend back to
 * the scheduler (Cinder's reschedule). Its message id counts the failed placements, so it is
 * never taken for a re-dispatch by the reconciler (which numbers its own) nor for another
 * placement's hand-back.
 */
export function enqueueVolumeReschedule(tx: Executor, subjects: Subjects, cast: SchedulerCreateVolume): Promise<void> {
  return enqueue(tx, {
    subject: subjects.schedulerCreateVolume,
    msgId: `${cast.operationId}:placement-${cast.failedPlacements.length}:scheduler`,
    payload: SchedulerCreateVolume.encode(cast).finish(),
  });
}

/** Casts from the scheduler to a volume host. */
export interface VolumeHostCaster {
  createSnapshot(host: string, cast: VolumeCreateSnapshot, deliveryKey: string): Promise<void>;
  createVolume(host: string, cast: VolumeCreateVolume, deliveryKey: string): Promise<void>;
  /** An in-place retype, to the volume's own host. */
  retypeVolume(host: string, cast: VolumeRetypeVolume, deliveryKey: string): Promise<void>;
  /** A migration, to the target host (which pulls the bytes from the source). */
  migrateVolume(host: string, cast: VolumeMigrateVolume, deliveryKey: string): Promise<void>;
}

/**
 * Publishes straight to the volume host's subject. The scheduler acks its own message only after
 * this resolves, so a crash in between redelivers to the scheduler, whose re-publish carries the
 * same message id (`deliveryKey`) and is dropped as a duplicate by JetStream.
 */
export function createVolumeHostCaster(bus: Bus): VolumeHostCaster {
  return {
    async createSnapshot(host, cast, deliveryKey) {
      await publishTraced(
        bus.js,
        bus.subjects.volumeCreateSnapshot(host),
        VolumeCreateSnapshot.encode(cast).finish(),
        `${deliveryKey}:volume`,
      );
    },
    async createVolume(host, cast, deliveryKey) {
      await publishTraced(
        bus.js,
        bus.subjects.volumeCreateVolume(host),
        VolumeCreateVolume.encode(cast).finish(),
        `${deliveryKey}:volume`,
      );
    },
    async retypeVolume(host, cast, deliveryKey) {
      await publishTraced(
        bus.js,
        bus.subjects.volumeRetypeVolume(host),
        VolumeRetypeVolume.encode(cast).finish(),
        `${deliveryKey}:volume`,
      );
    },
    async migrateVolume(host, cast, deliveryKey) {
      await publishTraced(
        bus.js,
        bus.subjects.volumeMigrateVolume(host),
        VolumeMigrateVolume.encode(cast).finish(),
        `${deliveryKey}:volume`,
      );
    },
  };
}
