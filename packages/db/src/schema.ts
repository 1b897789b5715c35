import { sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
  varchar,
} from "drizzle-orm/pg-core";

const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => "bytea",
});

// NOTE: millisecond precision, the precision of a JS Date: a page token carrying a row's
// created_at must name exactly that row's position, or rows within the same millisecond get skipped.
const createdAt = () => timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow();
const updatedAt = () => timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow();
const stringMap = (name: string) => jsonb(name).$type<Record<string, string>>().notNull().default(sql`'{}'::jsonb`);

/** QoS specs (Cinder's quality_of_service_specs): limits associated with volume types. */
export const qosSpecs = pgTable(
  "qos_specs",
  {
    id: uuid("id").primaryKey(),
    name: varchar("name", { length: 255 }).notNull(),
    /** "front-end", "back-end" or "both" (who applies the limits). */
    consumer: text("consumer").notNull().default("back-end"),
    specs: stringMap("specs"),
    deleted: boolean("deleted").notNull().default(false),
    deletedAt: timestamp("deleted_at", { withTimezone: true, precision: 6 }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("qos_specs_name_idx").on(t.name).where(sql`not deleted`)],
);

/** Volume types (Cinder's volume_types): extra specs for the scheduler, at most one QoS specs. */
export const volumeTypes = pgTable(
  "volume_types",
  {
    id: uuid("id").primaryKey(),
    name: varchar("name", { length: 255 }).notNull(),
    description: varchar("description", { length: 255 }).notNull().default(""),
    isPublic: boolean("is_public").notNull().default(true),
    extraSpecs: stringMap("extra_specs"),
    qosSpecsId: uuid("qos_specs_id").references(() => qosSpecs.id),
    deleted: boolean("deleted").notNull().default(false),
    deletedAt: timestamp("deleted_at", { withTimezone: true, precision: 6 }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("volume_types_name_idx").on(t.name).where(sql`not deleted`),
    index("volume_types_qos_idx").on(t.qosSpecsId).where(sql`qos_specs_id is not null`),
  ],
);

/** The projects that may use a private volume type (Cinder's volume_type_projects). */
export const volumeTypeProjects = pgTable(
  "volume_type_projects",
  {
    volumeTypeId: uuid("volume_type_id")
      .notNull()
      .references(() => volumeTypes.id),
    projectId: text("project_id").notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.volumeTypeId, t.projectId] }),
    index("volume_type_projects_project_idx").on(t.projectId),
  ],
);

