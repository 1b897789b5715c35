import type { Db, QosSpecsRow, VolumeTypeRow } from "@cinderblock/db";
import type { RequestContext } from "../context.js";
import type { Page, PageTokens } from "../pages.js";
import type { Announcer } from "../ports.js";
import { createDefaultTypeUseCases } from "./defaults.js";
import { createQosSpecsUseCases } from "./qos-specs.js";
import { createTypeUseCases } from "./types.js";
import type { QosConsumer } from "./validation.js";

/** What the volume type use cases need. */
export interface VolumeTypeDependencies {
  db: Db;
  pageTokens: PageTokens;
  /** The configured default type's name (CINDERBLOCK_DEFAULT_VOLUME_TYPE). */
  defaultVolumeType: string;
  /**
   * Cinder's volume type and QoS specs notifications (`volume_type.create`, `qos_specs.update`, ...),
   * written into the outbox in the transaction of the change they report.
   */
  notifications: Announcer;
  /** Called after a transaction that wrote notifications commits (the api kicks its outbox relay). */
  onCommitted?(): void;
}

/** QoS specs with the types they are associated with. */
export interface QosSpecsView {
  qos: QosSpecsRow;
  volumeTypeIds: string[];
}

/** A CreateVolumeType request. */
export interface CreateVolumeTypeInput {
  name: string;
  description: string;
  isPublic?: boolean | undefined;
  extraSpecs: Record<string, string>;
}

/** An UpdateVolumeType request (unset fields stay). */
export interface UpdateVolumeTypeInput {
  name?: string | undefined;
  description?: string | undefined;
  isPublic?: boolean | undefined;
}

/** Volume types, their extra specs and access, the projects' defaults and QoS specs (Cinder's types APIs). */
export interface VolumeTypeUseCases {
  createVolumeType(ctx: RequestContext, input: CreateVolumeTypeInput): Promise<VolumeTypeRow>;
  /** A type the caller may use (NOT_FOUND for another project's private type). */
  getVolumeType(ctx: RequestContext, id: string): Promise<VolumeTypeRow>;
  listVolumeTypes(ctx: RequestContext, input: { pageSize: number; pageToken: string }): Promise<Page<VolumeTypeRow>>;
  updateVolumeType(ctx: RequestContext, id: string, input: UpdateVolumeTypeInput): Promise<VolumeTypeRow>;
  deleteVolumeType(ctx: RequestContext, id: string): Promise<void>;
  setVolumeTypeExtraSpecs(
    ctx: RequestContext,
    id: string,
    specs: Record<string, string>,
  ): Promise<Record<string, string>>;
  deleteVolumeTypeExtraSpec(ctx: RequestContext, id: string, key: string): Promise<Record<string, string>>;
  addVolumeTypeAccess(ctx: RequestContext, id: string, projectId: string): Promise<void>;
  removeVolumeTypeAccess(ctx: RequestContext, id: string, projectId: string): Promise<void>;
  listVolumeTypeAccess(ctx: RequestContext, id: string): Promise<string[]>;
  getDefaultVolumeType(
    ctx: RequestContext,
    projectId: string,
  ): Promise<{ type: VolumeTypeRow; projectOverride: boolean }>;
  setDefaultVolumeType(
    ctx: RequestContext,
    projectId: string,
    volumeType: string,
  ): Promise<{ projectId: string; volumeTypeId: string }>;
  unsetDefaultVolumeType(ctx: RequestContext, projectId: string): Promise<void>;
  listDefaultVolumeTypes(ctx: RequestContext): Promise<{ projectId: string; volumeTypeId: string }[]>;
  createQosSpecs(
    ctx: RequestContext,
    input: { name: string; consumer: QosConsumer; specs: Record<string, string> },
  ): Promise<QosSpecsView>;
  getQosSpecs(ctx: RequestContext, id: string): Promise<QosSpecsView>;
  listQosSpecs(ctx: RequestContext, input: { pageSize: number; pageToken: string }): Promise<Page<QosSpecsView>>;
  setQosSpecsKeys(ctx: RequestContext, id: string, specs: Record<string, string>): Promise<QosSpecsView>;
  deleteQosSpecsKeys(ctx: RequestContext, id: string, keys: string[]): Promise<QosSpecsView>;
  /** Refused while associated with a type, unless `force` (the associations go too). */
  deleteQosSpecs(ctx: RequestContext, id: string, force: boolean): Promise<void>;
  associateQosSpecs(ctx: RequestContext, id: string, volumeTypeId: string): Promise<void>;
  disassociateQosSpecs(ctx: RequestContext, id: string, volumeTypeId: string): Promise<void>;
}

/** Builds the volume type use cases (types.ts, defaults.ts, qos-specs.ts). */
export function createVolumeTypeUseCases(deps: VolumeTypeDependencies): VolumeTypeUseCases {
  return {
    ...createTypeUseCases(deps),
    ...createDefaultTypeUseCases(deps),
    ...createQosSpecsUseCases(deps),
  };
}
