/**
 * Sizes the libuv thread pool of a volume host on the rbd driver. Every librbd call of the addon
 * (packages/rbd-native) holds a pool thread while it waits on the cluster, so Node's default of 4
 * threads caps the host at 4 Ceph calls in flight: measured with bench/dist/rbd.js, 16 callers got
 * 18-23 snapshots/s through the stack with 4 threads, 27-29/s with 64 (the machine's 2 cores were
 * the limit then). main.ts imports this module first: ES modules run in import order, and the pool
 * takes its size from the environment when something first uses it.
 */

/** One thread per cast the host handles at once (main.ts's consumer concurrency). */
const RBD_THREADS = 64;

/** The UV_THREADPOOL_SIZE to start with, or undefined to keep Node's default or the operator's setting. */
export function threadPoolSize(env: NodeJS.ProcessEnv): string | undefined {
  if (env.UV_THREADPOOL_SIZE !== undefined) return undefined;
  return env.CINDERBLOCK_VOLUME_DRIVER === "rbd" ? String(RBD_THREADS) : undefined;
}

const size = threadPoolSize(process.env);
if (size !== undefined) process.env.UV_THREADPOOL_SIZE = size;
