import { z } from "zod";

/**
 * The scheduler's weighers (issue 15), spread into the scheduler's schema. Each weigher's weights
 * are normalised to 0..1 and multiplied by its multiplier; the pool with the largest sum wins.
 */
export const schedulerWeigherFields = {
  /**
   * Cinder's capacity_weight_multiplier: weight of a pool's virtual free capacity. Positive spreads
   * new volumes over the emptiest pools; negative stacks them on the fullest; 0 ignores it.
   */
  CINDERBLOCK_CAPACITY_WEIGHT_MULTIPLIER: z.coerce.number().default(1),
  /**
   * Cinder's allocated_capacity_weight_multiplier: weight of the capacity already allocated in a
   * pool. Negative prefers the least allocated pools; positive the most; 0 ignores it.
   */
  CINDERBLOCK_ALLOCATED_CAPACITY_WEIGHT_MULTIPLIER: z.coerce.number().default(-1),
};
