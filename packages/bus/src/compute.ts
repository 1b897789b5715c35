import type { ComputeAgents } from "@cinderblock/domain";
import type { Bus } from "./connection.js";

/** Options for {@link createComputeAgents}. */
export interface ComputeAgentsOptions {
  /** Milliseconds to wait for an agent's reply. */
  timeoutMs: number;
  /** Told when a thaw was not confirmed (the instance may stay frozen: an operator must look). */
  onThawFailure?(instanceId: string, error: unknown): void;
}

/**
 * Compute agents reached by NATS request/reply on `<prefix>.v1.compute.<instance>.quiesce` and
 * `.unquiesce` (Nova's quiesce_instance / unquiesce_instance). An agent replies `{"ok": true}`.
 */
export function createComputeAgents(bus: Bus, options: ComputeAgentsOptions): ComputeAgents {
  const ask = async (instanceId: string, action: "quiesce" | "unquiesce"): Promise<boolean> => {
    const reply = await bus.nc.request(bus.subjects.compute(instanceId, action), JSON.stringify({ instanceId }), {
      timeout: options.timeoutMs,
    });
    return (reply.json<{ ok?: unknown }>().ok ?? false) === true;
  };
  return {
    async quiesce(instanceId) {
      try {
        return await ask(instanceId, "quiesce");
      } catch {
        return false; // no agent, or no answer in time
      }
    },
    async unquiesce(instanceId) {
      try {
        if (!(await ask(instanceId, "unquiesce"))) throw new Error("the agent refused to thaw");
      } catch (error) {
        options.onThawFailure?.(instanceId, error);
      }
    },
  };
}
