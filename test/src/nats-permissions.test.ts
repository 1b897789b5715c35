import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import {
  CreateSnapshotRequest,
  type CreateSnapshotResponse,
  type DeleteSnapshotResponse,
  EventsServiceClient,
  type Notification,
  type Snapshot,
  SnapshotStatus,
  VolumeStatus,
} from "@cinderblock/proto";
import {
  call,
  createSettledVolume,
  findNatsServer,
  identity,
  mustRunInCI,
  type PrivateNats,
  REPO_ROOT,
  type Stack,
  settle,
  startPrivateNats,
  startStack,
  uniqueName,
  untilEnd,
} from "@cinderblock/testing";
import { credentials } from "@grpc/grpc-js";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection, PermissionViolationError } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// deploy/nats/nats-server.conf on a private nats-server, every service on its own user: what the
// server refuses each identity, and the snapshot flow working with only the rights it grants.

const CONFIG = join(REPO_ROOT, "deploy", "nats", "nats-server.conf");
const skip = mustRunInCI(
  "NATS permissions",
  findNatsServer() ? undefined : "no nats-server binary (apt-get install nats-server)",
);

/** A password as the config file's header asks for: letters and digits, starting with a letter. */
const password = () => `p${randomBytes(16).toString("hex")}`;
const passwords = {
  api: password(),
  scheduler: password(),
  vol1: password(),
  vol2: password(),
  vol3: password(),
  compute: password(),
  operator: password(),
};

let nats: PrivateNats;
const connections: NatsConnection[] = [];

/** The inbox each service reads its replies on (connectBus' `role`); the others keep nats.js' default. */
const INBOX: Partial<Record<keyof typeof passwords, string>> = {
  api: "_INBOX_cinderblock.api",
  scheduler: "_INBOX_cinderblock.scheduler",
  vol1: "_INBOX_cinderblock.volume-vol1",
  vol2: "_INBOX_cinderblock.volume-vol2",
  vol3: "_INBOX_cinderblock.volume-vol3",
};

async function login(user: keyof typeof passwords): Promise<NatsConnection> {
  const inbox = INBOX[user];
  const nc = await connect({
    servers: nats.url,
    user,
    pass: passwords[user],
    ...(inbox ? { inboxPrefix: inbox } : {}),
  });
  connections.push(nc);
  return nc;
}

/** The error `work` failed with (fails the test if it succeeded). */
async function failure(work: Promise<unknown>): Promise<Error> {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (!error) throw new Error("expected a refusal");
  return error;
}

/** The server's permission refusal `work` failed with, as "<operation> <subject>" (nats.js may wrap it). */
async function refusal(work: Promise<unknown>): Promise<string> {
  const error = await failure(work);
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof PermissionViolationError) return `${e.operation} ${e.subject}`;
  }
  throw error;
}

/** Publishes on core NATS and returns the refusal the server sent back, as "<operation> <subject>". */
async function publishRefusal(nc: NatsConnection, subject: string): Promise<string> {
  const statuses = nc.status()[Symbol.asyncIterator]();
  nc.publish(subject, "{}");
  await nc.flush();
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no refusal")), 2000));
  for (;;) {
    const { value } = await Promise.race([statuses.next(), timeout]);
    if (value?.type === "error" && value.error instanceof PermissionViolationError) {
      return `${value.error.operation} ${value.error.subject}`;
    }
  }
}

beforeAll(async () => {
  if (skip) return;
  nats = await startPrivateNats(findNatsServer() as string, {
    configFile: CONFIG,
    env: {
      CINDERBLOCK_NATS_API_PASSWORD: passwords.api,
      CINDERBLOCK_NATS_SCHEDULER_PASSWORD: passwords.scheduler,
      CINDERBLOCK_NATS_VOLUME_PASSWORD: passwords.vol1,
      CINDERBLOCK_NATS_VOLUME2_PASSWORD: passwords.vol2,
      CINDERBLOCK_NATS_VOLUME3_PASSWORD: passwords.vol3,
      CINDERBLOCK_NATS_COMPUTE_PASSWORD: passwords.compute,
      CINDERBLOCK_NATS_OPERATOR_PASSWORD: passwords.operator,
    },
  });
});

