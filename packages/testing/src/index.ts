export type { Backend } from "./backends.js";
export { backendScripts, backendUnavailable, mustRunInCI } from "./backends.js";
export type { KeystoneCinder } from "./cinder-keystone.js";
export { envWithoutOsLogin, keystoneLoginEnv, keystoneStrategyEnv, startKeystoneCinder } from "./cinder-keystone.js";
export type { TestDatabase, TestDriver } from "./database.js";
export {
  createTestDatabase,
  createTestPglite,
  TEST_DRIVERS,
  TEST_NATS_URL,
  TEST_SERVER_URL,
  uniqueName,
} from "./database.js";
export { createBackendType, createVolumeType, readAt, writeAt } from "./fixtures.js";
export type { CallOutcome, ProjectClient, ProjectClientOptions } from "./grpc.js";
export { call, callError, codeName, createProjectClient, identity, outcomeOf, untilEnd } from "./grpc.js";
export type { InvariantOptions, InvariantReport } from "./invariants.js";
export {
  checkInvariants,
  summarize,
  TRANSITIONAL_SNAPSHOT_STATUSES,
  TRANSITIONAL_VOLUME_STATUSES,
  waitUntilSettled,
} from "./invariants.js";
export type { KeystoneLogin, PrivateKeystone } from "./keystone.js";
export { KEYSTONE_USERS, keystoneLogin, keystoneRevoke, keystoneTokenInfo, startPrivateKeystone } from "./keystone.js";
export type { Accounting, AccountingOptions, CallKind, CallRecord } from "./mixed-load.js";
export { accountForLoad, describeViolations, runMixedLoad } from "./mixed-load.js";
export type { NatsClusterNode, PrivateNatsCluster } from "./nats-cluster.js";
export { startPrivateNatsCluster } from "./nats-cluster.js";
export { sleep, waitUntil } from "./net.js";
export type { PublishedNotification } from "./notifications.js";
export { countByResource, notificationsStreamName, readNotifications, resourceOf } from "./notifications.js";
export type { PostgresPki } from "./pg-pki.js";
export { makePostgresPki } from "./pg-pki.js";
export type { TestPki } from "./pki.js";
export { makeTestPki } from "./pki.js";
export { freePort } from "./ports.js";
export type { PostgresPair } from "./postgres-standby.js";
export { startPostgresPair } from "./postgres-standby.js";
export type { PrivateNats, PrivateNatsOptions, PrivatePostgres, PrivatePostgresOptions } from "./private-servers.js";
export {
  findNatsServer,
  findPostgresBin,
  privatePostgresUnavailable,
  startPrivateNats,
  startPrivatePostgres,
} from "./private-servers.js";
export type { TcpProxy } from "./proxy.js";
export { createTcpProxy } from "./proxy.js";
export { rejectionOf } from "./rejections.js";
export type {
  ExtraVolumeHost,
  ServiceName,
  ServiceProcess,
  Stack,
  StackOptions,
  VolumeHostOptions,
} from "./stack.js";
export { NO_RATE_LIMITS, REPO_ROOT, startService, startStack } from "./stack.js";
export type { SettleOptions } from "./waits.js";
export { availableVolume, availableVolumes, createSettledVolume, settle, settledVolume, statusOf } from "./waits.js";
