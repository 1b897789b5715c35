/**
 * What `promise` was rejected with, checked to be a `type` (so a test can assert its code and
 * message). Fulfilment, or a rejection of another kind, fails the test with what came instead.
 */
export async function rejectionOf<E>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
): Promise<E> {
  const outcome = await promise.then(
    (value: unknown) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!("error" in outcome)) throw new Error(`expected a rejection with ${type.name}, got ${String(outcome.value)}`);
  if (!(outcome.error instanceof type)) throw new Error(`expected a ${type.name}, got ${String(outcome.error)}`);
  return outcome.error;
}
