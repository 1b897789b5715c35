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

/** What {@link tellVolumeExtended} says (Nova's `volume-extended` external event). */
export interface VolumeExtendedEvent {
  instanceId: string;
  volumeId: string;
  newSizeGb: number;
}

/**
 * Tells an instance's compute agent that one of its attached volumes grew, so it can resize the
 * guest's block device (Cinder calls Nova's external event `volume-extended`), as a core NATS
 * message on `<prefix>.v1.compute.<instance>.volume_extended`. NOTE: fire and forget, as Nova's
 * events are: the volume has grown whether or not an agent listens, and no agent can undo it.
 */
export function tellVolumeExtended(bus: Bus, event: VolumeExtendedEvent): void {
  bus.nc.publish(bus.subjects.compute(event.instanceId, "volume_extended"), JSON.stringify(event));
}