/** A project's own default volume type (Cinder's default_volume_types). */
export const defaultVolumeTypes = pgTable("default_volume_types", {
  projectId: text("project_id").primaryKey(),
  volumeTypeId: uuid("volume_type_id")
    .notNull()
    .references(() => volumeTypes.id),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/** Volumes, one row per volume; every query is scoped by project_id. */
export const volumes = pgTable(
  "volumes",
  {
    id: uuid("id").primaryKey(),
    projectId: text("project_id").notNull(),
    userId: text("user_id").notNull(),
    name: varchar("name", { length: 255 }).notNull().default(""),
    description: varchar("description", { length: 255 }).notNull().default(""),
    status: text("status").notNull(),
    statusReason: text("status_reason").notNull().default(""),
    /** The backend's own words for a failure (stderr, device paths): for admins and the log, never tenants. */
    statusDetail: text("status_detail").notNull().default(""),
    sizeGb: integer("size_gb").notNull(),
    /** The type's name as it was at create (per-type quotas key on it; a rename updates it). */
    volumeType: text("volume_type").notNull().default(""),
    volumeTypeId: uuid("volume_type_id").references(() => volumeTypes.id),
    availabilityZone: text("availability_zone").notNull(),
    bootable: boolean("bootable").notNull().default(false),
    imageMetadata: stringMap("image_metadata"),
    encryptionKeyId: text("encryption_key_id").notNull().default(""),
    /** "<host>@<backend>" once scheduled. */
    host: text("host"),
    /** The backend's pool that holds it (Cinder's `#pool` of `host@backend#pool`), set with `host`. */
    pool: text("pool"),
    migrationStatus: text("migration_status"),
    /** The snapshot the volume was created from, if any. */
    snapshotId: uuid("snapshot_id"),
    /** The volume this one was cloned from, if any (Cinder's source_volid). */
    sourceVolid: uuid("source_volid"),
    multiattach: boolean("multiattach").notNull().default(false),
    /** Cinder's scheduler hints given at create (volume ids of the project); null: none. */
    schedulerHints: jsonb("scheduler_hints").$type<{ sameHost: string[]; differentHost: string[] }>(),
    metadata: stringMap("metadata"),
    deleted: boolean("deleted").notNull().default(false),
    deletedAt: timestamp("deleted_at", { withTimezone: true, precision: 6 }),
    /** The caller's idempotency key, and a hash of the request body it came with. */
    clientRequestId: text("client_request_id"),
    requestHash: text("request_hash"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("volumes_project_created_idx").on(t.projectId, t.createdAt, t.id),
    index("volumes_project_name_idx").on(t.projectId, t.name, t.id),
    index("volumes_project_status_created_idx").on(t.projectId, t.status, t.createdAt, t.id),
    index("volumes_created_idx").on(t.createdAt, t.id),
    index("volumes_type_idx").on(t.volumeTypeId).where(sql`not deleted`),
    // Clones being made of a volume (its delete waits for them).
    index("volumes_source_volid_idx").on(t.sourceVolid).where(sql`source_volid is not null and not deleted`),
    uniqueIndex("volumes_project_client_request_idx")
      .on(t.projectId, t.clientRequestId)
      .where(sql`client_request_id is not null`),
  ],
);

/** Snapshots of volumes; every query is scoped by project_id. */
export const snapshots = pgTable(
  "snapshots",
  {
    id: uuid("id").primaryKey(),
    projectId: text("project_id").notNull(),
    userId: text("user_id").notNull(),
    volumeId: uuid("volume_id")
      .notNull()
      .references(() => volumes.id),
    name: varchar("name", { length: 255 }).notNull().default(""),
    description: varchar("description", { length: 255 }).notNull().default(""),
    status: text("status").notNull(),
    statusReason: text("status_reason").notNull().default(""),
    /** The backend's own words for a failure (stderr, device paths): for admins and the log, never tenants. */
    statusDetail: text("status_detail").notNull().default(""),
    progress: text("progress").notNull().default("0%"),
    volumeSizeGb: integer("volume_size_gb").notNull(),
    volumeType: text("volume_type").notNull().default(""),
    // NOTE: no foreign key to volume_types: a snapshot's type is its volume's (whose key guards
    // it), and types are only soft-deleted, never while a volume has them. The key made every
    // snapshot insert lock its type's one row (FOR KEY SHARE), which all concurrent creates of that
    // type queued on, as a multixact with WAL of its own.
    volumeTypeId: uuid("volume_type_id"),
    encryptionKeyId: text("encryption_key_id").notNull().default(""),
    providerLocation: text("provider_location").notNull().default(""),
    groupSnapshotId: text("group_snapshot_id").notNull().default(""),
    imageMetadata: stringMap("image_metadata"),
    metadata: stringMap("metadata"),
    deleted: boolean("deleted").notNull().default(false),
    deletedAt: timestamp("deleted_at", { withTimezone: true, precision: 6 }),
    /** The caller's idempotency key, and a hash of the request body it came with. */
    clientRequestId: text("client_request_id"),
    requestHash: text("request_hash"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("snapshots_project_created_idx").on(t.projectId, t.createdAt, t.id),
    index("snapshots_project_name_idx").on(t.projectId, t.name, t.id),
    index("snapshots_project_status_created_idx").on(t.projectId, t.status, t.createdAt, t.id),
    index("snapshots_created_idx").on(t.createdAt, t.id),
    index("snapshots_group_idx").on(t.groupSnapshotId).where(sql`group_snapshot_id <> ''`),
    index("snapshots_volume_idx").on(t.volumeId),
    index("snapshots_type_idx").on(t.volumeTypeId).where(sql`not deleted`),
    uniqueIndex("snapshots_project_client_request_idx")
      .on(t.projectId, t.clientRequestId)
      .where(sql`client_request_id is not null`),
  ],
);

/** Volume hosts' backends as they report themselves (Cinder's `services` table). */
export const services = pgTable("services", {
  /** "<host>@<backend>". */
  host: text("host").primaryKey(),
  hostName: text("host_name").notNull(),
  backend: text("backend").notNull(),
  availabilityZone: text("availability_zone").notNull(),
  disabled: boolean("disabled").notNull().default(false),
  disabledReason: text("disabled_reason").notNull().default(""),
  frozen: boolean("frozen").notNull().default(false),
  heartbeatAt: timestamp("heartbeat_at", { withTimezone: true, precision: 6 }).notNull(),
  capabilities: jsonb("capabilities").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  /** Where the host's internal gRPC server (VolumeHostService) answers, "host:port". */
  grpcAddress: text("grpc_address").notNull().default(""),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/** Group snapshots: snapshots of several volumes of one project, taken all or none. */
export const groupSnapshots = pgTable(
  "group_snapshots",
  {
    id: uuid("id").primaryKey(),
    projectId: text("project_id").notNull(),
    userId: text("user_id").notNull(),
    name: varchar("name", { length: 255 }).notNull().default(""),
    description: varchar("description", { length: 255 }).notNull().default(""),
    /** "creating", "available", "error", "deleting", "error_deleting", "deleted". */
    status: text("status").notNull(),
    statusReason: text("status_reason").notNull().default(""),
    deleted: boolean("deleted").notNull().default(false),
    /** The caller's idempotency key, with the hash of its request body. */
    clientRequestId: text("client_request_id"),
    requestHash: text("request_hash"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("group_snapshots_project_created_idx").on(t.projectId, t.createdAt, t.id),
    uniqueIndex("group_snapshots_project_client_request_idx")
      .on(t.projectId, t.clientRequestId)
      .where(sql`client_request_id is not null`),
  ],
);

/** Volumes attached to instances (Cinder's volume_attachment). */
export const volumeAttachments = pgTable(
  "volume_attachments",
  {
    id: uuid("id").primaryKey(),
    volumeId: uuid("volume_id")
      .notNull()
      .references(() => volumes.id),
    projectId: text("project_id").notNull(),
    instanceId: text("instance_id").notNull(),
    mountpoint: text("mountpoint").notNull().default(""),
    /** "attaching", "attached". */
    attachStatus: text("attach_status").notNull(),
    connectionInfo: jsonb("connection_info").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    /** The host connector the attach was made with; detach hands it back to the driver. */
    connector: stringMap("connector"),
    attachedAt: timestamp("attached_at", { withTimezone: true, precision: 6 }),
    createdAt: createdAt(),
  },
  (t) => [
    index("volume_attachments_volume_idx").on(t.volumeId),
    // Instance first: the ownership check asks which projects hold an instance, whoever asks.
    index("volume_attachments_instance_project_idx").on(t.instanceId, t.projectId),
  ],
);

/** Per-project usage, locked and changed in the transaction that creates or removes a resource. */
export const quotaUsages = pgTable(
  "quota_usages",
  {
    projectId: text("project_id").notNull(),
    resource: text("resource").notNull(),
    inUse: integer("in_use").notNull().default(0),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.resource] })],
);

/** Per-project limits that override the configured defaults. */
export const quotaLimits = pgTable(
  "quota_limits",
  {
    projectId: text("project_id").notNull(),
    resource: text("resource").notNull(),
    hardLimit: integer("hard_limit").notNull(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.resource] })],
);

/**
 * In-flight asynchronous operations (Cinder's `workers` table): what the reconciler re-dispatches
 * or fails when a create outlives its deadline.
 */
export const operations = pgTable(
  "operations",
  {
    id: uuid("id").primaryKey(),
    kind: text("kind").notNull(),
    resourceId: uuid("resource_id").notNull(),
    projectId: text("project_id").notNull(),
    state: text("state").notNull().default("pending"),
    attempts: integer("attempts").notNull().default(1),
    deadlineAt: timestamp("deadline_at", { withTimezone: true, precision: 6 }).notNull(),
    lastError: text("last_error").notNull().default(""),
    /** Parameters a re-dispatch needs that the resource row does not hold (e.g. an extend's new size). */
    detail: jsonb("detail").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("operations_pending_deadline_idx").on(t.deadlineAt).where(sql`state = 'pending'`)],
);

/** Casts written in the same transaction as the rows they concern; a relay publishes them. */
export const outbox = pgTable("outbox", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  subject: text("subject").notNull(),
  msgId: text("msg_id").notNull(),
  payload: bytea("payload").notNull(),
  /** W3C trace context (`traceparent`, `tracestate`) of the request that wrote it, for the relay to continue. */
  traceContext: jsonb("trace_context").$type<Record<string, string>>(),
  createdAt: createdAt(),
});
