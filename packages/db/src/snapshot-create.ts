import { sql } from "drizzle-orm";
import { type Db, rerunIfTransient } from "./client.js";
import type { NewOperation } from "./operations.js";
import type { OutboxMessage } from "./outbox.js";
import { firstRefusal, type QuotaDelta, type QuotaRefusal, reservationCtes } from "./quota.js";
import { snapshotFromDriver } from "./snapshots.js";
import type { NewSnapshotRow, SnapshotRow, VolumeRow } from "./types.js";

/** Everything one snapshot create writes, and the volume as the caller checked it. */
export interface SnapshotCreate {
  /**
   * The volume as the caller saw it when it decided the snapshot may be taken: the create happens
   * only if the row still has these values (and is not deleted), share-locked meanwhile.
   */
  volume: Pick<
    VolumeRow,
    "id" | "projectId" | "status" | "migrationStatus" | "host" | "sizeGb" | "volumeType" | "encryptionKeyId"
  >;
  snapshot: NewSnapshotRow;
  operation: NewOperation;
  /** The cast to the scheduler, for the outbox. */
  cast: OutboxMessage;
  quota: readonly QuotaDelta[];
}

/** What {@link createSnapshotAtOnce} did. */
export type SnapshotCreateOutcome =
  | { created: SnapshotRow }
  /** The volume changed (or went) since the caller checked it; nothing was written. */
  | { volumeChanged: true }
  /** A quota would be exceeded; nothing was written. */
  | { refused: QuotaRefusal }
  /**
   * The project has no usage row yet for some of these resources; nothing was written. NOTE: the
   * rows cannot be created and locked in one statement: the caller creates them (ensureQuotaRows,
   * at 0) and runs this again. Volume creates make a project's snapshot rows up front, so only a
   * project that predates that takes this turn.
   */
  | { missingQuotaRows: true };

interface LockedQuota {
  resource: string;
  in_use: number;
  hard_limit: number;
  delta: number;
}

/**
 * Records a snapshot in ONE statement, its own transaction: the volume row is share-locked and
 * must still be as the caller checked it (and its backend not frozen), the project's quota rows are locked in resource order,
 * checked and incremented only if every resource stays within its limit, and only then are the
 * snapshot, its operation and its cast inserted. Nothing is written unless all of it is.
 *
 * NOTE: this is the create path's hot spot. As a transaction of separate statements it took five
 * round trips plus BEGIN/COMMIT, and the quota rows, on which every create of a project queues,
 * stayed locked until the COMMIT's round trip came back. One statement is one round trip and one
 * WAL flush, and the locks are held for the statement alone. The same checks in the same order
 * as recordSnapshot's transaction (the volume first, then quota in resource order), so the two
 * paths cannot deadlock each other.
 */
export async function createSnapshotAtOnce(db: Db, create: SnapshotCreate): Promise<SnapshotCreateOutcome> {
  const { volume, snapshot: s, operation: op, cast } = create;
  const quota = [...create.quota].sort((a, b) => a.resource.localeCompare(b.resource));
  const run = () =>
    rerunIfTransient(() =>
      db.execute<Record<string, unknown>>(sql`
      with v as (
        select id from volumes
         where id = ${volume.id} and project_id = ${volume.projectId} and not deleted
           and status = ${volume.status} and migration_status is not distinct from ${volume.migrationStatus}::text
           and host is not distinct from ${volume.host}::text and size_gb = ${volume.sizeGb}::int
           and volume_type = ${volume.volumeType} and encryption_key_id = ${volume.encryptionKeyId}
           and not exists (select from services where services.host = volumes.host and services.frozen)
           for share of volumes),
      ${reservationCtes(s.projectId, quota, sql`exists (select from v)`)},
      snap as (
        insert into snapshots (id, project_id, user_id, volume_id, name, description, status, progress,
                               volume_size_gb, volume_type, volume_type_id, encryption_key_id, group_snapshot_id, metadata,
                               client_request_id, request_hash)
        select ${s.id}::uuid, ${s.projectId}, ${s.userId}, ${s.volumeId}::uuid, ${s.name ?? ""}, ${s.description ?? ""},
               ${s.status}, ${s.progress ?? "0%"}, ${s.volumeSizeGb}::int, ${s.volumeType ?? ""},
               ${s.volumeTypeId ?? null}::uuid,
               ${s.encryptionKeyId ?? ""}, ${s.groupSnapshotId ?? ""}, ${JSON.stringify(s.metadata ?? {})}::text::jsonb,
               ${s.clientRequestId ?? null}::text, ${s.requestHash ?? null}::text
          from verdict where gate_ok and quota_ok
        returning *),
      op as (
        insert into operations (id, kind, resource_id, project_id, detail, deadline_at)
        select ${op.id}::uuid, ${op.kind}, ${op.resourceId}::uuid, ${op.projectId},
               ${JSON.stringify(op.detail ?? {})}::text::jsonb, now() + make_interval(secs => ${op.timeoutSeconds}::int)
          from verdict where gate_ok and quota_ok),
      cast_ as (
        insert into outbox (subject, msg_id, payload, trace_context)
        select ${cast.subject}, ${cast.msgId}, ${sql.param(Buffer.from(cast.payload))}::bytea,
               ${cast.traceContext ? JSON.stringify(cast.traceContext) : null}::text::jsonb
          from verdict where gate_ok and quota_ok)
      select verdict.gate_ok as "$volume_ok", verdict.quota_ok as "$quota_ok", verdict.quota_rows as "$quota_rows",
             (select count(*)::int from reserved) as "$reserved",
             (select json_agg(locked) from locked) as "$locked", snap.*
        from verdict left join snap on true`),
    );

  const [result] = await run();
  if (!result?.$volume_ok) return { volumeChanged: true };
  if (Number(result.$quota_rows) < quota.length) return { missingQuotaRows: true };
  if (result.$quota_ok && Number(result.$reserved) === quota.length && result.id) {
    return { created: snapshotFromDriver(result) };
  }
  return { refused: firstRefusal(s.projectId, quota, (result.$locked ?? []) as LockedQuota[]) };
}
