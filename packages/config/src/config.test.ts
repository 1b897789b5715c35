import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadApiConfig, loadSchedulerConfig, loadVolumeConfig, SETTING_NAMES } from "./config.js";
import { natsConnectionSettings } from "./nats-settings.js";

describe("configuration", () => {
  it("has working defaults for a local run", () => {
    const config = loadApiConfig({});
    expect(config).toMatchObject({
      DATABASE_URL: "postgres://postgres@127.0.0.1:5432/cinderblock",
      NATS_URL: "nats://127.0.0.1:4222",
      CINDERBLOCK_API_LISTEN: "127.0.0.1:50051",
      CINDERBLOCK_QUOTA_SNAPSHOTS: 10,
      CINDERBLOCK_QUOTA_GIGABYTES: 1000,
      CINDERBLOCK_AUTH_STRATEGY: "noauth",
    });
  });

  it("reads numbers from strings", () => {
    expect(loadApiConfig({ CINDERBLOCK_QUOTA_SNAPSHOTS: "25" }).CINDERBLOCK_QUOTA_SNAPSHOTS).toBe(25);
  });

  it("names every bad variable with its value", () => {
    let error: unknown;
    try {
      loadVolumeConfig({ CINDERBLOCK_HOST: "vol.1", CINDERBLOCK_REPORT_INTERVAL: "soon" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain('CINDERBLOCK_HOST="vol.1"');
    expect(message).toContain('CINDERBLOCK_REPORT_INTERVAL="soon"');
  });

  it("takes an active-active cluster name beside the host's own, but not for the lvm driver", () => {
    const member = loadVolumeConfig({ CINDERBLOCK_HOST: "vol-b", CINDERBLOCK_CLUSTER: "shared" });
    expect([member.CINDERBLOCK_HOST, member.CINDERBLOCK_CLUSTER]).toEqual(["vol-b", "shared"]);
    expect(loadVolumeConfig({}).CINDERBLOCK_CLUSTER).toBeUndefined();
    expect(() => loadVolumeConfig({ CINDERBLOCK_CLUSTER: "a.b" })).toThrow(/CINDERBLOCK_CLUSTER="a.b"/);
    expect(() =>
      loadVolumeConfig({
        CINDERBLOCK_CLUSTER: "shared",
        CINDERBLOCK_VOLUME_DRIVER: "lvm",
        CINDERBLOCK_DRIVER_OPTIONS: '{"volumeGroup":"vg"}',
      }),
    ).toThrow(/CINDERBLOCK_CLUSTER="shared": the lvm driver cannot share/);
  });

  it("prepares statements unless told false, and refuses anything but true or false", () => {
    expect(loadSchedulerConfig({}).CINDERBLOCK_DB_PREPARE).toBe(true);
    expect(loadSchedulerConfig({ CINDERBLOCK_DB_PREPARE: "false" }).CINDERBLOCK_DB_PREPARE).toBe(false);
    expect(loadSchedulerConfig({ CINDERBLOCK_DB_PREPARE: "true" }).CINDERBLOCK_DB_PREPARE).toBe(true);
    expect(() => loadSchedulerConfig({ CINDERBLOCK_DB_PREPARE: "no" })).toThrow(/CINDERBLOCK_DB_PREPARE="no"/);
  });

  it("refuses an unknown auth strategy", () => {
    expect(() => loadApiConfig({ CINDERBLOCK_AUTH_STRATEGY: "ldap" })).toThrow(
      /CINDERBLOCK_AUTH_STRATEGY="ldap": expected noauth, keystone or jwt/,
    );
  });
});

describe("identity settings", () => {
  const keystone = {
    CINDERBLOCK_AUTH_STRATEGY: "keystone",
    CINDERBLOCK_KEYSTONE_URL: "http://127.0.0.1:5000/v3",
    CINDERBLOCK_KEYSTONE_USERNAME: "cinder",
    CINDERBLOCK_KEYSTONE_PASSWORD: "s3cret",
  };
  const jwt = {
    CINDERBLOCK_AUTH_STRATEGY: "jwt",
    CINDERBLOCK_JWT_ISSUER: "https://idp.example",
    CINDERBLOCK_JWT_AUDIENCE: "cinderblock",
  };

  it("default to noauth on loopback only, with Keystone's and the JWT defaults", () => {
    expect(loadApiConfig({})).toMatchObject({
      CINDERBLOCK_AUTH_STRATEGY: "noauth",
      CINDERBLOCK_NOAUTH_ALLOW_REMOTE: false,
      CINDERBLOCK_KEYSTONE_PROJECT_NAME: "service",
      CINDERBLOCK_KEYSTONE_USER_DOMAIN_NAME: "Default",
      CINDERBLOCK_KEYSTONE_PROJECT_DOMAIN_NAME: "Default",
      CINDERBLOCK_KEYSTONE_CACHE_SECONDS: 60,
      CINDERBLOCK_KEYSTONE_CACHE_SIZE: 10000,
      CINDERBLOCK_JWT_ALGORITHMS: ["RS256", "PS256", "ES256", "EdDSA"],
      CINDERBLOCK_JWT_CLOCK_SKEW: 30,
      CINDERBLOCK_JWT_PROJECT_CLAIM: "project_id",
      CINDERBLOCK_JWT_USER_CLAIM: "sub",
      CINDERBLOCK_JWT_ROLES_CLAIM: "roles",
    });
    expect(loadApiConfig({}).CINDERBLOCK_POLICY_FILE).toBeUndefined();
    expect(loadApiConfig({ CINDERBLOCK_NOAUTH_ALLOW_REMOTE: "true" }).CINDERBLOCK_NOAUTH_ALLOW_REMOTE).toBe(true);
    expect(() => loadApiConfig({ CINDERBLOCK_NOAUTH_ALLOW_REMOTE: "yes" })).toThrow(
      /CINDERBLOCK_NOAUTH_ALLOW_REMOTE="yes": expected true or false/,
    );
  });

  it("accept a complete keystone or jwt configuration", () => {
    expect(loadApiConfig(keystone)).toMatchObject({ CINDERBLOCK_AUTH_STRATEGY: "keystone" });
    expect(loadApiConfig({ ...jwt, CINDERBLOCK_JWT_ALGORITHMS: "ES256, EdDSA" }).CINDERBLOCK_JWT_ALGORITHMS).toEqual([
      "ES256",
      "EdDSA",
    ]);
  });

  it("name each setting a strategy is missing", () => {
    let message = "";
    try {
      loadApiConfig({ CINDERBLOCK_AUTH_STRATEGY: "keystone", CINDERBLOCK_KEYSTONE_USERNAME: "cinder" });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/CINDERBLOCK_KEYSTONE_URL="": required when CINDERBLOCK_AUTH_STRATEGY=keystone/);
    expect(message).toMatch(/CINDERBLOCK_KEYSTONE_PASSWORD="": required when CINDERBLOCK_AUTH_STRATEGY=keystone/);
    expect(message).not.toMatch(/CINDERBLOCK_KEYSTONE_USERNAME/);
    expect(() => loadApiConfig({ ...jwt, CINDERBLOCK_JWT_AUDIENCE: undefined })).toThrow(
      /CINDERBLOCK_JWT_AUDIENCE="": required when CINDERBLOCK_AUTH_STRATEGY=jwt/,
    );
    expect(() => loadApiConfig({ CINDERBLOCK_AUTH_STRATEGY: "jwt" })).toThrow(/CINDERBLOCK_JWT_ISSUER/);
  });

  it("never accept none or HS* as JWT algorithms, and bound the clock skew", () => {
    expect(() => loadApiConfig({ ...jwt, CINDERBLOCK_JWT_ALGORITHMS: "RS256,none" })).toThrow(
      /CINDERBLOCK_JWT_ALGORITHMS="RS256,none": not accepted: none/,
    );
    expect(() => loadApiConfig({ ...jwt, CINDERBLOCK_JWT_ALGORITHMS: "HS256" })).toThrow(/not accepted: HS256/);
    expect(() => loadApiConfig({ ...jwt, CINDERBLOCK_JWT_ALGORITHMS: " , " })).toThrow(/CINDERBLOCK_JWT_ALGORITHMS/);
    expect(() => loadApiConfig({ ...jwt, CINDERBLOCK_JWT_CLOCK_SKEW: "301" })).toThrow(
      /CINDERBLOCK_JWT_CLOCK_SKEW="301": expected 0 to 300 seconds/,
    );
  });

  it("refuse a Keystone URL that is not http(s)", () => {
    expect(() => loadApiConfig({ ...keystone, CINDERBLOCK_KEYSTONE_URL: "keystone:5000" })).toThrow(
      /CINDERBLOCK_KEYSTONE_URL="keystone:5000": expected an http\(s\) URL/,
    );
  });
});

describe("observability settings", () => {
  it("serve /metrics on a per-service loopback port and trace nothing by default", () => {
    expect(loadApiConfig({})).toMatchObject({
      CINDERBLOCK_METRICS_LISTEN: "127.0.0.1:9464",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://localhost:4318",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
      OTEL_TRACES_SAMPLER: "parentbased_always_on",
    });
    expect(loadSchedulerConfig({}).CINDERBLOCK_METRICS_LISTEN).toBe("127.0.0.1:9465");
    expect(loadVolumeConfig({}).CINDERBLOCK_METRICS_LISTEN).toBe("127.0.0.1:9466");
  });

  it("turn /metrics off with an empty address and accept IPv6 and port 0", () => {
    expect(loadApiConfig({ CINDERBLOCK_METRICS_LISTEN: "" }).CINDERBLOCK_METRICS_LISTEN).toBe("");
    expect(loadApiConfig({ CINDERBLOCK_METRICS_LISTEN: "[::]:9464" }).CINDERBLOCK_METRICS_LISTEN).toBe("[::]:9464");
    expect(loadApiConfig({ CINDERBLOCK_METRICS_LISTEN: "0.0.0.0:0" }).CINDERBLOCK_METRICS_LISTEN).toBe("0.0.0.0:0");
  });

  it("name the bad variable and say what is expected", () => {
    expect(() => loadApiConfig({ CINDERBLOCK_METRICS_LISTEN: "9464" })).toThrow(
      /CINDERBLOCK_METRICS_LISTEN="9464": expected host:port/,
    );
    expect(() => loadApiConfig({ CINDERBLOCK_METRICS_LISTEN: "0.0.0.0:70000" })).toThrow(/CINDERBLOCK_METRICS_LISTEN/);
    expect(() => loadVolumeConfig({ OTEL_TRACES_EXPORTER: "jaeger" })).toThrow(
      /OTEL_TRACES_EXPORTER="jaeger": expected none, otlp or console/,
    );
    expect(() => loadApiConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318": expected an http\(s\) URL/,
    );
    expect(() => loadApiConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL="grpc": expected http\/protobuf or http\/json/,
    );
    expect(() => loadSchedulerConfig({ OTEL_TRACES_SAMPLER_ARG: "2" })).toThrow(
      /OTEL_TRACES_SAMPLER_ARG="2": expected a ratio from 0 to 1/,
    );
  });
});
describe("shutdown and health settings", () => {
  it("default to a 20 s grace and a 5 s health interval", () => {
    const config = loadSchedulerConfig({});
    expect(config.CINDERBLOCK_SHUTDOWN_GRACE).toBe(20);
    expect(config.CINDERBLOCK_HEALTH_INTERVAL).toBe(5);
    expect(config.CINDERBLOCK_SCHEDULER_LISTEN).toBe("127.0.0.1:0");
  });

  it("refuse a grace that is not a whole number of seconds between 1 and 3600", () => {
    for (const bad of ["0", "-5", "1.5", "soon", "3601"]) {
      expect(() => loadApiConfig({ CINDERBLOCK_SHUTDOWN_GRACE: bad })).toThrow(
        `CINDERBLOCK_SHUTDOWN_GRACE=${JSON.stringify(bad)}`,
      );
    }
    expect(() => loadVolumeConfig({ CINDERBLOCK_HEALTH_INTERVAL: "0" })).toThrow(/CINDERBLOCK_HEALTH_INTERVAL="0"/);
    expect(() => loadSchedulerConfig({ CINDERBLOCK_SCHEDULER_LISTEN: "50053" })).toThrow(
      /CINDERBLOCK_SCHEDULER_LISTEN="50053": expected host:port/,
    );
  });
});

describe("scheduler weigher settings", () => {
  it("default to Cinder's multipliers (spread by free capacity, prefer the least allocated)", () => {
    const config = loadSchedulerConfig({});
    expect(config.CINDERBLOCK_CAPACITY_WEIGHT_MULTIPLIER).toBe(1);
    expect(config.CINDERBLOCK_ALLOCATED_CAPACITY_WEIGHT_MULTIPLIER).toBe(-1);
  });

  it("take any finite number, negative to stack, and refuse anything else", () => {
    const config = loadSchedulerConfig({
      CINDERBLOCK_CAPACITY_WEIGHT_MULTIPLIER: "-2.5",
      CINDERBLOCK_ALLOCATED_CAPACITY_WEIGHT_MULTIPLIER: "0",
    });
    expect(config.CINDERBLOCK_CAPACITY_WEIGHT_MULTIPLIER).toBe(-2.5);
    expect(config.CINDERBLOCK_ALLOCATED_CAPACITY_WEIGHT_MULTIPLIER).toBe(0);
    for (const bad of ["stack", "Infinity"]) {
      expect(() => loadSchedulerConfig({ CINDERBLOCK_CAPACITY_WEIGHT_MULTIPLIER: bad })).toThrow(
        `CINDERBLOCK_CAPACITY_WEIGHT_MULTIPLIER=${JSON.stringify(bad)}`,
      );
    }
  });
});

describe("config file (CINDERBLOCK_CONFIG)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "cinderblock-config-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function file(name: string, content: unknown): string {
    const path = join(dir, name);
    writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
    return path;
  }

  it("supplies settings, numbers and objects included, and the environment overrides it", () => {
    const path = file("shared.json", {
      NATS_URL: "nats://nats:4222",
      CINDERBLOCK_QUOTA_SNAPSHOTS: 20,
      CINDERBLOCK_QUOTA_VOLUMES: 30,
      CINDERBLOCK_DRIVER_OPTIONS: { volumeGroup: "cinder-volumes" },
      CINDERBLOCK_HOST: "stor1",
    });
    const api = loadApiConfig({ CINDERBLOCK_CONFIG: path, CINDERBLOCK_QUOTA_VOLUMES: "5" });
    expect(api.NATS_URL).toBe("nats://nats:4222");
    expect(api.CINDERBLOCK_QUOTA_SNAPSHOTS).toBe(20);
    expect(api.CINDERBLOCK_QUOTA_VOLUMES).toBe(5);
    // One file serves every service: the volume host's keys are simply not the api's business.
    const volume = loadVolumeConfig({ CINDERBLOCK_CONFIG: path });
    expect(volume.CINDERBLOCK_DRIVER_OPTIONS).toEqual({ volumeGroup: "cinder-volumes" });
    expect(volume.CINDERBLOCK_HOST).toBe("stor1");
  });

  it("names the file when a bad value came from it", () => {
    const path = file("bad-value.json", { CINDERBLOCK_SHUTDOWN_GRACE: 0 });
    expect(() => loadApiConfig({ CINDERBLOCK_CONFIG: path })).toThrow(`CINDERBLOCK_SHUTDOWN_GRACE="0" (in ${path})`);
    // ...and not when the environment's value is the bad one.
    expect(() => loadApiConfig({ CINDERBLOCK_CONFIG: path, CINDERBLOCK_SHUTDOWN_GRACE: "x" })).toThrow(
      /CINDERBLOCK_SHUTDOWN_GRACE="x": /,
    );
  });

  it("refuses an unknown key, a missing file, bad JSON and a non-object", () => {
    const typo = file("typo.json", { CINDERBLOCK_QUOTA_SNAPSHOT: 5 });
    expect(() => loadApiConfig({ CINDERBLOCK_CONFIG: typo })).toThrow(
      `CINDERBLOCK_QUOTA_SNAPSHOT (in ${typo}): not a setting`,
    );
    expect(() => loadApiConfig({ CINDERBLOCK_CONFIG: join(dir, "missing.json") })).toThrow(
      /CINDERBLOCK_CONFIG=".*missing.json": cannot read the file/,
    );
    expect(() => loadApiConfig({ CINDERBLOCK_CONFIG: file("broken.json", "{ NATS_URL: ") })).toThrow(
      /CINDERBLOCK_CONFIG=".*broken.json": not JSON/,
    );
    expect(() => loadApiConfig({ CINDERBLOCK_CONFIG: file("list.json", ["NATS_URL"]) })).toThrow(
      /expected a JSON object of settings/,
    );
    expect(() => loadApiConfig({ CINDERBLOCK_CONFIG: file("null.json", { NATS_URL: null }) })).toThrow(
      /NATS_URL \(in .*null.json\): expected a string, number, boolean or object/,
    );
  });
});

describe("README", () => {
  it("lists every setting in its Configuration table", () => {
    const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("### An LVM backend"));
    const listed = new Set([...section.matchAll(/^\| `([A-Z0-9_]+)`/gm)].map((m) => m[1]));
    expect(SETTING_NAMES.filter((name) => !listed.has(name))).toEqual([]);
    expect(listed.has("CINDERBLOCK_CONFIG")).toBe(true);
  });
});

describe("NATS settings", () => {
  it("connect without credentials or TLS by default, and take a comma-separated server list", () => {
    expect(natsConnectionSettings(loadApiConfig({}))).toEqual({ url: ["nats://127.0.0.1:4222"], replicas: 1 });
    const config = loadVolumeConfig({ NATS_URL: "tls://n1:4222, tls://n2:4222", NATS_TLS_CA_FILE: "/ca.pem" });
    expect(natsConnectionSettings(config)).toEqual({
      url: ["tls://n1:4222", "tls://n2:4222"],
      tls: { caFile: "/ca.pem" },
      replicas: 1,
    });
  });

  it("take the streams' replica count for a NATS cluster, 1 to 5", () => {
    expect(natsConnectionSettings(loadSchedulerConfig({ CINDERBLOCK_NATS_REPLICAS: "3" })).replicas).toBe(3);
    for (const bad of ["0", "6", "two"]) {
      expect(() => loadApiConfig({ CINDERBLOCK_NATS_REPLICAS: bad })).toThrow(/CINDERBLOCK_NATS_REPLICAS/);
    }
  });

  it("take one way to authenticate, and a client certificate with its key", () => {
    expect(
      natsConnectionSettings(
        loadSchedulerConfig({
          NATS_USER: "scheduler",
          NATS_PASSWORD: "s3cret",
          NATS_TLS_CERT_FILE: "/c.pem",
          NATS_TLS_KEY_FILE: "/k.pem",
        }),
      ),
    ).toEqual({
      url: ["nats://127.0.0.1:4222"],
      credentials: { user: "scheduler", password: "s3cret" },
      tls: { certFile: "/c.pem", keyFile: "/k.pem" },
      replicas: 1,
    });
    expect(natsConnectionSettings(loadApiConfig({ NATS_TOKEN: "t0ken" })).credentials).toEqual({ token: "t0ken" });
    expect(natsConnectionSettings(loadApiConfig({ NATS_CREDS_FILE: "/u.creds" })).credentials).toEqual({
      credsFile: "/u.creds",
    });
    // Empty counts as unset (a compose file's `NATS_USER: ""`).
    expect(natsConnectionSettings(loadApiConfig({ NATS_USER: "", NATS_PASSWORD: "" })).credentials).toBeUndefined();
  });

  it("refuse half a login, two ways to log in and a certificate without its key, never showing a secret", () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadApiConfig(env);
      } catch (error) {
        return (error as Error).message;
      }
      return "";
    };
    expect(problems({ NATS_USER: "api" })).toMatch(/NATS_USER="api": needs NATS_PASSWORD/);
    const passwordAlone = problems({ NATS_PASSWORD: "hunter2" });
    expect(passwordAlone).toMatch(/NATS_USER="": NATS_PASSWORD is set: set NATS_USER too/);
    const two = problems({ NATS_TOKEN: "t0psecret", NATS_NKEY_SEED_FILE: "/seed" });
    expect(two).toMatch(
      /NATS_NKEY_SEED_FILE="\/seed": set only one way to authenticate to NATS \(got NATS_TOKEN, NATS_NKEY_SEED_FILE/,
    );
    expect(problems({ NATS_TLS_CERT_FILE: "/c.pem" })).toMatch(/NATS_TLS_CERT_FILE="\/c.pem": needs NATS_TLS_KEY_FILE/);
    expect(problems({ NATS_TLS_KEY_FILE: "/k.pem" })).toMatch(/NATS_TLS_KEY_FILE="\/k.pem": needs NATS_TLS_CERT_FILE/);
    expect(problems({ NATS_URL: "http://n1:4222" })).toMatch(
      /NATS_URL="http:\/\/n1:4222": expected nats:\/\/host:port/,
    );
    expect(passwordAlone + two).not.toMatch(/hunter2|t0psecret/);
  });
});
