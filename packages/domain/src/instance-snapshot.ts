import { type Db, instanceAttachedElsewhere, listAttachmentsOfInstance, type SnapshotRow } from "@cinderblock/db";
import { validateInstanceId } from "./attachments.js";
import { isAdmin, type RequestContext, throwIfGivenUp, unlessGivenUp } from "./context.js";
import { CinderblockError } from "./errors.js";
import type { ComputeAgents } from "./ports.js";
import { TERMINAL_SNAPSHOT_STATUSES } from "./state-machine.js";
import type { CreateSnapshotInput } from "./validation.js";

/** A SnapshotInstance request (Nova's volume-backed instance snapshot). */
export interface SnapshotInstanceInput {
  instanceId: string;
  imageName: string;
  quiesce: boolean;
  quiesceRequired: boolean;
}

/** One block_device_mapping entry of the image, as Nova registers it in Glance. */
export interface BlockDeviceMapping {
  sourceType: "snapshot";
  destinationType: "volume";
  snapshotId: string;
  bootIndex: number;
  deviceName: string;
  volumeSize: number;
  deleteOnTermination: boolean;
}

/** What SnapshotInstance returns: the image manifest and the snapshots behind it. */
export interface InstanceImage {
  imageName: string;
  blockDeviceMapping: BlockDeviceMapping[];
  snapshots: SnapshotRow[];
  quiesced: boolean;
}

/** What SnapshotInstance needs: the create and watch use cases, attachments, and the compute agents. */
export interface InstanceSnapshotDependencies {
  db: Db;
  compute: ComputeAgents;
  createSnapshot(ctx: RequestContext, input: CreateSnapshotInput): Promise<SnapshotRow>;
  watchSnapshot(ctx: RequestContext, id: string, signal: AbortSignal): AsyncGenerator<SnapshotRow>;
  /** Seconds to wait for the snapshots to finish before thawing and giving up. */
  timeoutSeconds: number;
}

/** The device names a boot volume has (Nova's root device). */
const ROOT_DEVICE = /^\/dev\/(x?v|s|h)da$/;

/**
 * Nova's `snapshot_volume_backed`: freeze the instance (when asked), snapshot every attached
 * volume with `force`, wait until each is available — the freeze must cover the backend snapshot —
 * then thaw, on success and on failure alike, and return the image's block device mapping.
 */
export function createInstanceSnapshot(
  deps: InstanceSnapshotDependencies,
): (ctx: RequestContext, input: SnapshotInstanceInput) => Promise<InstanceImage> {
  async function settled(ctx: RequestContext, id: string, signal: AbortSignal): Promise<SnapshotRow | undefined> {
    let last: SnapshotRow | undefined;
    for await (const row of deps.watchSnapshot(ctx, id, signal)) last = row;
    return last;
  }

  return async (ctx, input) => {
    const instanceId = validateInstanceId(input.instanceId);
    if (input.imageName.trim() === "" || input.imageName.length > 255) {
      throw new CinderblockError("INVALID_ARGUMENT", "image_name: must be 1-255 characters");
    }
    const attachments = (await listAttachmentsOfInstance(deps.db, ctx.projectId, instanceId)).filter(
      (a) => a.attachStatus === "attached",
    );
    // NOTE: the caller's project must own every volume on the instance before anything is frozen
    // (an administrator excepted): another project's volume there means the instance is not the
    // caller's to quiesce. A caller with none of its own there gets the unknown instance's answer,
    // which says nothing of other projects' attachments.
    const shared = !isAdmin(ctx) && (await instanceAttachedElsewhere(deps.db, ctx.projectId, instanceId));
    if (attachments.length === 0) {
      throw new CinderblockError("FAILED_PRECONDITION", `instance ${instanceId} has no attached volumes`);
    }
    if (shared) {
      throw new CinderblockError(
        "FAILED_PRECONDITION",
        `instance ${instanceId} has volumes of another project attached; only an administrator can snapshot it`,
      );
    }
    let quiesced = false;
    if (input.quiesce) {
      try {
        // NOTE: a caller that gives up stops the wait, not the request: the agent may still freeze.
        quiesced = await unlessGivenUp(ctx, deps.compute.quiesce(instanceId));
      } catch (error) {
        await deps.compute.unquiesce(instanceId);
        throw error;
      }
    }
    if (input.quiesce && !quiesced && input.quiesceRequired) {
      await deps.compute.unquiesce(instanceId);
      throw new CinderblockError("FAILED_PRECONDITION", `instance ${instanceId} did not confirm the quiesce in time`);
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), deps.timeoutSeconds * 1000);
    const waiting = ctx.signal ? AbortSignal.any([abort.signal, ctx.signal]) : abort.signal;
    let snapshots: SnapshotRow[] = [];
    try {
      const created: SnapshotRow[] = [];
      for (const a of attachments) {
        throwIfGivenUp(ctx);
        created.push(
          await deps.createSnapshot(ctx, {
            volumeId: a.volumeId,
            name: `snapshot for ${input.imageName}`,
            description: `snapshot of instance ${instanceId}`,
            force: true,
            metadata: {},
            groupSnapshotId: "",
            clientRequestId: "",
          }),
        );
      }
      snapshots = await Promise.all(created.map(async (s) => (await settled(ctx, s.id, waiting)) ?? s));
      throwIfGivenUp(ctx);
    } finally {
      clearTimeout(timer);
      if (input.quiesce) await deps.compute.unquiesce(instanceId);
    }
    const unfinished = snapshots.find((s) => s.status !== "available");
    if (unfinished) {
      const why = TERMINAL_SNAPSHOT_STATUSES.includes(unfinished.status)
        ? `ended ${unfinished.status}: ${unfinished.statusReason}`
        : `did not finish within ${deps.timeoutSeconds} s`;
      throw new CinderblockError(
        "FAILED_PRECONDITION",
        `snapshot ${unfinished.id} of volume ${unfinished.volumeId} ${why}`,
      );
    }
    const rootIndex = Math.max(
      0,
      attachments.findIndex((a) => ROOT_DEVICE.test(a.mountpoint)),
    );
    return {
      imageName: input.imageName,
      quiesced,
      snapshots,
      blockDeviceMapping: snapshots.map((s, i) => ({
        sourceType: "snapshot",
        destinationType: "volume",
        snapshotId: s.id,
        bootIndex: i === rootIndex ? 0 : -1,
        deviceName: attachments[i]?.mountpoint ?? "",
        volumeSize: s.volumeSizeGb,
        deleteOnTermination: false,
      })),
    };
  };
}