afterAll(async () => {
  for (const nc of connections) if (!nc.isClosed()) await nc.close();
  await nats?.stop();
});

describe.skipIf(skip)("deploy/nats/nats-server.conf", () => {
  it("refuses a wrong password, an unknown user and no credentials", async () => {
    for (const options of [{ user: "api", pass: passwords.scheduler }, { user: "root", pass: "x" }, {}]) {
      const error = await failure(connect({ servers: nats.url, ...options, reconnect: false }));
      expect(error.message).toMatch(/Authorization Violation/);
    }
  });

  it("refuses a compute agent publishing a notification, and a volume host casting", async () => {
    const operator = await login("operator");
    const seen: string[] = [];
    const sub = operator.subscribe("cinderblock.>");
    void (async () => {
      for await (const m of sub) seen.push(m.subject);
    })();
    await operator.flush();

    const compute = await login("compute");
    const forged = "cinderblock.notifications.info.volume.delete.end";
    expect(await publishRefusal(compute, forged)).toBe(`publish ${forged}`);
    // Through JetStream it cannot even get an answer: it may not read an inbox of its choosing.
    expect(await refusal(jetstream(compute).publish(forged, "{}"))).toMatch(/^subscription _INBOX\./);

    const vol1 = await login("vol1");
    for (const subject of [
      "cinderblock.v1.volume.vol2.delete_volume",
      "cinderblock.v1.volume.vol1.create_volume",
      "cinderblock.v1.scheduler.create_snapshot",
    ]) {
      expect(await publishRefusal(vol1, subject)).toBe(`publish ${subject}`);
    }
    // What an identity may publish goes through (the subscriber does see it).
    const scheduler = await login("scheduler");
    scheduler.publish("cinderblock.changes.volume.x");
    await scheduler.flush();
    await settle(
      async () => seen.length,
      (n) => n >= 1,
      { timeoutMs: 2000 },
    );
    sub.unsubscribe();
    // Only the allowed signal reached anyone.
    expect(seen).toEqual(["cinderblock.changes.volume.x"]);
  });

  it("keeps notifications and stream management from identities that have no business with them", async () => {
    const operator = await jetstreamManager(await login("operator"));
    await operator.streams.add({ name: "CINDERBLOCK_NOTIFICATIONS", subjects: ["cinderblock.notifications.>"] });

    // A compute agent cannot listen to the notifications, nor read them back from the stream.
    const compute = await login("compute");
    const sub = compute.subscribe("cinderblock.notifications.>");
    const listening = refusal(
      (async () => {
        for await (const _ of sub) return;
      })(),
    );
    expect(await listening).toBe("subscription cinderblock.notifications.>");
    // Nor can a volume host read them back from the stream (a consumer, or one message).
    const vol1Js = await jetstreamManager(await login("vol1"));
    expect(
      await refusal(vol1Js.consumers.add("CINDERBLOCK_NOTIFICATIONS", { name: "peek", filter_subject: ">" })),
    ).toBe("publish $JS.API.CONSUMER.CREATE.CINDERBLOCK_NOTIFICATIONS.peek");
    expect(await refusal(vol1Js.streams.getMessage("CINDERBLOCK_NOTIFICATIONS", { seq: 1 }))).toBe(
      "publish $JS.API.STREAM.MSG.GET.CINDERBLOCK_NOTIFICATIONS",
    );

    // Nobody but the operator deletes or purges a stream, not even the api that creates them.
    for (const user of ["api", "scheduler", "vol1"] as const) {
      const jsm = await jetstreamManager(await login(user));
      expect(await refusal(jsm.streams.delete("CINDERBLOCK_NOTIFICATIONS"))).toBe(
        "publish $JS.API.STREAM.DELETE.CINDERBLOCK_NOTIFICATIONS",
      );
      expect(await refusal(jsm.streams.purge("CINDERBLOCK_NOTIFICATIONS"))).toBe(
        "publish $JS.API.STREAM.PURGE.CINDERBLOCK_NOTIFICATIONS",
      );
    }
    expect((await operator.streams.info("CINDERBLOCK_NOTIFICATIONS")).config.name).toBe("CINDERBLOCK_NOTIFICATIONS");

    // A volume host may create its own consumer only, on its own casts.
    await operator.streams.add({
      name: "CINDERBLOCK_CASTS",
      subjects: ["cinderblock.v1.scheduler.>", "cinderblock.v1.volume.>"],
    });
    const vol1 = await jetstreamManager(await login("vol1"));
    for (const [name, filter] of [
      ["volume-vol2", "cinderblock.v1.volume.vol2.>"],
      ["volume-vol1", "cinderblock.v1.volume.vol2.>"],
      ["volume-vol1", "cinderblock.v1.volume.>"],
    ] as const) {
      expect(
        await refusal(vol1.consumers.add("CINDERBLOCK_CASTS", { durable_name: name, filter_subject: filter })),
      ).toBe(`publish $JS.API.CONSUMER.CREATE.CINDERBLOCK_CASTS.${name}.${filter}`);
    }
    // Its own consumer it may create, and the server holds the configuration to the filter in the
    // request subject (the one the permission names).
    const own = { durable_name: "volume-vol1", filter_subject: "cinderblock.v1.volume.vol1.>" };
    expect((await vol1.consumers.add("CINDERBLOCK_CASTS", own)).config.filter_subject).toBe(own.filter_subject);
    const sneaky = await (await login("vol1")).request(
      `$JS.API.CONSUMER.CREATE.CINDERBLOCK_CASTS.volume-vol1.${own.filter_subject}`,
      JSON.stringify({
        stream_name: "CINDERBLOCK_CASTS",
        config: { ...own, filter_subject: "cinderblock.v1.volume.>", ack_policy: "explicit" },
      }),
    );
    expect(sneaky.json<{ error?: { description: string } }>().error?.description).toMatch(/filter/i);
    // The compose file's second host likewise: its own consumer, not the first host's.
    const vol2 = await jetstreamManager(await login("vol2"));
    const first = { durable_name: "volume-vol1", filter_subject: "cinderblock.v1.volume.vol1.>" };
    expect(await refusal(vol2.consumers.add("CINDERBLOCK_CASTS", first))).toBe(
      `publish $JS.API.CONSUMER.CREATE.CINDERBLOCK_CASTS.volume-vol1.${first.filter_subject}`,
    );
    const second = { durable_name: "volume-vol2", filter_subject: "cinderblock.v1.volume.vol2.>" };
    expect((await vol2.consumers.add("CINDERBLOCK_CASTS", second)).config.filter_subject).toBe(second.filter_subject);
    // The members of the active-active cluster `cluster1` (vol1 and vol3) share its consumer; others may not.
    const shared = { durable_name: "volume-cluster1", filter_subject: "cinderblock.v1.volume.cluster1.>" };
    expect((await vol1.consumers.add("CINDERBLOCK_CASTS", shared)).config.filter_subject).toBe(shared.filter_subject);
    const vol3 = await jetstreamManager(await login("vol3"));
    expect((await vol3.consumers.info("CINDERBLOCK_CASTS", "volume-cluster1")).config.filter_subject).toBe(
      shared.filter_subject,
    );
    expect(await refusal(vol2.consumers.add("CINDERBLOCK_CASTS", shared))).toBe(
      `publish $JS.API.CONSUMER.CREATE.CINDERBLOCK_CASTS.volume-cluster1.${shared.filter_subject}`,
    );
    await operator.streams.delete("CINDERBLOCK_CASTS");
    await operator.streams.delete("CINDERBLOCK_NOTIFICATIONS");
  });

  describe("the snapshot flow with every service on its own user", () => {
    let stack: Stack;
    let events: EventsServiceClient;

    beforeAll(async () => {
      const as = (user: keyof typeof passwords) => ({ NATS_USER: user, NATS_PASSWORD: passwords[user] });
      stack = await startStack({
        natsUrl: nats.url,
        // The prefix the config file is written for.
        env: { CINDERBLOCK_NATS_PREFIX: "cinderblock", CINDERBLOCK_QUIESCE_TIMEOUT_MS: "2000" },
        serviceEnv: { api: as("api"), scheduler: as("scheduler"), volume: as("vol1") },
        natsUser: { user: "operator", pass: passwords.operator },
      });
      events = new EventsServiceClient(stack.address, credentials.createInsecure());
    }, 120_000);

    afterAll(async () => {
      events?.close();
      await stack?.stop();
    });

    it("creates a volume and a snapshot, deletes it, and WatchEvents streams the .end notifications", async () => {
      const md = identity(uniqueName("proj-"));
      const got: Notification[] = [];
      const watch = events.watchEvents(
        {
          resourceId: "",
          eventTypes: ["volume.create.end", "snapshot.create.end", "snapshot.delete.end"],
          allProjects: false,
          startSequence: 0,
        },
        md,
      );
      watch.on("data", (m: { event: Notification }) => got.push(m.event));
      watch.on("error", () => {});
      await new Promise((r) => setTimeout(r, 300)); // the subscription is live

      const volume = await createSettledVolume(stack.volumes, md);
      expect(volume.status).toBe(VolumeStatus.VOLUME_STATUS_AVAILABLE);
      const { snapshot } = await call<CreateSnapshotResponse>((done) =>
        stack.snapshots.createSnapshot(CreateSnapshotRequest.fromPartial({ volumeId: volume.id, name: "s" }), md, done),
      );
      const id = (snapshot as Snapshot).id;
      const states = await untilEnd<{ snapshot?: Snapshot }>(stack.snapshots.watchSnapshot({ id }, md));
      expect(states.at(-1)?.snapshot?.status).toBe(SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE);
      await call<DeleteSnapshotResponse>((done) => stack.snapshots.deleteSnapshot({ id, force: false }, md, done));

      const seen = await settle(
        async () => got.map((e) => [e.eventType, e.payload?.volume_id, e.payload?.snapshot_id ?? null]),
        (list) => list.length >= 3,
      );
      watch.cancel();
      expect(seen).toEqual([
        ["volume.create.end", volume.id, null],
        ["snapshot.create.end", volume.id, id],
        ["snapshot.delete.end", volume.id, id],
      ]);
    });

    it("lets a compute agent on its own user answer the api's quiesce", async () => {
      const md = identity(uniqueName("nova-"));
      const instance = randomUUID();
      const volume = await createSettledVolume(stack.volumes, md, { name: "root" });
      await call((done) =>
        stack.volumes.attachVolume(
          { volumeId: volume.id, instanceId: instance, mountpoint: "/dev/vda", connector: {} },
          md,
          done,
        ),
      );
      const agent = await login("compute");
      const asked: string[] = [];
      const sub = agent.subscribe(`cinderblock.v1.compute.${instance}.*`);
      void (async () => {
        for await (const m of sub) {
          asked.push(m.subject.split(".").at(-1) as string);
          m.respond(JSON.stringify({ ok: true }));
        }
      })();
      await agent.flush();
      const image = await call<{ quiesced: boolean; snapshots: Snapshot[] }>((done) =>
        stack.snapshots.snapshotInstance(
          { instanceId: instance, imageName: "img", quiesce: true, quiesceRequired: true },
          md,
          done,
        ),
      );
      sub.unsubscribe();
      expect(asked).toEqual(["quiesce", "unquiesce"]);
      expect(image.quiesced).toBe(true);
      expect(image.snapshots.map((s) => s.status)).toEqual([SnapshotStatus.SNAPSHOT_STATUS_AVAILABLE]);
    });
  });
});
