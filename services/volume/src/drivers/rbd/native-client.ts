import type { RbdNativeBinding, RbdNativeCluster } from "@cinderblock/rbd-native";
import { CephError, Errno } from "./ceph-error.js";
import type { RbdClient } from "./rbd-client.js";

/** How the addon reaches the cluster. */
export interface NativeClientOptions {
  pool: string;
  user: string;
  clusterName: string;
  confPath?: string;
  keyring?: string;
  /** librados's client_mount_timeout: how long connecting may take. */
  connectTimeoutSeconds: number;
  /** librados's monitor and OSD op timeouts: how long one call may wait on the cluster. */
  timeoutSeconds: number;
}

/**
 * The rbd driver's cluster calls through librbd on one connection, opened on first use and kept
 * (librados reconnects to the monitors by itself). A connection the cluster fenced off
 * (ESHUTDOWN/EBLOCKLISTED) is replaced on the next call. Each call runs on the libuv thread pool.
 */
export function createNativeClient(binding: RbdNativeBinding, options: NativeClientOptions): RbdClient {
  let current: RbdNativeCluster | undefined;
  let connecting: Promise<RbdNativeCluster> | undefined;
  const pending = new Set<Promise<unknown>>();
  const retired = new Set<RbdNativeCluster>();

  function open(): Promise<RbdNativeCluster> {
    if (current) return Promise.resolve(current);
    connecting ??= (async () => {
      const cluster = new binding.Cluster({
        clusterName: options.clusterName,
        user: options.user,
        pool: options.pool,
        confPath: options.confPath,
        keyring: options.keyring,
        // NOTE: without these, a call to a cluster that stopped answering waits forever and keeps
        // a libuv thread busy; with them it fails with ETIMEDOUT.
        config: {
          client_mount_timeout: String(options.connectTimeoutSeconds),
          rados_mon_op_timeout: String(options.timeoutSeconds),
          rados_osd_op_timeout: String(options.timeoutSeconds),
        },
      });
      try {
        await cluster.connect();
      } catch (error) {
        throw nativeError(error);
      }
      current = cluster;
      return cluster;
    })().finally(() => {
      connecting = undefined;
    });
    return connecting;
  }

  async function closeWhenIdle(): Promise<void> {
    while (pending.size > 0) await Promise.allSettled([...pending]);
    for (const cluster of retired) {
      retired.delete(cluster);
      await cluster.close().catch(() => undefined);
    }
  }

  function use<T>(call: (cluster: RbdNativeCluster) => Promise<T>): Promise<T> {
    const promise = (async () => {
      const cluster = await open();
      try {
        return await call(cluster);
      } catch (error) {
        const mapped = nativeError(error);
        if (mapped instanceof CephError && mapped.errno === Errno.ESHUTDOWN && current === cluster) {
          current = undefined;
          retired.add(cluster);
        }
        throw mapped;
      }
    })();
    pending.add(promise);
    void promise
      .finally(() => {
        pending.delete(promise);
        if (retired.size > 0 && pending.size === 0) void closeWhenIdle();
      })
      .catch(() => undefined);
    return promise;
  }

  return {
    kind: "librbd",
    async connect() {
      await open();
    },
    async close() {
      await connecting?.catch(() => undefined);
      if (current) retired.add(current);
      current = undefined;
      await closeWhenIdle();
    },
    createImage: (image, size) => use((c) => c.createImage(image, size)),
    removeImage: (image) => use((c) => c.removeImage(image)),
    imageInfo: (image) =>
      use(async (c) => {
        const stat = await c.statImage(image);
        if (!stat.parent) return { size: stat.size };
        const { pool, namespace, image: parentImage, snapshot } = stat.parent;
        return { size: stat.size, parent: { pool, namespace, image: parentImage, snapshot } };
      }),
    imageSizes: (prefix) => use((c) => c.imageSizes(prefix)),
    listSnapshots: (image) =>
      use(async (c) =>
        (await c.listSnapshots(image)).map((s) => ({ name: s.name, size: s.size, protected: s.protected })),
      ),
    createSnapshot: (image, snapshot) => use((c) => c.createSnapshot(image, snapshot)),
    protectSnapshot: (image, snapshot) => use((c) => c.protectSnapshot(image, snapshot)),
    createProtectedSnapshot: (image, snapshot) => use((c) => c.createProtectedSnapshot(image, snapshot)),
    unprotectSnapshot: (image, snapshot) => use((c) => c.unprotectSnapshot(image, snapshot)),
    removeSnapshot: (image, snapshot) => use((c) => c.removeSnapshot(image, snapshot)),
    renameSnapshot: (image, snapshot, newName) => use((c) => c.renameSnapshot(image, snapshot, newName)),
    rollbackSnapshot: (image, snapshot) => use((c) => c.rollbackSnapshot(image, snapshot)),
    listChildren: (image, snapshot) => use((c) => c.listChildren(image, snapshot)),
    clone: (parent, snapshot, child) => use((c) => c.clone(parent, snapshot, child)),
    flatten: (target) => use((c) => c.flatten(target.image, target.pool, target.namespace)),
    resize: (image, size) => use((c) => c.resize(image, size)),
    allocatedExtents: (image) =>
      use(async (c) => {
        const flat = await c.allocatedExtents(image);
        const extents: Array<{ offset: number; length: number }> = [];
        for (let i = 0; i + 1 < flat.length; i += 2) extents.push({ offset: flat[i] ?? 0, length: flat[i + 1] ?? 0 });
        return extents;
      }),
    readImage: (image, offset, length) => use((c) => c.readImage(image, offset, length)),
    writeImage: (image, pieces) => use((c) => c.writeImage(image, pieces)),
    df: () => use(async (c) => JSON.parse(await c.monCommand(JSON.stringify({ prefix: "df", format: "json" })))),
    poolQuota: () =>
      use(async (c) =>
        JSON.parse(
          await c.monCommand(JSON.stringify({ prefix: "osd pool get-quota", pool: options.pool, format: "json" })),
        ),
      ),
    monDump: () =>
      use(async (c) => JSON.parse(await c.monCommand(JSON.stringify({ prefix: "mon dump", format: "json" })))),
  };
}

/** The addon rejects with an Error carrying `errno` and `code`; those become CephErrors. */
function nativeError(error: unknown): unknown {
  if (error instanceof CephError) return error;
  if (error instanceof Error && "errno" in error && typeof error.errno === "number") {
    const code = "code" in error && typeof error.code === "string" ? error.code : undefined;
    return new CephError(error.errno, error.message, { cause: error, code });
  }
  return error;
}
