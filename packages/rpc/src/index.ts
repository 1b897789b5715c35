export * from "./auth/index.js";
export type { MappedError } from "./errors.js";
export { toServiceError } from "./errors.js";
export type { Health } from "./health.js";
export { addHealth } from "./health.js";
export type { VolumeHostCallsOptions } from "./host-client.js";
export { createVolumeHostCalls } from "./host-client.js";
export type { ErrorReporter, IntrospectionOptions, StreamingOptions } from "./server.js";
export { addHealthAndReflection, listen, Server, serverStreaming, shutdown, unary } from "./server.js";
