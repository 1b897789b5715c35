import type { Db, EditableTable, SnapshotRow, SnapshotStatus, VolumeRow, VolumeStatus } from "@cinderblock/db";
import { type AttachmentUseCases, createAttachmentUseCases } from "./attachments.js";
import { type BackendUseCases, createBackendUseCases } from "./backends/use-cases.js";
import type { RequestContext } from "./context.js";
import type { CinderblockError } from "./errors.js";
import { type EventFilter, watchEventsUseCase } from "./events.js";
import { createGroupUseCases, type GroupUseCases } from "./groups.js";
import { createInstanceSnapshot, type InstanceImage, type SnapshotInstanceInput } from "./instance-snapshot.js";
import { createManageUseCases, type ManageUseCases } from "./manage.js";
import { deleteMetadataUseCase, setMetadataUseCase } from "./metadata.js";
import type { ListInput, Page, PageTokens } from "./pages.js";
import type {
  Announcer,
  ChangeFeed,
  ComputeAgents,
  Dispatcher,
  EventFeed,
  SequencedEvent,
  VolumeHostCalls,
} from "./ports.js";
import type { QuotaDefaults } from "./quota.js";
import { deleteQuotasUseCase, getQuotasUseCase, type QuotaView, updateQuotasUseCase } from "./quota-limits.js";
import { createSnapshotUseCase, recordSnapshot } from "./snapshots/create.js";
import { deleteSnapshotUseCase } from "./snapshots/delete.js";
import { getSnapshotUseCase, listSnapshotsUseCase, watchSnapshotUseCase } from "./snapshots/read.js";
import { resetSnapshotStatusUseCase } from "./snapshots/reset-status.js";
import { updateSnapshotUseCase } from "./snapshots/update.js";
import type { CreateSnapshotInput, CreateVolumeInput, UpdateInput } from "./validation.js";
import { createVolumeTypeUseCases, type VolumeTypeUseCases } from "./volume-types/use-cases.js";
import { createVolumeUseCase } from "./volumes/create.js";
import { deleteVolumeUseCase } from "./volumes/delete.js";
import { extendVolumeUseCase } from "./volumes/extend.js";
import { getVolumeUseCase, listVolumesUseCase } from "./volumes/read.js";
import { resetVolumeStatusUseCase } from "./volumes/reset-status.js";
import { type RetypeVolumeInput, retypeVolumeUseCase } from "./volumes/retype.js";
import { revertToSnapshotUseCase } from "./volumes/revert.js";
import { updateVolumeUseCase } from "./volumes/update.js";

/** What the api's use cases need, injected by the api's main.ts. */
export interface ApiDependencies {
  db: Db;
  scheduler: Dispatcher;
  /** Notifications of the api's own operations, written into the outbox with their change. */
  notifications: Announcer;
  changes: ChangeFeed;
  events: EventFeed;
  hosts: VolumeHostCalls;
  compute: ComputeAgents;
  /** Seconds SnapshotInstance waits for its snapshots before thawing and failing. */
  snapshotInstanceTimeoutSeconds: number;
  quota: QuotaDefaults;
  /** Availability zone of a volume created without one. */
  defaultAvailabilityZone: string;
  /** Name of the type of a volume created without one, in a project with no default of its own. */
  defaultVolumeType: string;
  /** Seconds an operation may stay in flight before the reconciler dispatches it again. */
  operationTimeoutSeconds: number;
  /** Seconds after the last heartbeat at which a backend counts as down. */
  serviceDownTimeSeconds: number;
  /** Signs and checks the page tokens of the list methods (see createPageTokens). */
  pageTokens: PageTokens;
  /** Called after a transaction that wrote casts commits (the api kicks its outbox relay). */
  onCommitted?(): void;
  /** What a WatchEvents stream may hold for a reader that falls behind (default 1000 / 256 KiB). */
  streamBuffer?: { messages: number; bytes: number };
}

