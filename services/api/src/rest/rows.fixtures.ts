import type { AttachmentRow, SnapshotRow, VolumeRow, VolumeTypeRow } from "@cinderblock/db";
import type { PoolView, QosSpecsView, ServiceView } from "@cinderblock/domain";

// Rows the REST tests show (not built into dist: see tsconfig.json).

export const created = new Date("2026-12-06T10:00:00.123Z");

export const VOLUME: VolumeRow = {
  id: "0c6d4b1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e",
  projectId: "7a6f3e58a0d24b6b9a5e0e0c1f4c2a11",
  userId: "alice",
  name: "data",
  description: "",
  status: "in-use",
  statusReason: "",
  statusDetail: "",
  sizeGb: 2,
  volumeType: "__DEFAULT__",
  volumeTypeId: "5f1c3d2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
  availabilityZone: "nova",
  bootable: false,
  imageMetadata: {},
  encryptionKeyId: "",
  host: "vol1@file",
  pool: "data",
  migrationStatus: null,
  snapshotId: null,
  sourceVolid: null,
  multiattach: false,
  schedulerHints: null,
  metadata: { tier: "gold" },
  deleted: false,
  deletedAt: null,
  clientRequestId: null,
  requestHash: null,
  createdAt: created,
  updatedAt: created,
};

export const ATTACHMENT: AttachmentRow = {
  id: "1d7e5c2f-3a4b-4c5d-9e0f-1a2b3c4d5e6f",
  volumeId: VOLUME.id,
  projectId: VOLUME.projectId,
  instanceId: "2e8f6d3a-4b5c-4d6e-8f1a-2b3c4d5e6f7a",
  mountpoint: "/dev/vdb",
  attachStatus: "attached",
  connectionInfo: {},
  connector: { host: "compute-1" },
  attachedAt: created,
  createdAt: created,
};

export const SNAPSHOT: SnapshotRow = {
  id: "3f9a7e4b-5c6d-4e7f-9a2b-3c4d5e6f7a8b",
  projectId: VOLUME.projectId,
  userId: "alice",
  volumeId: VOLUME.id,
  name: "snap",
  description: "nightly",
  status: "available",
  statusReason: "",
  statusDetail: "",
  progress: "100%",
  volumeSizeGb: 2,
  volumeType: "__DEFAULT__",
  volumeTypeId: null,
  encryptionKeyId: "",
  providerLocation: "",
  groupSnapshotId: "",
  imageMetadata: {},
  metadata: {},
  deleted: false,
  deletedAt: null,
  clientRequestId: null,
  requestHash: null,
  createdAt: created,
  updatedAt: created,
};

export const TYPE: VolumeTypeRow = {
  id: "5f1c3d2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
  name: "gold",
  description: "",
  isPublic: true,
  extraSpecs: { volume_backend_name: "file", multiattach: "<is> False" },
  qosSpecsId: null,
  deleted: false,
  deletedAt: null,
  createdAt: created,
  updatedAt: created,
};

export const SERVICE: ServiceView = {
  binary: "cinder-volume",
  host: "vol1@file",
  zone: "nova",
  status: "disabled",
  state: "up",
  disabledReason: "maintenance",
  frozen: false,
  updatedAt: created,
  heartbeatAt: created,
  backendState: "up",
};

export const POOL: PoolView = {
  name: "vol1@file#data",
  capabilities: {
    volume_backend_name: "file",
    pool_name: "data",
    total_capacity_gb: 100,
    free_capacity_gb: 90.5,
    reserved_percentage: 0,
    storage_protocol: ["file", "local"],
    QoS_support: false,
    thin_provisioning_support: true,
  },
};

export const QOS: QosSpecsView = {
  qos: {
    id: "7b2e4f6a-8c0d-4e1f-a3b5-c7d9e1f3a5b7",
    name: "fast",
    consumer: "front-end",
    specs: { total_iops_sec: "1000" },
    deleted: false,
    deletedAt: null,
    createdAt: created,
    updatedAt: created,
  },
  volumeTypeIds: [TYPE.id],
};
