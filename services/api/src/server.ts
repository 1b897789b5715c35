import { type ApiUseCases, CinderblockError, type QuotaView } from "@cinderblock/domain";
import {
  type EventsServiceServer,
  EventsServiceService,
  type GroupSnapshotsServiceServer,
  GroupSnapshotsServiceService,
  Notification,
  type QuotasServiceServer,
  QuotasServiceService,
  type SnapshotsServiceServer,
  SnapshotsServiceService,
  type VolumesServiceServer,
  VolumesServiceService,
} from "@cinderblock/proto";
import { type ErrorReporter, Server, serverStreaming, unary } from "@cinderblock/rpc";
import {
  listView,
  snapshotStatusName,
  toAttachment,
  toGroupSnapshot,
  toListedSnapshot,
  toListedVolume,
  toSnapshot,
  toVolume,
  volumeStatusName,
} from "./mapping.js";

/** Fully qualified names of the public services (for health and the README). */
export const PUBLIC_SERVICES = [
  "cinderblock.v1.VolumesService",
  "cinderblock.v1.SnapshotsService",
  "cinderblock.v1.QuotasService",
  "cinderblock.v1.EventsService",
  "cinderblock.v1.GroupSnapshotsService",
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
}

/**
 * The public gRPC server: handlers only map messages to use-case calls and back; validation,
 * state and quota checks live in the domain package.
 */
