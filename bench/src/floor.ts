/**
 * The floor: the irreducible work of one snapshot, with no framework around it, as three plain
 * processes like Cinderblock's own (node bench/dist/floor.js api|scheduler|volume):
 *   - api: a grpc-js server answering CreateSnapshot (the same generated service definition) with
 *     ONE statement (volume share-locked and snapshottable, both quota rows checked against their
 *     limits and incremented, snapshot row inserted), then a JetStream publish to the scheduler;
 *   - scheduler: consumes, reads the snapshot and its backend (one SELECT), publishes to the volume
 *     host, acks;
 *   - volume: consumes, copies the volume file exactly as the file driver does (reflink until the
 *     file system refuses one, else the fs-native addon's copySparse with its fsync, else
 *     `cp --sparse=always` and an fsync; then link, fsync of the directory), one compare-and-swap UPDATE to
 *     `available`, a JetStream-published `snapshot.create.end` notification, acks.
 * What it leaves out is what Cinderblock adds for its guarantees and features: the outbox (a
 * crash between commit and publish loses the cast here), the operations row and reconciler, the
 * start notification, change signals for watchers, validation, idempotency keys, logging.
 * Settings come from the environment the bench gives it (FLOOR_*).
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { constants, copyFile, link, open, unlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { loadFsNative } from "@cinderblock/fs-native";
import {
  type CreateSnapshotResponse,
  Snapshot,
  SnapshotStatus,
  SnapshotsServiceService,
  VolumeCreateSnapshot,
} from "@cinderblock/proto";
import { type Metadata, Server, ServerCredentials, type ServerUnaryCall, status } from "@grpc/grpc-js";
import { AckPolicy, type JsMsg, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import postgres from "postgres";

const execFileAsync = promisify(execFile);
/** As in the file driver: the errors with which a reflink says "not on this file system". */
const REFLINK_UNSUPPORTED = new Set(["ENOTSUP", "EOPNOTSUPP", "EXDEV", "EINVAL", "ENOSYS", "ENOTTY"]);
const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

/** Subjects and stream names of a floor run under `prefix`. */
export function floorNames(prefix: string) {
  return {
    stream: `${prefix.toUpperCase()}_FLOOR`,
    scheduler: `${prefix}.floor.scheduler`,
    volume: `${prefix}.floor.volume`,
    notificationsStream: `${prefix.toUpperCase()}_FLOOR_NOTIFICATIONS`,
    createEnd: `${prefix}.notifications.info.snapshot.create.end`,
  };
}

