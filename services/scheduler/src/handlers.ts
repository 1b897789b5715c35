import { type Bus, createOutcomeRecorder, hostNameOf, type VolumeHostCaster } from "@cinderblock/bus";
import type { Logger } from "@cinderblock/config";
import {
  assignVolumeHost,
  createBatcher,
  type Db,
  finishOperation,
  getServicesByHost,
  getVolume,
  getVolumeElevated,
  getVolumeTypeBy,
  listServicesWithState,
  listSnapshotsOfVolume,
  type ServiceRow,
  type Tx,
  updateSnapshotStatus,
  updateVolumeStatus,
} from "@cinderblock/db";
import { type Announcer, failRetype, SNAPSHOT_OPERATIONS, VOLUME_OPERATIONS, volumeUsage } from "@cinderblock/domain";
import type { SchedulerCreateSnapshot, SchedulerCreateVolume, SchedulerRetypeVolume } from "@cinderblock/proto";
import { canonicalUuid, capacityProblem, pickBackend, type ScheduleRequest } from "./filters.js";
import { DEFAULT_WEIGHER_MULTIPLIERS, type WeigherMultipliers } from "./weighers.js";

/** What the scheduler's handlers need. */
export interface SchedulerDependencies {
  db: Db;
  bus: Bus;
  caster: VolumeHostCaster;
  /** Writes a scheduling failure's notification into the outbox, with the failure. */
  notifications: Announcer;
  /** Called after a transaction that wrote to the outbox committed (kicks the relay). */
  onCommitted(): void;
  serviceDownTimeSeconds: number;
  /**
   * How long a new volume waits for a backend in its zone to report up when none has yet (a
   * cold start: volume hosts report their backend down until their storage answers). Default 30 s.
   */
  backendWaitMs?: number;
  /** How often a waiting create looks at the backends' reports again (default 500 ms). */
  backendPollMs?: number;
  /** The weighers' multipliers (default: capacity 1, allocated capacity -1, as Cinder's). */
  weigherMultipliers?: WeigherMultipliers;
  /**
   * Cinder's scheduler_max_attempts: backends a new volume may be placed on, counting those that
   * failed its create and handed it back (default 3).
   */
  maxAttempts?: number;
  /** Where a retry on another backend is logged (Cinder logs the last backend's failure). */
  logger?: Pick<Logger, "info" | "warn">;
}

/** The scheduler's cast handlers (each is idempotent: a redelivered cast does no harm). */
export interface SchedulerHandlers {
  createSnapshot(cast: SchedulerCreateSnapshot, deliveryKey: string): Promise<void>;
  createVolume(cast: SchedulerCreateVolume, deliveryKey: string): Promise<void>;
  retypeVolume(cast: SchedulerRetypeVolume, deliveryKey: string): Promise<void>;
}

/** What a retype's migration asks of both ends besides the type's extra specs (see retypeVolume). */
const MIGRATABLE = { host_assisted_migration: "<is> True" } as const;

/** The reason a retype that found nowhere to go fails with (the tenant's words; the detail says why). */
const NO_BACKEND_FOR_TYPE = "no valid backend was found for the new type";

