import type { ApiUseCases } from "@cinderblock/domain";
import {
  type SnapshotsServiceServer,
  SnapshotsServiceService,
  type VolumesServiceServer,
  VolumesServiceService,
} from "@cinderblock/proto";
import { type ErrorReporter, Server, serverStreaming, unary } from "@cinderblock/rpc";
import { toSnapshot, toVolume } from "./mapping.js";

/** Fully qualified names of the public services (for health and the README). */
export const PUBLIC_SERVICES = ["cinderblock.v1.VolumesService", "cinderblock.v1.SnapshotsService"];

/** Options for {@link createApiServer}. */
export interface ApiServerOptions {
  useCases: ApiUseCases;
  report: ErrorReporter;
}

/**
 * The public gRPC server: handlers only map messages to use-case calls and back; validation,
 * state and quota checks live in the domain package.
 */
export function createApiServer(options: ApiServerOptions): Server {
  const { useCases: uc, report } = options;
  const volumes: VolumesServiceServer = {
    createVolume: unary("CreateVolume", report, async (req, ctx) => ({
      volume: toVolume(await uc.createVolume(ctx, req)),
    })),
    getVolume: unary("GetVolume", report, async (req, ctx) => ({ volume: toVolume(await uc.getVolume(ctx, req.id)) })),
    listVolumes: unary("ListVolumes", report, async (req, ctx) => {
      const page = await uc.listVolumes(ctx, req.pageSize, req.pageToken);
      return { volumes: page.items.map(toVolume), nextPageToken: page.nextPageToken };
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
      const page = await uc.listSnapshots(ctx, req.pageSize, req.pageToken, req.volumeId);
      return { snapshots: page.items.map(toSnapshot), nextPageToken: page.nextPageToken };
    }),
    watchSnapshot: serverStreaming("WatchSnapshot", report, async function* (req, ctx, signal) {
      for await (const row of uc.watchSnapshot(ctx, req.id, signal)) yield { snapshot: toSnapshot(row) };
    }),
  };
  const server = new Server({ "grpc.max_receive_message_length": 4 * 1024 * 1024 });
  server.addService(VolumesServiceService, volumes);
  server.addService(SnapshotsServiceService, snapshots);
  return server;
}