async function api(): Promise<void> {
  const sql = postgres(env("FLOOR_DATABASE_URL"), { max: 10, onnotice: () => {} });
  const nc = await connect({ servers: env("FLOOR_NATS_URL") });
  const js = jetstream(nc);
  const names = floorNames(env("FLOOR_PREFIX"));
  const host = env("FLOOR_HOST");
  const server = new Server();
  server.addService(SnapshotsServiceService, {
    createSnapshot(
      call: ServerUnaryCall<{ volumeId: string; name: string }, CreateSnapshotResponse>,
      done: (err: { code: number; details: string } | null, res?: CreateSnapshotResponse) => void,
    ) {
      const md: Metadata = call.metadata;
      const projectId = String(md.get("x-project-id")[0] ?? "");
      const userId = String(md.get("x-user-id")[0] ?? "");
      const id = randomUUID();
      // NOTE: one round trip; the quota rows are locked only for this statement's own commit.
      sql`
        with v as (
          select id, size_gb from volumes
           where id = ${call.request.volumeId} and project_id = ${projectId} and not deleted
             and status in ('available', 'in-use') and host = ${host}
             for share),
        q as (
          -- NOTE: one UPDATE in index order (gigabytes, snapshots), so concurrent creates queue on the
          -- rows instead of deadlocking; a limit below zero is unlimited.
          update quota_usages u
             set in_use = u.in_use + case u.resource when 'snapshots' then 1 else (select size_gb from v) end,
                 updated_at = now()
           where u.project_id = ${projectId} and u.resource in ('gigabytes', 'snapshots') and exists (select 1 from v)
             and not coalesce((
               select l.hard_limit >= 0
                  and u.in_use + case u.resource when 'snapshots' then 1 else (select size_gb from v) end > l.hard_limit
                 from quota_limits l where l.project_id = u.project_id and l.resource = u.resource), false)
          returning u.resource)
        insert into snapshots (id, project_id, user_id, volume_id, name, status, progress, volume_size_gb)
        select ${id}, ${projectId}, ${userId}, v.id, ${call.request.name}, 'creating', '0%', v.size_gb
          from v where (select count(*) from q) = 2
        returning id, volume_id, name, status, volume_size_gb, created_at`
        .then((rows) => {
          const row = rows[0];
          if (!row) {
            done({ code: status.FAILED_PRECONDITION, details: "volume not snapshottable or quota exceeded" });
            return;
          }
          void js
            .publish(
              names.scheduler,
              VolumeCreateSnapshot.encode({
                operationId: id,
                snapshotId: id,
                volumeId: row.volume_id,
                context: undefined,
              }).finish(),
              { msgID: id },
            )
            .catch((err: unknown) => console.error(err));
          done(null, {
            snapshot: Snapshot.fromPartial({
              id: row.id,
              volumeId: row.volume_id,
              name: row.name,
              status: SnapshotStatus.SNAPSHOT_STATUS_CREATING,
              volumeSizeGb: row.volume_size_gb,
              progress: "0%",
              createdAt: row.created_at,
            }),
          } as CreateSnapshotResponse);
        })
        .catch((err: unknown) => done({ code: status.INTERNAL, details: String(err) }));
    },
  } as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  console.log(JSON.stringify({ msg: "floor listening", port }));
}

/** Consumes `subject` with up to `concurrency` messages in flight, acking after `handle`. */
async function consume(durable: string, subject: string, handle: (msg: JsMsg) => Promise<void>): Promise<void> {
  const nc = await connect({ servers: env("FLOOR_NATS_URL") });
  const jsm = await jetstreamManager(nc);
  const names = floorNames(env("FLOOR_PREFIX"));
  await jsm.consumers.add(names.stream, {
    durable_name: durable,
    filter_subject: subject,
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 256,
  });
  const consumer = await jetstream(nc).consumers.get(names.stream, durable);
  const messages = await consumer.consume({ max_messages: 128 });
  console.log(JSON.stringify({ msg: "floor consuming", subject }));
  const inFlight = new Set<Promise<void>>();
  for await (const msg of messages) {
    const task = handle(msg).then(
      () => msg.ack(),
      (err: unknown) => {
        console.error(err);
        msg.nak(1000);
      },
    );
    inFlight.add(task);
    void task.finally(() => inFlight.delete(task));
    while (inFlight.size >= 64) await Promise.race(inFlight);
  }
}

async function scheduler(): Promise<void> {
  const sql = postgres(env("FLOOR_DATABASE_URL"), { max: 10, onnotice: () => {} });
  const nc = await connect({ servers: env("FLOOR_NATS_URL") });
  const js = jetstream(nc);
  const names = floorNames(env("FLOOR_PREFIX"));
  await consume("floor-scheduler", names.scheduler, async (msg) => {
    const cast = VolumeCreateSnapshot.decode(msg.data);
    const [row] = await sql`
      select s.status, b.heartbeat_at > now() - interval '60 seconds' and not b.disabled and not b.frozen as usable
        from snapshots s join volumes v on v.id = s.volume_id join services b on b.host = v.host
       where s.id = ${cast.snapshotId}`;
    if (row?.status !== "creating" || !row.usable) return;
    await js.publish(names.volume, msg.data, { msgID: `${cast.snapshotId}:volume` });
  });
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function volume(): Promise<void> {
  const sql = postgres(env("FLOOR_DATABASE_URL"), { max: 10, onnotice: () => {} });
  const nc = await connect({ servers: env("FLOOR_NATS_URL") });
  const js = jetstream(nc);
  const names = floorNames(env("FLOOR_PREFIX"));
  const dir = env("FLOOR_DIR");
  const encoder = new TextEncoder();
  const native = loadFsNative().binding;
  let reflink = true;
  /** cloneOrCopy of the file driver, with its fsync. */
  async function copy(source: string, tmp: string): Promise<void> {
    if (reflink) {
      try {
        await copyFile(source, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
      } catch (err) {
        if (!REFLINK_UNSUPPORTED.has((err as { code?: string }).code ?? "")) throw err;
        reflink = false;
      }
      if (reflink) return fsyncPath(tmp);
    }
    if (native) return native.copySparse(source, tmp, { fsync: true });
    await execFileAsync("cp", ["--sparse=always", "--no-dereference", "--", source, tmp]);
    await fsyncPath(tmp);
  }
  await consume("floor-volume", names.volume, async (msg) => {
    const cast = VolumeCreateSnapshot.decode(msg.data);
    const target = join(dir, `snapshot-${cast.snapshotId}.img`);
    // Per attempt, as the driver's: the copy never replaces a file, and a redelivery may find one.
    const tmp = join(dir, `.tmp-${cast.snapshotId}-${randomUUID()}`);
    const source = join(dir, `volume-${cast.volumeId}.img`);
    await copy(source, tmp);
    await link(tmp, target).catch((err: { code?: string }) => {
      if (err.code !== "EEXIST") throw err;
    });
    await unlink(tmp);
    await fsyncPath(dir);
    const [row] = await sql`
      update snapshots set status = 'available', progress = '100%', provider_location = ${target}, updated_at = now()
       where id = ${cast.snapshotId} and status = 'creating'
      returning id, project_id, user_id, volume_id, volume_size_gb, name, created_at`;
    if (!row) return;
    const notification = {
      messageId: randomUUID(),
      eventType: "snapshot.create.end",
      publisherId: "snapshot.floor",
      priority: "INFO",
      timestamp: new Date().toISOString(),
      payload: {
        tenant_id: row.project_id,
        user_id: row.user_id,
        volume_id: row.volume_id,
        volume_size: row.volume_size_gb,
        snapshot_id: row.id,
        display_name: row.name,
        created_at: row.created_at,
        status: "available",
      },
    };
    await js.publish(names.createEnd, encoder.encode(JSON.stringify(notification)), {
      msgID: notification.messageId,
    });
  });
}

const roles: Record<string, () => Promise<void>> = { api, scheduler, volume };
const role = roles[process.argv[2] ?? ""];
if (role && process.argv[1]?.endsWith("floor.js")) {
  role().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
