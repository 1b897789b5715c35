import { cancellingQueuedStatements } from "@cinderblock/db";
import {
  type ApiUseCases,
  CinderblockError,
  type QuotaView,
  type RequestContext,
  type RequestLimits,
  validateRequest,
} from "@cinderblock/domain";
import {
  type EventsServiceServer,
  EventsServiceService,
  type GroupSnapshotsServiceServer,
  GroupSnapshotsServiceService,
  Notification,
  type QuotasServiceServer,
  QuotasServiceService,
  type ServicesServiceServer,
  ServicesServiceService,
  type SnapshotsServiceServer,
  SnapshotsServiceService,
  type VolumesServiceServer,
  VolumesServiceService,
  type VolumeTypesServiceServer,
  VolumeTypesServiceService,
  type WatchEventsRequest,
  type WatchSnapshotRequest,
} from "@cinderblock/proto";
import {
  createGuard,
  createNoauthAuthenticator,
  createStreamLimiter,
  type ErrorReporter,
  type Guard,
  loadPolicy,
  type RateLimiter,
  rateLimited,
  Server,
  type StreamInterrupt,
  serverStreaming,
  tolerantService,
  unary,
} from "@cinderblock/rpc";
import {
  groupSnapshotStatusName,
  listView,
  qosConsumerName,
  snapshotStatusName,
  toAttachment,
  toGroupSnapshot,
  toListedSnapshot,
  toListedVolume,
  toQosSpecs,
  toService,
  toSnapshot,
  toVolume,
  toVolumeType,
  volumeStatusName,
} from "./mapping.js";
import { API_METHOD_CLASSES } from "./method-classes.js";
import { API_METHOD_RULES } from "./rules.js";

/** Fully qualified names of the public services (for health and the README). */
export const PUBLIC_SERVICES = [
  "cinderblock.v1.VolumesService",
  "cinderblock.v1.SnapshotsService",
  "cinderblock.v1.QuotasService",
  "cinderblock.v1.EventsService",
  "cinderblock.v1.GroupSnapshotsService",
  "cinderblock.v1.VolumeTypesService",
  "cinderblock.v1.ServicesService",
];

function status<T>(name: T | undefined): T {
  if (name === undefined) throw new CinderblockError("INVALID_ARGUMENT", "status: must be a known status");
  return name;
}

function quotaMessages(result: { projectId: string; quotas: QuotaView[] }) {
  return { projectId: result.projectId, quotas: result.quotas };
}

/** Options for {@link createApiServer}. */
export interface ApiServerOptions {
  useCases: ApiUseCases;
  report: ErrorReporter;
  /** Aborted when the api begins to drain: open streams then end with UNAVAILABLE at once. */
  stopping?: AbortSignal;
  /**
   * Authenticates each call and enforces its policy rules (API_METHOD_RULES); by default noauth
   * with the default policy (tests and development).
   */
  guard?: Guard;
  /** Per-project rate limits by method class (API_METHOD_CLASSES), applied after the guard; none by default. */
  rateLimiter?: RateLimiter;
  /** The server's deadline of a unary call, in milliseconds; none by default. */
  callDeadlineMs?: number;
  /** Bounds on every string, map and list of every request (the CINDERBLOCK_REQUEST_* settings). */
  limits: RequestLimits;
  /** Caps on streams, calls per connection and message size (defaults: the settings' defaults). */
  streamLimits?: Partial<ApiServerLimits>;
}

/** The server's bounds (CINDERBLOCK_MAX_STREAMS*, CINDERBLOCK_GRPC_*). */
interface ApiServerLimits {
  streamsPerProject: number;
  streams: number;
  concurrentStreamsPerConnection: number;
  maxMessageBytes: number;
}

const DEFAULT_LIMITS: ApiServerLimits = {
  streamsPerProject: 100,
  streams: 1000,
  concurrentStreamsPerConnection: 100,
  maxMessageBytes: 4 * 1024 * 1024,
};

/**
 * The public gRPC server: handlers only map messages to use-case calls and back; validation,
 * state and quota checks live in the domain package.
 */
