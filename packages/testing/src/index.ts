export type { TestDatabase } from "./database.js";
export { createTestDatabase, TEST_NATS_URL, TEST_SERVER_URL, uniqueName } from "./database.js";
export type { TcpProxy } from "./proxy.js";
export { createTcpProxy } from "./proxy.js";
export type { ServiceName, ServiceProcess, Stack, StackOptions } from "./stack.js";
export { REPO_ROOT, startService, startStack } from "./stack.js";
