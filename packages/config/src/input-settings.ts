import { z } from "zod";

/**
 * The api's bounds on what a request may carry (issue 14), checked on every public call whatever
 * its method, and the secret its page tokens are signed with. Spread into the api schema.
 */
export const inputFields = {
  /** Characters of any one string of a request (a field, a map key or value, a list entry). */
  CINDERBLOCK_REQUEST_MAX_STRING_LENGTH: z.coerce.number().int().min(255).max(1_048_576).default(4096),
  /** Entries of any one map or list of a request (metadata, the attach connector, event_types...). */
  CINDERBLOCK_REQUEST_MAX_ENTRIES: z.coerce.number().int().min(1).max(100_000).default(128),
  /** UTF-8 bytes of any one map or list of a request, all its keys and values together. */
  CINDERBLOCK_REQUEST_MAX_COLLECTION_BYTES: z.coerce.number().int().min(1024).max(4_194_304).default(65_536),
  /**
   * The key page tokens are signed with (HMAC-SHA256), at least 32 characters; the same on every
   * replica. Unset, each process draws a random one: tokens then fail after a restart or on another
   * replica (INVALID_ARGUMENT, the client lists again from the start).
   */
  CINDERBLOCK_PAGE_TOKEN_SECRET: z.string().min(32, "expected at least 32 characters").optional(),
};
