export type { AttachmentRow, AttachmentSearch } from "./attachments.js";
export {
  deleteAttachment,
  findAttachments,
  insertAttachment,
  instanceAttachedElsewhere,
  listAttachmentsOfInstance,
  listAttachmentsOfVolume,
  lockInstance,
  markAttached,
} from "./attachments.js";
export type { Batcher } from "./batcher.js";
export { createBatcher } from "./batcher.js";
export { cancellingQueuedStatements } from "./cancellation.js";
export type { Db, DbHandle, DbOptions, Executor, Tx } from "./client.js";
export { createDb, pingDatabase, transaction } from "./client.js";
export type { GroupSnapshotRow } from "./group-snapshots.js";
export {
  getGroupSnapshot,
  getGroupSnapshotByClientRequest,
  insertGroupSnapshot,
  listGroupMembers,
  listGroupSnapshots,
  listMembersOfGroups,
  updateGroupSnapshotStatus,
} from "./group-snapshots.js";
export { runMigrations } from "./migrate.js";
export type { FailedPlacementRecord, NewOperation } from "./operations.js";
export {
  claimOverdueOperations,
  finishOperation,
  finishOperationsDone,
  insertOperation,
  lockFailedPlacements,
  pendingOperationsOf,
  recordFailedPlacements,
  retryOperation,
} from "./operations.js";
export type { DrainedOutboxMessage, OutboxMessage } from "./outbox.js";
export { drainOutbox, enqueueOutbox, enqueueOutboxMany, outboxBacklog } from "./outbox.js";
export type { ListQuery, PageCursor, SortDir, SortKey } from "./pagination.js";
export { cursorOf, decodePageToken, encodePageToken, SORT_KEYS } from "./pagination.js";
export type { QuotaDelta, QuotaRefusal } from "./quota.js";
export {
  deleteQuotaLimits,
  ensureQuotaRows,
  getQuotaLimits,
  getQuotaUsage,
  releaseQuota,
  reserveQuota,
  setQuotaLimit,
} from "./quota.js";
export type { EditableTable } from "./resource-fields.js";
export { deleteMetadataKey, setMetadata, updateNameDescription } from "./resource-fields.js";
export type { ServiceReport } from "./services.js";
export {
  changeServiceFlags,
  getService,
  getServicesByHost,
  isBackendFrozen,
  listServicesWithState,
  listUsableServices,
  reportService,
  setServiceFlags,
} from "./services.js";
export type { SnapshotCreate, SnapshotCreateOutcome } from "./snapshot-create.js";
export { createSnapshotAtOnce } from "./snapshot-create.js";
export type { GetSnapshotOptions, SnapshotChanges, SnapshotTaken } from "./snapshots.js";
export {
  getLatestSnapshotOfVolume,
  getSnapshot,
  getSnapshotByClientRequest,
  getSnapshotElevated,
  getSnapshotsWithVolumesElevated,
  insertSnapshot,
  listSnapshotIdsOnBackend,
  listSnapshots,
  listSnapshotsOfVolume,
  markSnapshotDeleted,
  markSnapshotsAvailable,
  resetSnapshotStatus,
  updateSnapshotStatus,
} from "./snapshots.js";
export type {
  NewSnapshotRow,
  NewVolumeRow,
  OperationKind,
  OperationRow,
  ServiceRow,
  SnapshotRow,
  SnapshotStatus,
  VolumeRow,
  VolumeStatus,
} from "./types.js";
export { isDatabaseUnavailable, isStatementTimeout } from "./unavailable.js";
export type {
  NameCursor,
  NewQosSpecsRow,
  NewVolumeTypeRow,
  QosSpecsRow,
  TypeLock,
  VolumeTypeRow,
} from "./volume-types.js";
export {
  addVolumeTypeAccess,
  associateQosSpecs,
  changeQosSpecsKeys,
  countProjectsDefaultingTo,
  countVolumeTypeUsage,
  deleteVolumeTypeExtraSpec,
  disassociateQosSpecs,
  getProjectDefaultTypeId,
  getQosSpecs,
  getQosSpecsOfType,
  getVolumeTypeBy,
  hasVolumeTypeAccess,
  insertQosSpecs,
  insertVolumeType,
  listProjectDefaultTypes,
  listQosSpecs,
  listVolumeTypeAccess,
  listVolumeTypes,
  markQosSpecsDeleted,
  markVolumeTypeDeleted,
  removeVolumeTypeAccess,
  renameVolumeTypeReferences,
  setProjectDefaultType,
  setVolumeTypeExtraSpecs,
  typesOfQosSpecs,
  unsetProjectDefaultType,
  updateVolumeType,
} from "./volume-types.js";
export type { GetVolumeOptions, VolumeChanges } from "./volumes.js";
export {
  assignVolumeHost,
  getVolume,
  getVolumeActivity,
  getVolumeByClientRequest,
  getVolumeElevated,
  getVolumeWithBackend,
  insertVolume,
  listVolumes,
  markVolumeDeleted,
  resetVolumeStatus,
  setVolumeBootable,
  unassignVolumeHost,
  updateVolumeStatus,
} from "./volumes.js";
