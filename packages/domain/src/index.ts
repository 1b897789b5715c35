export type { AttachInput, AttachmentUseCases } from "./attachments.js";
export type { BackendUseCases, ServiceSelector } from "./backends/use-cases.js";
export type { AvailabilityZoneView, PoolView, ServiceView } from "./backends/views.js";
export type { RequestContext } from "./context.js";
export { isAdmin } from "./context.js";
export type { ErrorCode } from "./errors.js";
export { CinderblockError, HostUnreachableError, invalidArgument } from "./errors.js";
export type { EventFilter } from "./events.js";
export type { CreateGroupInput, GroupEvent, GroupSnapshotView, GroupUseCases } from "./groups.js";
export { settleGroupDelete, settleGroupSnapshot } from "./groups.js";
export type { BlockDeviceMapping, InstanceImage, SnapshotInstanceInput } from "./instance-snapshot.js";
export type { ManageInput, ManageUseCases } from "./manage.js";
export type { ListInput, Page, PageTokens } from "./pages.js";
export { createPageTokens } from "./pages.js";
export { capabilitiesProblem } from "./placement/capabilities.js";
export { pythonFloat } from "./placement/extra-specs.js";
export type { Pool } from "./placement/pools.js";
export { poolsOf } from "./placement/pools.js";
export type {
  Announcer,
  ChangeFeed,
  ChangeSubscription,
  ComputeAgents,
  Dispatcher,
  EventFeed,
  EventJson,
  EventSubscribeOptions,
  EventSubscription,
  HostConnection,
  HostManageable,
  SchedulerCreateVolumeCast,
  SequencedEvent,
  VolumeHostCalls,
} from "./ports.js";
export { EventSequenceError, ReaderFellBehindError } from "./ports.js";
export type { QuotaDefaults } from "./quota.js";
export {
  extendQuotaDeltas,
  reserveOrThrow,
  retypeQuotaDeltas,
  snapshotQuotaDeltas,
  snapshotQuotaHeld,
  volumeQuotaDeltas,
  volumeQuotaHeld,
} from "./quota.js";
export type { QuotaView } from "./quota-limits.js";
export type { Actor, GroupSnapshotStatus, GuardedOperation, Transition, VolumeActivity } from "./state-machine.js";
export {
  ATTACHMENT_STATUSES,
  assertNoConflict,
  assertVolumeSnapshottable,
  cascadedDeleteId,
  derivedId,
  GROUP_SNAPSHOT_OPERATIONS,
  GROUP_SNAPSHOT_STATUSES,
  SNAPSHOT_OPERATIONS,
  SNAPSHOT_STATUSES,
  TERMINAL_SNAPSHOT_STATUSES,
  TERMINAL_VOLUME_STATUSES,
  TRANSITIONAL_SNAPSHOT_STATUSES,
  TRANSITIONAL_VOLUME_STATUSES,
  VOLUME_OPERATIONS,
  VOLUME_STATUSES,
} from "./state-machine.js";
export { groupSnapshotUsage, snapshotUsage, volumeUsage } from "./usage.js";
export type { ApiDependencies, ApiUseCases, ManagementDependencies, ManagementUseCases } from "./use-cases.js";
export { createApiUseCases } from "./use-cases.js";
export type { CreateSnapshotInput, CreateVolumeInput, RequestLimits } from "./validation.js";
export {
  validateCreateSnapshot,
  validateCreateVolume,
  validateId,
  validatePageSize,
  validateRequest,
} from "./validation.js";
export { visibleExtraSpecs } from "./volume-types/resolve.js";
export type {
  CreateVolumeTypeInput,
  QosSpecsView,
  UpdateVolumeTypeInput,
  VolumeTypeUseCases,
} from "./volume-types/use-cases.js";
export type { QosConsumer } from "./volume-types/validation.js";
export type { MigrationPolicy, RetypeDetail, RetypeVolumeInput } from "./volumes/retype.js";
export { retypeDetailOf } from "./volumes/retype.js";
export type { RetypeDone, RetypeFailed } from "./volumes/retype-outcome.js";
export { failRetype, finishRetype } from "./volumes/retype-outcome.js";
