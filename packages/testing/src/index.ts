export type { TestDatabase } from "./database.js";
export { createTestDatabase, TEST_NATS_URL, TEST_SERVER_URL, uniqueName } from "./database.js";
export type { Stack, StackOptions } from "./stack.js";
export { REPO_ROOT, startStack } from "./stack.js";
