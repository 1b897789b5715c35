import type { AddressInfo } from "node:net";
import { type ApiUseCases, createPageTokens } from "@cinderblock/domain";
import { createGuard, createNoauthAuthenticator, loadPolicy } from "@cinderblock/rpc";
import { afterAll, beforeAll } from "vitest";
import { API_METHOD_RULES } from "../rules.js";
import { createRestServer } from "./server.js";

/** A request to the fake listener: `token` is the noauth token ("" sends none), `version` a microversion. */
export type FakeRestCall = (
  path: string,
  init?: RequestInit & { token?: string; version?: string },
) => Promise<Response>;

/**
 * The REST listener on 127.0.0.1:0 with `fakes` as its use cases (any other use case called fails
 * the test), the real noauth guard and the default policy; started before the file's tests and
 * closed after them. Returns `call`, which fetches a path with `defaultToken` unless told otherwise.
 */
export function fakeRestServer(fakes: Partial<ApiUseCases>, defaultToken: string): FakeRestCall {
  const useCases = new Proxy(fakes as ApiUseCases, {
    get: (target, name) =>
      target[name as keyof ApiUseCases] ??
      (() => {
        throw new Error(`unexpected use case ${String(name)}`);
      }),
  });
  const server = createRestServer({
    useCases,
    guard: createGuard({
      authenticator: createNoauthAuthenticator(),
      policy: loadPolicy(undefined),
      methods: API_METHOD_RULES,
    }),
    strategy: "noauth",
    limits: { maxStringLength: 65536, maxEntries: 1000, maxCollectionBytes: 1 << 20 },
    pageTokens: createPageTokens("secret"),
    quotaDefaults: { volumes: 10, snapshots: 10, gigabytes: 1000 },
    report: () => {},
  });
  let base = "";
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (path, init = {}) =>
    fetch(`${base}${path}`, {
      ...init,
      headers: {
        "content-type": "application/json",
        ...(init.token === "" ? {} : { "x-auth-token": init.token ?? defaultToken }),
        ...(init.version ? { "openstack-api-version": `volume ${init.version}` } : {}),
      },
    });
}
