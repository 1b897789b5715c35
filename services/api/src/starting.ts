import { type ApiUseCases, CinderblockError } from "@cinderblock/domain";

/**
 * Use cases to build the gRPC server with before the real ones exist: the api binds its port (so
 * health answers NOT_SERVING) while it still waits for PostgreSQL and NATS, and a call that comes
 * anyway gets UNAVAILABLE, which clients retry, instead of UNIMPLEMENTED.
 */
export function pendingUseCases(): { useCases: ApiUseCases; resolve(real: ApiUseCases): void } {
  let real: ApiUseCases | undefined;
  const starting = () => {
    throw new CinderblockError("UNAVAILABLE", "the api is starting: waiting for PostgreSQL and NATS");
  };
  const useCases = new Proxy({} as ApiUseCases, {
    get(_target, name) {
      if (!real) return starting;
      const value = real[name as keyof ApiUseCases];
      return typeof value === "function" ? value.bind(real) : value;
    },
  });
  return {
    useCases,
    resolve(value) {
      real = value;
    },
  };
}
