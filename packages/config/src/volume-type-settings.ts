import { z } from "zod";

/** Volume types (issue 15). Spread into the api schema. */
export const volumeTypeFields = {
  /**
   * The name of the type a volume gets when it asks for none and its project has no default of its
   * own (Cinder's default_volume_type). The `__DEFAULT__` type exists from the first migration on;
   * another name must be created (CreateVolumeType) before volumes can be created without a type.
   */
  CINDERBLOCK_DEFAULT_VOLUME_TYPE: z
    .string()
    .min(1)
    .max(255)
    .refine((s) => !/\p{Cc}/u.test(s), "must not contain control characters")
    .default("__DEFAULT__"),
};
