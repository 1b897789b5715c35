import { open } from "node:fs/promises";
import { CreateVolumeTypeRequest, type VolumeType, type VolumeTypesServiceClient } from "@cinderblock/proto";
import type { Metadata } from "@grpc/grpc-js";
import { uniqueName } from "./database.js";
import { call } from "./grpc.js";

/** CreateVolumeType as `md` (an administrator), returning the type made. */
export function createVolumeType(
  types: VolumeTypesServiceClient,
  md: Metadata,
  request: Partial<CreateVolumeTypeRequest>,
): Promise<VolumeType> {
  return call<{ volumeType?: VolumeType }>((done) =>
    types.createVolumeType(CreateVolumeTypeRequest.fromPartial(request), md, done),
  ).then((r) => r.volumeType as VolumeType);
}

/** A new type whose volumes go to `backend` (`volume_backend_name`), by its unique name. */
export function createBackendType(types: VolumeTypesServiceClient, md: Metadata, backend: string): Promise<string> {
  return createVolumeType(types, md, {
    name: uniqueName(`${backend}-`),
    extraSpecs: { volume_backend_name: backend },
  }).then((t) => t.name);
}

/** Writes `bytes` at `offset` into a file (a file backend's volume) and syncs it to disk. */
export async function writeAt(path: string, offset: number, bytes: Buffer): Promise<void> {
  const handle = await open(path, "r+");
  try {
    await handle.write(bytes, 0, bytes.length, offset);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Up to `length` bytes of a file from `offset` (fewer past its end). */
export async function readAt(path: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
