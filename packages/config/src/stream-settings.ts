import { z } from "zod";

const count = (min: number) => z.coerce.number().int().min(min);

/**
 * The api's bounds on streams, connections and messages, and the notifications stream's retention
 * (issue 14). Spread into the api schema. Each refusal names the setting it hit.
 */
export const streamFields = {
  /** Events a WatchEvents stream holds for a reader that falls behind; past it the stream ends (RESOURCE_EXHAUSTED). */
  CINDERBLOCK_STREAM_BUFFER_MESSAGES: count(1).default(1000),
  /** Bytes (of events as published) a WatchEvents stream holds for a reader that falls behind. */
  CINDERBLOCK_STREAM_BUFFER_BYTES: count(1024).default(256 * 1024),
  /** Open server streams (WatchSnapshot, WatchEvents) one project may have. */
  CINDERBLOCK_MAX_STREAMS_PER_PROJECT: count(1).default(100),
  /** Open server streams of every project together, on one api process. */
  CINDERBLOCK_MAX_STREAMS: count(1).default(1000),
  /** Client connections the public port holds at once; one more is closed on arrival (UNAVAILABLE). */
  CINDERBLOCK_MAX_CONNECTIONS: count(1).default(1000),
  /** Concurrent calls (HTTP/2 streams) on one client connection (grpc.max_concurrent_streams). */
  CINDERBLOCK_GRPC_CONCURRENT_STREAMS: count(1).default(100),
  /** Largest request message the api accepts, in bytes (larger: RESOURCE_EXHAUSTED). */
  CINDERBLOCK_GRPC_MAX_MESSAGE_BYTES: count(1024).default(4 * 1024 * 1024),
  /** Seconds notifications stay replayable in the notifications stream (max_age). */
  CINDERBLOCK_NOTIFICATIONS_MAX_AGE: count(1).default(7 * 24 * 3600),
  /** Bytes the notifications stream keeps at most; the oldest go first (max_bytes). */
  CINDERBLOCK_NOTIFICATIONS_MAX_BYTES: count(1024 * 1024).default(1024 * 1024 * 1024),
};
