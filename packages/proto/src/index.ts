/**
 * Generated protobuf types and gRPC service definitions for Cinderblock, plus the path of the
 * descriptor set that server reflection serves.
 */
import { fileURLToPath } from "node:url";

export * from "./gen/cinderblock/internal/v1/casts.js";
export * from "./gen/cinderblock/internal/v1/host.js";
export * from "./gen/cinderblock/v1/events.js";
export * from "./gen/cinderblock/v1/group_snapshot.js";
export * from "./gen/cinderblock/v1/notification.js";
export * from "./gen/cinderblock/v1/quota.js";
export * from "./gen/cinderblock/v1/service.js";
export * from "./gen/cinderblock/v1/snapshot.js";
export * from "./gen/cinderblock/v1/view.js";
export * from "./gen/cinderblock/v1/volume.js";
export * from "./gen/cinderblock/v1/volume_type.js";

/** Absolute path of the binary FileDescriptorSet built from proto/ (with its imports). */
export const descriptorSetPath: string = fileURLToPath(new URL("../gen/descriptor-set.binpb", import.meta.url));
