export type { TestDatabase } from "./database.js";
export { createTestDatabase, TEST_NATS_URL, TEST_SERVER_URL, uniqueName } from "./database.js";
export type { CallOutcome, ProjectClient, ProjectClientOptions } from "./grpc.js";
export { call, codeName, createProjectClient, identity, outcomeOf } from "./grpc.js";
export type { InvariantOptions, InvariantReport } from "./invariants.js";
export {
  checkInvariants,
  summarize,
  TRANSITIONAL_SNAPSHOT_STATUSES,
  TRANSITIONAL_VOLUME_STATUSES,
  waitUntilSettled,
} from "./invariants.js";
export { freePort, sleep, waitUntil } from "./net.js";
export type { PublishedNotification } from "./notifications.js";
export { countByResource, notificationsStreamName, readNotifications, resourceOf } from "./notifications.js";
export type { PrivateNats, PrivatePostgres } from "./private-servers.js";
export { findNatsServer, findPostgresBin, startPrivateNats, startPrivatePostgres } from "./private-servers.js";
export type { TcpProxy } from "./proxy.js";
export { createTcpProxy } from "./proxy.js";
export type { ServiceName, ServiceProcess, Stack, StackOptions } from "./stack.js";
export { REPO_ROOT, startService, startStack } from "./stack.js";