/** The api's use cases: each validates, checks state and quota, writes, and dispatches. */
export interface ApiUseCases
  extends AttachmentUseCases,
    ManageUseCases,
    GroupUseCases,
    VolumeTypeUseCases,
    BackendUseCases {
  snapshotInstance(ctx: RequestContext, input: SnapshotInstanceInput): Promise<InstanceImage>;
  createVolume(ctx: RequestContext, input: CreateVolumeInput): Promise<VolumeRow>;
  getVolume(ctx: RequestContext, id: string): Promise<VolumeRow>;
  listVolumes(ctx: RequestContext, input: ListInput): Promise<Page<VolumeRow>>;
  /** `bootable`: Cinder's os-set_bootable (the flag only; nothing about the volume's content changes). */
  updateVolume(ctx: RequestContext, id: string, input: UpdateInput & { bootable?: boolean }): Promise<VolumeRow>;
  /** `force`: an admin's force delete (see deleteVolumeUseCase); the api's policy decides who. */
  deleteVolume(ctx: RequestContext, id: string, cascade: boolean, force?: boolean): Promise<VolumeRow>;
  resetVolumeStatus(ctx: RequestContext, id: string, status: VolumeStatus): Promise<VolumeRow>;
  extendVolume(ctx: RequestContext, id: string, newSizeGb: number): Promise<VolumeRow>;
  retypeVolume(ctx: RequestContext, input: RetypeVolumeInput): Promise<VolumeRow>;
  revertToSnapshot(ctx: RequestContext, volumeId: string, snapshotId: string): Promise<VolumeRow>;
  createSnapshot(ctx: RequestContext, input: CreateSnapshotInput): Promise<SnapshotRow>;
  getSnapshot(ctx: RequestContext, id: string): Promise<SnapshotRow>;
  listSnapshots(ctx: RequestContext, input: ListInput & { volumeId: string }): Promise<Page<SnapshotRow>>;
  /** Yields the snapshot now and after each change, and returns after a terminal status. */
  watchSnapshot(ctx: RequestContext, id: string, signal: AbortSignal): AsyncGenerator<SnapshotRow>;
  updateSnapshot(ctx: RequestContext, id: string, input: UpdateInput): Promise<SnapshotRow>;
  deleteSnapshot(ctx: RequestContext, id: string, force: boolean): Promise<SnapshotRow>;
  resetSnapshotStatus(ctx: RequestContext, id: string, status: SnapshotStatus): Promise<SnapshotRow>;
  setMetadata(
    ctx: RequestContext,
    table: EditableTable,
    id: string,
    metadata: Record<string, string>,
    replace: boolean,
  ): Promise<Record<string, string>>;
  deleteMetadata(ctx: RequestContext, table: EditableTable, id: string, key: string): Promise<Record<string, string>>;
  getQuotas(ctx: RequestContext, projectId: string): Promise<{ projectId: string; quotas: QuotaView[] }>;
  updateQuotas(
    ctx: RequestContext,
    projectId: string,
    limits: Record<string, number>,
  ): Promise<{ projectId: string; quotas: QuotaView[] }>;
  /** Drops the project's own limits: the defaults apply again. */
  deleteQuotas(ctx: RequestContext, projectId: string): Promise<{ projectId: string; quotas: QuotaView[] }>;
  /** `interrupt` is told at once should the reader fall behind (RESOURCE_EXHAUSTED), the generator also throws it. */
  watchEvents(
    ctx: RequestContext,
    filter: EventFilter,
    signal: AbortSignal,
    interrupt?: (error: CinderblockError) => void,
  ): AsyncGenerator<SequencedEvent>;
}

/**
 * The api's use cases (after Cinder's `volume/api.py`): one factory per method, each in the file
 * named after it (snapshots/delete.ts, volumes/extend.ts, metadata.ts, ...), composed here.
 */
export function createApiUseCases(deps: ApiDependencies): ApiUseCases {
  const useCases: Omit<ApiUseCases, "snapshotInstance" | keyof GroupUseCases> = {
    ...createAttachmentUseCases(deps),
    ...createManageUseCases(deps),
    ...createVolumeTypeUseCases(deps),
    ...createBackendUseCases(deps),

    createVolume: createVolumeUseCase(deps),
    getVolume: getVolumeUseCase(deps),
    listVolumes: listVolumesUseCase(deps),
    updateVolume: updateVolumeUseCase(deps),
    deleteVolume: deleteVolumeUseCase(deps),
    resetVolumeStatus: resetVolumeStatusUseCase(deps),
    extendVolume: extendVolumeUseCase(deps),
    retypeVolume: retypeVolumeUseCase(deps),
    revertToSnapshot: revertToSnapshotUseCase(deps),

    createSnapshot: createSnapshotUseCase(deps),
    getSnapshot: getSnapshotUseCase(deps),
    listSnapshots: listSnapshotsUseCase(deps),
    watchSnapshot: watchSnapshotUseCase(deps),
    updateSnapshot: updateSnapshotUseCase(deps),
    deleteSnapshot: deleteSnapshotUseCase(deps),
    resetSnapshotStatus: resetSnapshotStatusUseCase(deps),

    setMetadata: setMetadataUseCase(deps),
    deleteMetadata: deleteMetadataUseCase(deps),
    getQuotas: getQuotasUseCase(deps),
    updateQuotas: updateQuotasUseCase(deps),
    deleteQuotas: deleteQuotasUseCase(deps),
    watchEvents: watchEventsUseCase(deps),
  };
  return {
    ...useCases,
    ...createGroupUseCases({
      ...deps,
      recordSnapshot: (tx, ctx, input, keys) => recordSnapshot(tx, deps, ctx, input, keys),
      watchSnapshot: useCases.watchSnapshot,
    }),
    snapshotInstance: createInstanceSnapshot({
      db: deps.db,
      compute: deps.compute,
      createSnapshot: useCases.createSnapshot,
      watchSnapshot: useCases.watchSnapshot,
      timeoutSeconds: deps.snapshotInstanceTimeoutSeconds,
    }),
  };
}

/** What update, delete, reset, extend, revert, metadata, quotas and events need together. */
export type ManagementDependencies = Pick<
  ApiDependencies,
  "db" | "scheduler" | "notifications" | "events" | "quota" | "operationTimeoutSeconds" | "onCommitted"
>;

/** Update, delete, reset, extend, revert, metadata, quotas and events: every operation after create. */
export type ManagementUseCases = Pick<
  ApiUseCases,
  | "updateSnapshot"
  | "deleteSnapshot"
  | "resetSnapshotStatus"
  | "updateVolume"
  | "deleteVolume"
  | "resetVolumeStatus"
  | "extendVolume"
  | "revertToSnapshot"
  | "setMetadata"
  | "deleteMetadata"
  | "getQuotas"
  | "updateQuotas"
  | "deleteQuotas"
  | "watchEvents"
>;