export function createApiServer(options: ApiServerOptions): Server {
  const { useCases: uc, report } = options;
  const streaming = { stop: options.stopping };
  const volumes: VolumesServiceServer = {
    createVolume: unary("CreateVolume", report, async (req, ctx) => ({
      volume: toVolume(await uc.createVolume(ctx, req)),
    })),
    getVolume: unary("GetVolume", report, async (req, ctx) => {
      const volume = await uc.getVolume(ctx, req.id);
      return { volume: toVolume(volume, await uc.listAttachments(ctx, volume.id)) };
    }),
    listVolumes: unary("ListVolumes", report, async (req, ctx) => {
      const view = listView(req.view);
      const page = await uc.listVolumes(ctx, { ...req, status: volumeStatusName(req.status) });
      return { volumes: page.items.map((v) => toListedVolume(v, view)), nextPageToken: page.nextPageToken };
    }),
    updateVolume: unary("UpdateVolume", report, async (req, ctx) => ({
      volume: toVolume(await uc.updateVolume(ctx, req.id, { name: req.name, description: req.description })),
    })),
    deleteVolume: unary("DeleteVolume", report, async (req, ctx) => ({
      volume: toVolume(await uc.deleteVolume(ctx, req.id, req.cascade)),
    })),
    resetVolumeStatus: unary("ResetVolumeStatus", report, async (req, ctx) => ({
      volume: toVolume(await uc.resetVolumeStatus(ctx, req.id, status(volumeStatusName(req.status)))),
    })),
    setVolumeMetadata: unary("SetVolumeMetadata", report, async (req, ctx) => ({
      metadata: await uc.setMetadata(ctx, "volumes", req.id, req.metadata, req.replace),
    })),
    deleteVolumeMetadata: unary("DeleteVolumeMetadata", report, async (req, ctx) => ({
      metadata: await uc.deleteMetadata(ctx, "volumes", req.id, req.key),
    })),
    extendVolume: unary("ExtendVolume", report, async (req, ctx) => ({
      volume: toVolume(await uc.extendVolume(ctx, req.id, req.newSizeGb)),
    })),
    revertVolumeToSnapshot: unary("RevertVolumeToSnapshot", report, async (req, ctx) => ({
      volume: toVolume(await uc.revertToSnapshot(ctx, req.volumeId, req.snapshotId)),
    })),
    attachVolume: unary("AttachVolume", report, async (req, ctx) => {
      const { attachment, connection } = await uc.attachVolume(ctx, req);
      return {
        attachment: toAttachment(attachment),
        driverVolumeType: connection.driverVolumeType,
        connectionData: connection.data,
      };
    }),
    detachVolume: unary("DetachVolume", report, async (req, ctx) => {
      await uc.detachVolume(ctx, req.volumeId, req.attachmentId);
      const volume = await uc.getVolume(ctx, req.volumeId);
      return { volume: toVolume(volume, await uc.listAttachments(ctx, volume.id)) };
    }),
  };
  const snapshots: SnapshotsServiceServer = {
    createSnapshot: unary("CreateSnapshot", report, async (req, ctx) => ({
      snapshot: toSnapshot(await uc.createSnapshot(ctx, req)),
    })),
    getSnapshot: unary("GetSnapshot", report, async (req, ctx) => ({
      snapshot: toSnapshot(await uc.getSnapshot(ctx, req.id)),
    })),
    listSnapshots: unary("ListSnapshots", report, async (req, ctx) => {
      const view = listView(req.view);
      const page = await uc.listSnapshots(ctx, { ...req, status: snapshotStatusName(req.status) });
      return { snapshots: page.items.map((s) => toListedSnapshot(s, view)), nextPageToken: page.nextPageToken };
    }),
    watchSnapshot: serverStreaming(
      "WatchSnapshot",
      report,
      async function* (req, ctx, signal) {
        for await (const row of uc.watchSnapshot(ctx, req.id, signal)) yield { snapshot: toSnapshot(row) };
      },
      streaming,
    ),
    updateSnapshot: unary("UpdateSnapshot", report, async (req, ctx) => ({
      snapshot: toSnapshot(await uc.updateSnapshot(ctx, req.id, { name: req.name, description: req.description })),
    })),
    deleteSnapshot: unary("DeleteSnapshot", report, async (req, ctx) => ({
      snapshot: toSnapshot(await uc.deleteSnapshot(ctx, req.id, req.force)),
    })),
    resetSnapshotStatus: unary("ResetSnapshotStatus", report, async (req, ctx) => ({
      snapshot: toSnapshot(await uc.resetSnapshotStatus(ctx, req.id, status(snapshotStatusName(req.status)))),
    })),
    setSnapshotMetadata: unary("SetSnapshotMetadata", report, async (req, ctx) => ({
      metadata: await uc.setMetadata(ctx, "snapshots", req.id, req.metadata, req.replace),
    })),
    deleteSnapshotMetadata: unary("DeleteSnapshotMetadata", report, async (req, ctx) => ({
      metadata: await uc.deleteMetadata(ctx, "snapshots", req.id, req.key),
    })),
    listManageableSnapshots: unary("ListManageableSnapshots", report, async (req, ctx) => ({
      snapshots: await uc.listManageableSnapshots(ctx, req.host),
    })),
    manageSnapshot: unary("ManageSnapshot", report, async (req, ctx) => ({
      snapshot: toSnapshot(await uc.manageSnapshot(ctx, req)),
    })),
    unmanageSnapshot: unary("UnmanageSnapshot", report, async (req, ctx) => {
      await uc.unmanageSnapshot(ctx, req.id);
      return {};
    }),
    snapshotInstance: unary("SnapshotInstance", report, async (req, ctx) => {
      const image = await uc.snapshotInstance(ctx, req);
      return {
        imageName: image.imageName,
        quiesced: image.quiesced,
        snapshots: image.snapshots.map(toSnapshot),
        blockDeviceMapping: image.blockDeviceMapping,
      };
    }),
  };
  const quotas: QuotasServiceServer = {
    getQuotas: unary("GetQuotas", report, async (req, ctx) => quotaMessages(await uc.getQuotas(ctx, req.projectId))),
    updateQuotas: unary("UpdateQuotas", report, async (req, ctx) =>
      quotaMessages(await uc.updateQuotas(ctx, req.projectId, req.limits)),
    ),
  };
  const events: EventsServiceServer = {
    watchEvents: serverStreaming(
      "WatchEvents",
      report,
      async function* (req, ctx, signal) {
        const filter = { resourceId: req.resourceId, eventTypes: req.eventTypes, allProjects: req.allProjects };
        for await (const event of uc.watchEvents(ctx, filter, signal)) yield { event: Notification.fromJSON(event) };
      },
      streaming,
    ),
  };
  const groups: GroupSnapshotsServiceServer = {
    createGroupSnapshot: unary("CreateGroupSnapshot", report, async (req, ctx) => {
      const v = await uc.createGroupSnapshot(ctx, req);
      return { groupSnapshot: toGroupSnapshot(v.group, v.members) };
    }),
    getGroupSnapshot: unary("GetGroupSnapshot", report, async (req, ctx) => {
      const v = await uc.getGroupSnapshot(ctx, req.id);
      return { groupSnapshot: toGroupSnapshot(v.group, v.members) };
    }),
    listGroupSnapshots: unary("ListGroupSnapshots", report, async (req, ctx) => ({
      groupSnapshots: (await uc.listGroupSnapshots(ctx, req.pageSize)).map((v) => toGroupSnapshot(v.group, v.members)),
    })),
    deleteGroupSnapshot: unary("DeleteGroupSnapshot", report, async (req, ctx) => {
      const v = await uc.deleteGroupSnapshot(ctx, req.id);
      return { groupSnapshot: toGroupSnapshot(v.group, v.members) };
    }),
  };
  const server = new Server({ "grpc.max_receive_message_length": 4 * 1024 * 1024 });
  server.addService(VolumesServiceService, volumes);
  server.addService(SnapshotsServiceService, snapshots);
  server.addService(QuotasServiceService, quotas);
  server.addService(EventsServiceService, events);
  server.addService(GroupSnapshotsServiceService, groups);
  return server;
}