/** Builds the scheduler's handlers. */
export function createSchedulerHandlers(deps: SchedulerDependencies): SchedulerHandlers {
  const { db } = deps;
  const waitMs = deps.backendWaitMs ?? 30_000;
  const pollMs = deps.backendPollMs ?? 500;

  // One look at the backends per poll interval, shared by every create waiting at that moment.
  type Backends = (ServiceRow & { up: boolean })[];
  let nextLook: Promise<Backends> | undefined;
  const lookAgain = (): Promise<Backends> => {
    nextLook ??= new Promise((resolve) => setTimeout(resolve, pollMs))
      .then(() => listServicesWithState(db, deps.serviceDownTimeSeconds))
      .finally(() => {
        nextLook = undefined;
      });
    return nextLook;
  };

  /**
   * Reads backends for snapshot casts as the volume host writes completions: one statement for
   * every cast that arrived while the previous read ran (a lone cast reads at once). Each read
   * starts after its casts arrived, so none sees a backend older than a per-cast read would.
   */
  const backendReads = createBatcher(async (hosts: string[]) => {
    const found = await getServicesByHost(db, hosts, deps.serviceDownTimeSeconds);
    return hosts.map((host) => found.get(host));
  });

  const multipliers = deps.weigherMultipliers ?? DEFAULT_WEIGHER_MULTIPLIERS;
  const maxAttempts = deps.maxAttempts ?? 3;

  /** Where the volumes a request's affinity hints name live (ids that are no volume: nowhere). */
  /** Where the hinted volumes live: only the project's own (another project's placement is not the caller's to learn). */
  async function hintedVolumeHosts(projectId: string, request: ScheduleRequest): Promise<Map<string, string>> {
    const ids = [...new Set([...(request.hints.sameHost ?? []), ...(request.hints.differentHost ?? [])])];
    const hosts = new Map<string, string>();
    await Promise.all(
      ids.map(async (id) => {
        // An id that is no UUID names no volume (and the affinity filters refuse it).
        const uuid = canonicalUuid(id);
        const volume = uuid ? await getVolume(db, projectId, uuid) : undefined;
        if (volume?.host) hosts.set(id, volume.host);
      }),
    );
    return hosts;
  }

  const record = createOutcomeRecorder({
    db,
    bus: deps.bus,
    announcer: deps.notifications,
    onCommitted: deps.onCommitted,
  });

  /**
   * Records a scheduling failure the one way outcomes are recorded (as on the volume host): the
   * resource's status, its operation and the `scheduler.create_<kind>` notification commit
   * together, the message id from the operation (a re-run writes a duplicate JetStream drops).
   */
  function schedulingFailed<R>(
    kind: "snapshot" | "volume",
    id: string,
    operationId: string,
    reason: string,
    change: (tx: Tx) => Promise<R | undefined>,
    payload: Record<string, unknown>,
    /** Further events of the failure, from the changed row. */
    more: (row: R) => { eventType: string; payload: Record<string, unknown> }[] = () => [],
  ): Promise<void> {
    return record(async (tx, outcome) => {
      const [row] = await Promise.all([change(tx), finishOperation(tx, operationId, "failed", reason)]);
      if (!row) return;
      await outcome.announce("ERROR", `scheduler.create_${kind}`, payload, operationId);
      for (const event of more(row)) await outcome.announce("ERROR", event.eventType, event.payload, operationId);
      outcome.changed(kind, id);
    });
  }

  /**
   * A retype the scheduler ends: the volume goes back to where it was with its old type, the new
   * type's reservation is released, and `scheduler.retype` (ERROR) reports why, in one transaction.
   */
  function retypeFailed(
    cast: SchedulerRetypeVolume,
    newType: { id: string; name: string },
    reason: string,
    detail: string,
  ): Promise<void> {
    return record(async (tx, outcome) => {
      const previousStatus = cast.previousStatus === "in-use" ? "in-use" : "available";
      const [row] = await Promise.all([
        failRetype(tx, cast.volumeId, { previousStatus, newType, reason, detail }),
        finishOperation(tx, cast.operationId, "failed", detail),
      ]);
      if (!row) return;
      await outcome.announce(
        "ERROR",
        "scheduler.retype",
        { ...volumeUsage(row), new_type_id: newType.id, state: row.status, reason: detail },
        cast.operationId,
      );
      outcome.changed("volume", row.id);
    });
  }

  return {
    async createSnapshot(cast, deliveryKey) {
      // A snapshot lives on its volume's backend: check that backend instead of choosing one.
      // NOTE: the backend is the only read. The snapshot's row is not read: a cast re-sent after the
      // snapshot finished (or went) is passed on, and the volume host, which reads the row anyway,
      // drops it; a failure below changes the row only while it is `creating` (a compare-and-swap).
      const backend = await backendReads.submit(cast.volumeHost);
      const snapshot = { id: cast.snapshotId, volumeId: cast.volumeId, projectId: cast.context?.projectId ?? "" };
      let problem: string | undefined;
      if (!backend) problem = `backend ${cast.volumeHost} is unknown`;
      else if (!backend.up)
        problem = `backend ${cast.volumeHost} is down (no heartbeat for ${deps.serviceDownTimeSeconds} s)`;
      else if (backend.disabled)
        problem = `backend ${cast.volumeHost} is disabled${backend.disabledReason ? `: ${backend.disabledReason}` : ""}`;
      else if (backend.frozen) problem = `backend ${cast.volumeHost} is frozen`;
      else problem = capacityProblem(backend, cast.volumeSizeGb, cast.volumeHost);
      if (problem) {
        const { from, to } = SNAPSHOT_OPERATIONS.create.failed;
        const reason = problem;
        await schedulingFailed(
          "snapshot",
          snapshot.id,
          cast.operationId,
          reason,
          // The problem names backends and their state: the detail for admins, not the tenant's reason.
          (tx) =>
            updateSnapshotStatus(tx, snapshot.id, from, to, {
              statusReason: "scheduling failed: the volume's backend cannot take a snapshot now",
              statusDetail: `scheduling failed: ${reason}`,
            }),
          {
            request_spec: { snapshot_id: snapshot.id, volume_properties: { size: cast.volumeSizeGb } },
            snapshot_id: snapshot.id,
            volume_id: snapshot.volumeId,
            tenant_id: snapshot.projectId,
            state: "error",
            reason,
          },
        );
        return;
      }
      await deps.caster.createSnapshot(
        hostNameOf(cast.volumeHost),
        { operationId: cast.operationId, context: cast.context, snapshotId: cast.snapshotId, volumeId: cast.volumeId },
        deliveryKey,
      );
    },

    async createVolume(cast, deliveryKey) {
      const volume = await getVolumeElevated(db, cast.volumeId);
      if (volume?.status !== "creating") return;
      let host = volume.host;
      if (!host) {
        // Cinder's RetryFilter bookkeeping: the backends that failed this create are not tried again.
        const failed = cast.failedPlacements;
        const attempt = failed.length + 1;
        const last = failed.at(-1);
        if (last) {
          deps.logger?.warn(
            { volume_id: volume.id, operation_id: cast.operationId, attempt, last_host: last.host, error: last.error },
            "volume create failed on its backend; scheduling it again",
          );
        }
        /** The volume `error`: `statusReason` for its project, `detail` (backends, errors) for admins. */
        const failCreate = (statusReason: string, detail: string) => {
          const { from, to } = VOLUME_OPERATIONS.create.failed;
          return schedulingFailed(
            "volume",
            volume.id,
            cast.operationId,
            detail,
            (tx) => updateVolumeStatus(tx, volume.id, from, to, { statusReason, statusDetail: detail }),
            { volume_id: volume.id, tenant_id: volume.projectId, state: "error", reason: detail },
            // A create some backend started (volume.create.start) ends with its .error, once, here.
            (row) =>
              failed.length > 0
                ? [{ eventType: "volume.create.error", payload: { ...volumeUsage(row), reason: row.statusReason } }]
                : [],
          );
        };
        /** No valid backend: the detail lists each attempt and then `why`. */
        const noValidBackend = (why: string) => {
          const tried = failed.map((f, i) => `attempt ${i + 1} on ${f.host} failed: ${f.error}`);
          return failCreate("no valid backend was found", `no valid backend was found: ${[...tried, why].join("; ")}`);
        };
        if (attempt > maxAttempts) {
          await noValidBackend(`exceeded max scheduling attempts ${maxAttempts} for volume ${volume.id}`);
          return;
        }
        // The volume's type (its extra specs against each pool's capabilities) and the hints it was
        // created with are on its row: a re-dispatched cast places it the same way.
        const type = volume.volumeTypeId ? await getVolumeTypeBy(db, { id: volume.volumeTypeId }) : undefined;
        const request: ScheduleRequest = {
          sizeGb: cast.sizeGb,
          availabilityZone: cast.availabilityZone,
          extraSpecs: type?.extraSpecs ?? {},
          hints: volume.schedulerHints ?? {},
          excludeHosts: failed.map((f) => f.host),
        };
        const volumeHosts = await hintedVolumeHosts(volume.projectId, request);
        const options = { multipliers, volumeHost: (id: string) => volumeHosts.get(id) };
        const waitUntil = Date.now() + waitMs;
        let choice = pickBackend(await listServicesWithState(db, deps.serviceDownTimeSeconds), request, options);
        // NOTE: waiting here, not by nak-with-delay: the cast keeps its place and its delivery
        // budget (max_deliver), the consumer keeps it alive with working(), and it goes on as soon
        // as a backend's report says up. Only while no backend has reported up (see `waitable`):
        // a backend that is up but full, or a zone nobody serves, fails the volume at once.
        while (choice.waitable && Date.now() < waitUntil) {
          choice = pickBackend(await lookAgain(), request, options);
        }
        if (!choice.service) {
          const reasons = choice.reasons.join("; ");
          if (failed.length > 0) await noValidBackend(`no other backend fits: ${reasons}`);
          else if (choice.waitable) {
            await failCreate(
              "no backend was ready to take the volume",
              `no backend has reported up within ${waitMs / 1000} s${reasons ? `: ${reasons}` : ""}`,
            );
          } else await noValidBackend(reasons);
          return;
        }
        // NOTE: the volume records its backend (`host@backend`, by which the volume host finds its
        // driver) and, beside it, the pool (Cinder's `host@backend#pool` in two columns).
        const placed = await assignVolumeHost(db, volume.id, choice.service.host, choice.pool?.pool ?? "");
        if (!placed?.host) return;
        host = placed.host;
      }
      await deps.caster.createVolume(
        hostNameOf(host),
        {
          operationId: cast.operationId,
          context: cast.context,
          volumeId: volume.id,
          backend: host.split("@")[1] ?? "",
        },
        deliveryKey,
      );
    },

    /**
     * Cinder's `SchedulerManager.retype` (`find_retype_backend`): when the volume's own backend
     * passes the filters with the new type's extra specs (no capacity asked: nothing moves), the
     * retype is done in place by its host; else, with migration_policy on-demand, the best other
     * backend in the volume's zone that fits it is the target (both ends must report
     * host_assisted_migration, and a volume with snapshots stays, as in Cinder); else it fails.
     */
    async retypeVolume(cast, deliveryKey) {
      const volume = await getVolumeElevated(db, cast.volumeId);
      if (volume?.status !== "retyping" || !volume.host) return;
      const source = volume.host;
      const newType = await getVolumeTypeBy(db, { id: cast.newTypeId });
      if (!newType) {
        await retypeFailed(cast, { id: cast.newTypeId, name: "" }, "the new volume type was deleted", "");
        return;
      }
      const type = { id: newType.id, name: newType.name };
      const services = await listServicesWithState(db, deps.serviceDownTimeSeconds);
      const current = services.filter((s) => s.host === source);
      const inPlace = pickBackend(
        current,
        { sizeGb: 0, availabilityZone: "", extraSpecs: newType.extraSpecs, hints: {} },
        { multipliers },
      );
      if (inPlace.service) {
        await deps.caster.retypeVolume(
          hostNameOf(source),
          {
            operationId: cast.operationId,
            context: cast.context,
            volumeId: volume.id,
            newTypeId: newType.id,
            previousStatus: cast.previousStatus,
          },
          deliveryKey,
        );
        return;
      }
      const here = inPlace.reasons.length > 0 ? inPlace.reasons.join("; ") : `backend ${source} has not reported in`;
      if (cast.migrationPolicy !== "on-demand") {
        await retypeFailed(
          cast,
          type,
          `${NO_BACKEND_FOR_TYPE} (migration_policy never keeps the volume on its backend)`,
          `the volume's backend does not satisfy type ${newType.name}: ${here}`,
        );
        return;
      }
      const snapshots = await listSnapshotsOfVolume(db, volume.id);
      if (snapshots.length > 0) {
        await retypeFailed(
          cast,
          type,
          "a volume with snapshots cannot be migrated to a backend of the new type",
          `volume ${volume.id} has ${snapshots.length} snapshot(s); its backend does not satisfy type ${newType.name}: ${here}`,
        );
        return;
      }
      const sourceCaps = current[0]?.capabilities as { hostAssistedMigration?: unknown } | undefined;
      if (sourceCaps?.hostAssistedMigration !== true) {
        await retypeFailed(
          cast,
          type,
          NO_BACKEND_FOR_TYPE,
          `backend ${source} cannot be migrated from (its driver has no host-assisted copy); ${here}`,
        );
        return;
      }
      const choice = pickBackend(
        services,
        {
          sizeGb: volume.sizeGb,
          availabilityZone: volume.availabilityZone,
          // NOTE: the target must be able to receive the copy: asked as a capability, so that a
          // backend without it is turned down with its reason like any other.
          extraSpecs: { ...newType.extraSpecs, ...MIGRATABLE },
          hints: {},
          excludeHosts: [source],
        },
        { multipliers },
      );
      if (!choice.service) {
        await retypeFailed(cast, type, NO_BACKEND_FOR_TYPE, `${here}; ${choice.reasons.join("; ")}`);
        return;
      }
      await deps.caster.migrateVolume(
        hostNameOf(choice.service.host),
        {
          operationId: cast.operationId,
          context: cast.context,
          volumeId: volume.id,
          newTypeId: newType.id,
          targetBackend: choice.service.host,
          targetPool: choice.pool?.pool ?? "",
          sourceBackend: source,
          previousStatus: cast.previousStatus,
        },
        deliveryKey,
      );
    },
  };
}
