/** Hands work to {@link createBatcher}'s `run` and resolves with that item's result. */
export interface Batcher<I, O> {
  submit(item: I): Promise<O>;
}

/**
 * Group commit: items submitted while a batch is being run wait and go together in the next one
 * (at most `maxBatch`); an item submitted while nothing runs starts a batch of one at once, so
 * batching never adds a wait of its own. `run` returns one result per item, in order. When `run`
 * throws, every item of that batch rejects with the error (the caller retries it like any failure).
 */
export function createBatcher<I, O>(run: (items: I[]) => Promise<O[]>, maxBatch = 64): Batcher<I, O> {
  type Waiting = { item: I; resolve(value: O): void; reject(error: unknown): void };
  let queue: Waiting[] = [];
  let running = false;

  async function drain(): Promise<void> {
    running = true;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      try {
        const results = await run(batch.map((w) => w.item));
        if (results.length !== batch.length) {
          throw new Error(`batch of ${batch.length} returned ${results.length} results`);
        }
        for (const [i, w] of batch.entries()) w.resolve(results[i] as O);
      } catch (error) {
        for (const w of batch) w.reject(error);
      }
    }
    running = false;
  }

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (!running) void drain();
      });
    },
  };
}
