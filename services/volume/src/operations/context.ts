import {
  type Bus,
  createOutcomeRecorder,
  type Notifier,
  type OutboxAnnouncer,
  type OutcomeRecorder,
  RetryableError,
} from "@cinderblock/bus";
import type { Logger } from "@cinderblock/config";
import type { Db } from "@cinderblock/db";
import type { PeerHostCalls } from "@cinderblock/rpc";
import { DriverError, type VolumeDriver } from "../drivers/driver.js";

/** What the volume manager's operations need. */
export interface ManagerDependencies {
  db: Db;
  bus: Bus;
  /** Publishes `.start` notifications while the work goes on (see {@link OperationContext.started}). */
  notifier: Notifier;
  /** Writes outcome notifications into the transactional outbox, in the outcome's transaction. */
  announcer: OutboxAnnouncer;
  /** Called after a transaction that wrote to the outbox committed (kicks the relay). */
  onCommitted(): void;
  /** The name casts and rows address this host by ("vol1", or its cluster's name). */
  hostName: string;
  /**
   * The process's own name when it is a member of a cluster (CINDERBLOCK_HOST): notifications are
   * published as `snapshot.<member>`, as by the announcer (default: hostName).
   */
  memberName?: string;
  /** The drivers of this host's backends, by backend name. */
  drivers: ReadonlyMap<string, VolumeDriver>;
  /** Calls to other volume hosts (a migration's copy); none: this host cannot receive migrated volumes. */
  peers?: PeerHostCalls;
  /** Where every outcome is logged, with its resource ids (none: not logged). */
  logger?: Pick<Logger, "info" | "warn">;
  /**
   * CINDERBLOCK_SCHEDULER_MAX_ATTEMPTS: above 1, a failed create of a new blank volume goes back to
   * the scheduler to be placed elsewhere (see rescheduleCreate); default 1, retries off.
   */
  maxSchedulingAttempts?: number;
}

/** How a handler is being run: the last delivery may not ask for a retry. */
export interface Delivery {
  finalAttempt: boolean;
}

/** The manager's shared services, handed to every operation. */
export interface OperationContext extends ManagerDependencies {
  maxSchedulingAttempts: number;
  /** The driver of the backend a volume lives on (`<host>@<backend>`). */
  driverFor(host: string | null): VolumeDriver;
  /** THE way an operation records what happened (see {@link OutcomeRecorder}). */
  record: OutcomeRecorder;
  /**
   * Publishes an operation's `.start` notification directly (not through the outbox: it reports no
   * change, and a handler that dies before it is re-run by the redelivery or the reconciler and
   * sends it again). Its id is derived from the operation, so a second copy is dropped.
   */
  started(eventType: string, payload: Record<string, unknown>, operationId: string): Promise<void>;
  /**
   * Throws RetryableError while retries remain; else the failure to record: `fallback` as the
   * reason tenants read, the backend's own words as the detail admins and the log get.
   */
  finalFailure(error: unknown, delivery: Delivery, what: string, fallback: string): Failure;
  /** Logs an outcome with its resource ids. */
  log(fields: Record<string, unknown>, message: string, failed?: boolean): void;
}

/**
 * Why an operation failed, twice: `reason` in the user's terms (what failed, never how: it is the
 * resource's `status_reason` every member of the project reads), `detail` in the backend's (its
 * stderr, device paths, pool names: `status_detail`, which only admins see, and the log).
 */
export interface Failure {
  reason: string;
  detail: string;
}

/** The columns a failure fills on the volume or snapshot row. */
export function failureFields(failure: Failure): { statusReason: string; statusDetail: string } {
  return { statusReason: failure.reason, statusDetail: failure.detail };
}

/** Builds the context the operations share. */
export function createOperationContext(deps: ManagerDependencies): OperationContext {
  return {
    ...deps,
    maxSchedulingAttempts: deps.maxSchedulingAttempts ?? 1,

    driverFor(host) {
      const backend = host?.split("@")[1] ?? "";
      const driver = deps.drivers.get(backend);
      if (!driver) {
        throw new DriverError(`backend ${host ?? "(none)"} is not served by host ${deps.hostName}`, {
          retryable: false,
        });
      }
      return driver;
    },

    record: createOutcomeRecorder(deps),

    started(eventType, payload, operationId) {
      const publisher = `${eventType.split(".")[0]}.${deps.memberName ?? deps.hostName}`;
      return deps.notifier.notify("INFO", eventType, publisher, payload, operationId);
    },

    finalFailure(error, delivery, what, fallback) {
      const retryable = !(error instanceof DriverError) || error.retryable;
      if (retryable && !delivery.finalAttempt) {
        throw new RetryableError(`driver ${what} failed: ${String(error)}`, { delayMs: 2000, cause: error });
      }
      return { reason: fallback, detail: error instanceof Error ? error.message : String(error) };
    },

    log(fields, message, failed = false) {
      if (failed) deps.logger?.warn(fields, message);
      else deps.logger?.info(fields, message);
    },
  };
}
