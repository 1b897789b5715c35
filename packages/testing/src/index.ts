export type { Backend } from "./backends.js";
export { backendScripts, backendUnavailable, mustRunInCI } from "./backends.js";
export type { TestDatabase, TestDriver } from "./database.js";
export {
  createTestDatabase,
  createTestPglite,
  TEST_DRIVERS,
  TEST_NATS_URL,
  TEST_SERVER_URL,
  uniqueName,
} from "./database.js";
export { call, callError, identity, untilEnd } from "./grpc.js";
export { freePort } from "./ports.js";
export type { TcpProxy } from "./proxy.js";
export { createTcpProxy } from "./proxy.js";
export type { ServiceName, ServiceProcess, Stack, StackOptions } from "./stack.js";
export { REPO_ROOT, startService, startStack } from "./stack.js";
export type { SettleOptions } from "./waits.js";
export { availableVolume, availableVolumes, createSettledVolume, settle, settledVolume, statusOf } from "./waits.js";
