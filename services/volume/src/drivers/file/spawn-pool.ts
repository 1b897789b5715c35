import { Worker } from "node:worker_threads";

/** What a failed command reports (the fields of a failed `execFile` that callers look at). */
interface SpawnFailure extends Error {
  code?: string | number;
  path?: string;
  stderr?: string;
  killed?: boolean;
  signal?: string | null;
}

/** Runs commands (argument vectors, never a shell) off the event loop. */
export interface SpawnPool {
  execFile(file: string, args: readonly string[], options: { timeout: number }): Promise<void>;
  close(): Promise<void>;
}

// NOTE: the worker is inline (eval) so it runs the same from dist/ and from the TypeScript sources
// under vitest. It only calls execFile and reports the outcome.
const WORKER_SOURCE = `
const { execFile } = require("node:child_process");
const { parentPort } = require("node:worker_threads");
parentPort.on("message", ({ id, file, args, timeout }) => {
  execFile(file, args, { timeout }, (err, _stdout, stderr) => {
    parentPort.postMessage({
      id,
      error: err && {
        message: err.message, code: err.code, path: err.path, stderr: String(stderr ?? ""),
        killed: err.killed, signal: err.signal,
      },
    });
  });
});`;

type Pending = { resolve(): void; reject(error: Error): void };

/**
 * A few worker threads that spawn commands. NOTE: spawning a process blocks the calling thread
 * until the child has exec'd, about 10 ms on a busy 2-core machine (profiled: a third of the volume
 * host's CPU samples under load with the file driver's `cp` per snapshot); in a worker that wait no
 * longer stalls the event loop that serves every other operation.
 */
export function createSpawnPool(size = 2): SpawnPool {
  const workers: Array<{ worker: Worker; pending: Map<number, Pending> } | undefined> = [];
  let nextId = 0;
  let turn = 0;

  function workerAt(index: number) {
    const existing = workers[index];
    if (existing) return existing;
    // NOTE: each worker is a V8 isolate of its own; small heaps keep the host's RSS down.
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
    });
    worker.unref();
    const entry = { worker, pending: new Map<number, Pending>() };
    worker.on("message", (m: { id: number; error?: Omit<SpawnFailure, "name"> }) => {
      const p = entry.pending.get(m.id);
      if (!p) return;
      entry.pending.delete(m.id);
      if (!m.error) return p.resolve();
      p.reject(Object.assign(new Error(m.error.message), m.error));
    });
    const fail = (error: Error) => {
      if (workers[index] === entry) workers[index] = undefined;
      for (const p of entry.pending.values()) p.reject(error);
      entry.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`spawn worker exited with ${code}`)));
    workers[index] = entry;
    return entry;
  }

  return {
    execFile(file, args, options) {
      const entry = workerAt(turn++ % size);
      const id = nextId++;
      return new Promise<void>((resolve, reject) => {
        entry.pending.set(id, { resolve, reject });
        entry.worker.postMessage({ id, file, args: [...args], timeout: options.timeout });
      });
    },
    async close() {
      const all = workers.splice(0);
      await Promise.all(all.map((w) => w?.worker.terminate()));
    },
  };
}