export function createApiServer(options: ApiServerOptions): Server {
  const { useCases: uc, report } = options;
  const identified =
    options.guard ??
    createGuard({
      authenticator: createNoauthAuthenticator(),
      policy: loadPolicy(undefined),
      methods: API_METHOD_RULES,
    });
  const guard = options.rateLimiter ? rateLimited(identified, options.rateLimiter, API_METHOD_CLASSES) : identified;
  const callLimits = { deadlineMs: options.callDeadlineMs };
  const { limits } = options;
  const streamLimits = { ...DEFAULT_LIMITS, ...options.streamLimits };
  const limiter = createStreamLimiter({ perProject: streamLimits.streamsPerProject, total: streamLimits.streams });
  // NOTE: every request passes the generic checks (no control characters, bounded strings, maps
  // and lists) after the guard and before its use case, so a field added later is covered too.
  const u = <Req extends object, Res>(method: string, handler: (request: Req, ctx: RequestContext) => Promise<Res>) =>
    unary<Req, Res>(
      method,
      report,
      (request, ctx) => {
        validateRequest(request, limits);
        // A call cancelled (or past its deadline) while its statements wait for a pooled
        // connection drops them unsent; one already sent is bounded by statement_timeout.
        return cancellingQueuedStatements(ctx.signal, () => handler(request, ctx));
      },
      guard,
      callLimits,
    );
  const s = <Req extends object, Res>(
    method: string,
    handler: (request: Req, ctx: RequestContext, signal: AbortSignal, interrupt: StreamInterrupt) => AsyncIterable<Res>,
  ) =>
    serverStreaming<Req, Res>(
      method,
      report,
      (request, ctx, signal, interrupt) => {
        validateRequest(request, limits);
        return handler(request, ctx, signal, interrupt);
      },
      { stop: options.stopping, guard, limiter },
    );
  const volumes: VolumesServiceServer = {
    createVolume: u("CreateVolume", async (req, ctx) => ({
      volume: toVolume(await uc.createVolume(ctx, req), ctx),
    })),
    getVolume: u("GetVolume", async (req, ctx) => {
      const volume = await uc.getVolume(ctx, req.id);
      return { volume: toVolume(volume, ctx, await uc.listAttachments(ctx, volume.id)) };
    }),
    listVolumes: u("ListVolumes", async (req, ctx) => {
      const view = listView(req.view);
      const page = await uc.listVolumes(ctx, { ...req, status: volumeStatusName(req.status) });
      return { volumes: page.items.map((v) => toListedVolume(v, view, ctx)), nextPageToken: page.nextPageToken };
    }),
    updateVolume: u("UpdateVolume", async (req, ctx) => ({
      volume: toVolume(
        await uc.updateVolume(ctx, req.id, { name: req.name, description: req.description, bootable: req.bootable }),
        ctx,
      ),
    })),
    deleteVolume: u("DeleteVolume", async (req, ctx) => ({
      volume: toVolume(await uc.deleteVolume(ctx, req.id, req.cascade, req.force), ctx),
    })),
    resetVolumeStatus: u("ResetVolumeStatus", async (req, ctx) => ({
      volume: toVolume(await uc.resetVolumeStatus(ctx, req.id, status(volumeStatusName(req.status))), ctx),
    })),
    setVolumeMetadata: u("SetVolumeMetadata", async (req, ctx) => ({
      metadata: await uc.setMetadata(ctx, "volumes", req.id, req.metadata, req.replace),
    })),
    deleteVolumeMetadata: u("DeleteVolumeMetadata", async (req, ctx) => ({
      metadata: await uc.deleteMetadata(ctx, "volumes", req.id, req.key),
    })),
    extendVolume: u("ExtendVolume", async (req, ctx) => ({
      volume: toVolume(await uc.extendVolume(ctx, req.id, req.newSizeGb), ctx),
    })),
    retypeVolume: u("RetypeVolume", async (req, ctx) => ({
      volume: toVolume(
        await uc.retypeVolume(ctx, { id: req.id, newType: req.newType, migrationPolicy: req.migrationPolicy }),
        ctx,
      ),
    })),
    revertVolumeToSnapshot: u("RevertVolumeToSnapshot", async (req, ctx) => ({
      volume: toVolume(await uc.revertToSnapshot(ctx, req.volumeId, req.snapshotId), ctx),
    })),
    attachVolume: u("AttachVolume", async (req, ctx) => {
      const { attachment, connection } = await uc.attachVolume(ctx, req);
      return {
        attachment: toAttachment(attachment),
        driverVolumeType: connection.driverVolumeType,
        connectionData: connection.data,
      };
    }),
    detachVolume: u("DetachVolume", async (req, ctx) => {
      await uc.detachVolume(ctx, req.volumeId, req.attachmentId);
      const volume = await uc.getVolume(ctx, req.volumeId);
      return { volume: toVolume(volume, ctx, await uc.listAttachments(ctx, volume.id)) };
    }),
  };
  const snapshots: SnapshotsServiceServer = {
    createSnapshot: u("CreateSnapshot", async (req, ctx) => ({
      snapshot: toSnapshot(await uc.createSnapshot(ctx, req), ctx),
    })),
    getSnapshot: u("GetSnapshot", async (req, ctx) => ({
      snapshot: toSnapshot(await uc.getSnapshot(ctx, req.id), ctx),
    })),
    listSnapshots: u("ListSnapshots", async (req, ctx) => {
      const view = listView(req.view);
      const page = await uc.listSnapshots(ctx, { ...req, status: snapshotStatusName(req.status) });
      return { snapshots: page.items.map((s) => toListedSnapshot(s, view, ctx)), nextPageToken: page.nextPageToken };
    }),
    watchSnapshot: s("WatchSnapshot", async function* (req: WatchSnapshotRequest, ctx, signal) {
      for await (const row of uc.watchSnapshot(ctx, req.id, signal)) yield { snapshot: toSnapshot(row, ctx) };
    }),
    updateSnapshot: u("UpdateSnapshot", async (req, ctx) => ({
      snapshot: toSnapshot(await uc.updateSnapshot(ctx, req.id, { name: req.name, description: req.description }), ctx),
    })),
    deleteSnapshot: u("DeleteSnapshot", async (req, ctx) => ({
      snapshot: toSnapshot(await uc.deleteSnapshot(ctx, req.id, req.force), ctx),
    })),
    resetSnapshotStatus: u("ResetSnapshotStatus", async (req, ctx) => ({
      snapshot: toSnapshot(await uc.resetSnapshotStatus(ctx, req.id, status(snapshotStatusName(req.status))), ctx),
    })),
    setSnapshotMetadata: u("SetSnapshotMetadata", async (req, ctx) => ({
      metadata: await uc.setMetadata(ctx, "snapshots", req.id, req.metadata, req.replace),
    })),
    deleteSnapshotMetadata: u("DeleteSnapshotMetadata", async (req, ctx) => ({
      metadata: await uc.deleteMetadata(ctx, "snapshots", req.id, req.key),
    })),
    listManageableSnapshots: u("ListManageableSnapshots", async (req, ctx) => ({
      snapshots: await uc.listManageableSnapshots(ctx, req.host),
    })),
    manageSnapshot: u("ManageSnapshot", async (req, ctx) => ({
      snapshot: toSnapshot(await uc.manageSnapshot(ctx, req), ctx),
    })),
    unmanageSnapshot: u("UnmanageSnapshot", async (req, ctx) => {
      await uc.unmanageSnapshot(ctx, req.id);
      return {};
    }),
    snapshotInstance: u("SnapshotInstance", async (req, ctx) => {
      const image = await uc.snapshotInstance(ctx, req);
      return {
        imageName: image.imageName,
        quiesced: image.quiesced,
        snapshots: image.snapshots.map((row) => toSnapshot(row, ctx)),
        blockDeviceMapping: image.blockDeviceMapping,
      };
    }),
  };
  const quotas: QuotasServiceServer = {
    getQuotas: u("GetQuotas", async (req, ctx) => quotaMessages(await uc.getQuotas(ctx, req.projectId))),
    updateQuotas: u("UpdateQuotas", async (req, ctx) =>
      quotaMessages(await uc.updateQuotas(ctx, req.projectId, req.limits)),
    ),
    deleteQuotas: u("DeleteQuotas", async (req, ctx) => quotaMessages(await uc.deleteQuotas(ctx, req.projectId))),
  };
  const events: EventsServiceServer = {
    watchEvents: s("WatchEvents", async function* (req: WatchEventsRequest, ctx, signal, interrupt) {
      const filter = {
        resourceId: req.resourceId,
        eventTypes: req.eventTypes,
        allProjects: req.allProjects,
        startSequence: req.startSequence,
      };
      for await (const { sequence, event } of uc.watchEvents(ctx, filter, signal, interrupt)) {
        yield { event: Notification.fromJSON(event), sequence };
      }
    }),
  };
  const groups: GroupSnapshotsServiceServer = {
    createGroupSnapshot: u("CreateGroupSnapshot", async (req, ctx) => {
      const v = await uc.createGroupSnapshot(ctx, req);
      return { groupSnapshot: toGroupSnapshot(v.group, v.members, ctx) };
    }),
    getGroupSnapshot: u("GetGroupSnapshot", async (req, ctx) => {
      const v = await uc.getGroupSnapshot(ctx, req.id);
      return { groupSnapshot: toGroupSnapshot(v.group, v.members, ctx) };
    }),
    listGroupSnapshots: u("ListGroupSnapshots", async (req, ctx) => {
      const page = await uc.listGroupSnapshots(ctx, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        status: groupSnapshotStatusName(req.status),
        name: req.name,
        metadata: {},
        sortKey: req.sortKey,
        sortDir: req.sortDir,
        allProjects: req.allProjects,
      });
      return {
        groupSnapshots: page.items.map((v) => toGroupSnapshot(v.group, v.members, ctx)),
        nextPageToken: page.nextPageToken,
      };
    }),
    deleteGroupSnapshot: u("DeleteGroupSnapshot", async (req, ctx) => {
      const v = await uc.deleteGroupSnapshot(ctx, req.id);
      return { groupSnapshot: toGroupSnapshot(v.group, v.members, ctx) };
    }),
  };
  const types: VolumeTypesServiceServer = {
    createVolumeType: u("CreateVolumeType", async (req, ctx) => ({
      volumeType: toVolumeType(await uc.createVolumeType(ctx, req), ctx),
    })),
    getVolumeType: u("GetVolumeType", async (req, ctx) => ({
      volumeType: toVolumeType(await uc.getVolumeType(ctx, req.id), ctx),
    })),
    listVolumeTypes: u("ListVolumeTypes", async (req, ctx) => {
      const page = await uc.listVolumeTypes(ctx, req);
      return { volumeTypes: page.items.map((t) => toVolumeType(t, ctx)), nextPageToken: page.nextPageToken };
    }),
    updateVolumeType: u("UpdateVolumeType", async (req, ctx) => ({
      volumeType: toVolumeType(await uc.updateVolumeType(ctx, req.id, req), ctx),
    })),
    deleteVolumeType: u("DeleteVolumeType", async (req, ctx) => {
      await uc.deleteVolumeType(ctx, req.id);
      return {};
    }),
    setVolumeTypeExtraSpecs: u("SetVolumeTypeExtraSpecs", async (req, ctx) => ({
      extraSpecs: await uc.setVolumeTypeExtraSpecs(ctx, req.id, req.extraSpecs),
    })),
    deleteVolumeTypeExtraSpec: u("DeleteVolumeTypeExtraSpec", async (req, ctx) => ({
      extraSpecs: await uc.deleteVolumeTypeExtraSpec(ctx, req.id, req.key),
    })),
    addVolumeTypeAccess: u("AddVolumeTypeAccess", async (req, ctx) => {
      await uc.addVolumeTypeAccess(ctx, req.id, req.projectId);
      return {};
    }),
    removeVolumeTypeAccess: u("RemoveVolumeTypeAccess", async (req, ctx) => {
      await uc.removeVolumeTypeAccess(ctx, req.id, req.projectId);
      return {};
    }),
    listVolumeTypeAccess: u("ListVolumeTypeAccess", async (req, ctx) => ({
      projectIds: await uc.listVolumeTypeAccess(ctx, req.id),
    })),
    getDefaultVolumeType: u("GetDefaultVolumeType", async (req, ctx) => {
      const { type, projectOverride } = await uc.getDefaultVolumeType(ctx, req.projectId);
      return { volumeType: toVolumeType(type, ctx), projectOverride };
    }),
    setDefaultVolumeType: u("SetDefaultVolumeType", async (req, ctx) => ({
      defaultVolumeType: await uc.setDefaultVolumeType(ctx, req.projectId, req.volumeType),
    })),
    unsetDefaultVolumeType: u("UnsetDefaultVolumeType", async (req, ctx) => {
      await uc.unsetDefaultVolumeType(ctx, req.projectId);
      return {};
    }),
    listDefaultVolumeTypes: u("ListDefaultVolumeTypes", async (_req, ctx) => ({
      defaultVolumeTypes: await uc.listDefaultVolumeTypes(ctx),
    })),
    createQosSpecs: u("CreateQosSpecs", async (req, ctx) => ({
      qosSpecs: toQosSpecs(
        await uc.createQosSpecs(ctx, { name: req.name, consumer: qosConsumerName(req.consumer), specs: req.specs }),
      ),
    })),
    getQosSpecs: u("GetQosSpecs", async (req, ctx) => ({ qosSpecs: toQosSpecs(await uc.getQosSpecs(ctx, req.id)) })),
    listQosSpecs: u("ListQosSpecs", async (req, ctx) => {
      const page = await uc.listQosSpecs(ctx, req);
      return { qosSpecs: page.items.map(toQosSpecs), nextPageToken: page.nextPageToken };
    }),
    setQosSpecsKeys: u("SetQosSpecsKeys", async (req, ctx) => ({
      qosSpecs: toQosSpecs(await uc.setQosSpecsKeys(ctx, req.id, req.specs)),
    })),
    deleteQosSpecsKeys: u("DeleteQosSpecsKeys", async (req, ctx) => ({
      qosSpecs: toQosSpecs(await uc.deleteQosSpecsKeys(ctx, req.id, req.keys)),
    })),
    deleteQosSpecs: u("DeleteQosSpecs", async (req, ctx) => {
      await uc.deleteQosSpecs(ctx, req.id, req.force);
      return {};
    }),
    associateQosSpecs: u("AssociateQosSpecs", async (req, ctx) => {
      await uc.associateQosSpecs(ctx, req.id, req.volumeTypeId);
      return {};
    }),
    disassociateQosSpecs: u("DisassociateQosSpecs", async (req, ctx) => {
      await uc.disassociateQosSpecs(ctx, req.id, req.volumeTypeId);
      return {};
    }),
  };
  const operators: ServicesServiceServer = {
    listServices: u("ListServices", async (req, ctx) => ({
      services: (await uc.listServices(ctx, req)).map(toService),
    })),
    enableService: u("EnableService", async (req, ctx) => ({
      services: (await uc.enableService(ctx, req)).map(toService),
    })),
    disableService: u("DisableService", async (req, ctx) => ({
      services: (await uc.disableService(ctx, req)).map(toService),
    })),
    freezeHost: u("FreezeHost", async (req, ctx) => ({
      services: (await uc.freezeHost(ctx, req.host)).map(toService),
    })),
    thawHost: u("ThawHost", async (req, ctx) => ({ services: (await uc.thawHost(ctx, req.host)).map(toService) })),
    listPools: u("ListPools", async (req, ctx) => ({
      pools: (await uc.listPools(ctx, req)).map((p) => ({
        name: p.name,
        capabilities: req.detail ? { ...p.capabilities } : undefined,
      })),
    })),
    listAvailabilityZones: u("ListAvailabilityZones", async (_req, ctx) => ({
      availabilityZones: await uc.listAvailabilityZones(ctx),
    })),
  };
  const server = new Server({
    "grpc.max_receive_message_length": streamLimits.maxMessageBytes,
    "grpc.max_concurrent_streams": streamLimits.concurrentStreamsPerConnection,
  });
  server.addService(tolerantService(VolumesServiceService), volumes);
  server.addService(tolerantService(SnapshotsServiceService), snapshots);
  server.addService(tolerantService(QuotasServiceService), quotas);
  server.addService(tolerantService(EventsServiceService), events);
  server.addService(tolerantService(GroupSnapshotsServiceService), groups);
  server.addService(tolerantService(VolumeTypesServiceService), types);
  server.addService(tolerantService(ServicesServiceService), operators);
  return server;
}
