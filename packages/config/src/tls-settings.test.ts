import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadApiConfig, loadVolumeConfig } from "./config.js";
import { apiServerTls, hostClientTls, volumeServerTls } from "./tls-settings.js";

const dir = mkdtempSync(join(tmpdir(), "cinderblock-tls-settings-"));
const file = (name: string) => {
  const path = join(dir, name);
  writeFileSync(path, "PEM");
  return path;
};
const cert = file("cert.pem");
const key = file("key.pem");
const ca = file("ca.pem");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("TLS settings", () => {
  it("leave the public port plaintext and reflection on by default", () => {
    const config = loadApiConfig({});
    expect(config.CINDERBLOCK_API_REFLECTION).toBe(true);
    expect(apiServerTls(config)).toBeUndefined();
    expect(loadApiConfig({ CINDERBLOCK_API_REFLECTION: "false" }).CINDERBLOCK_API_REFLECTION).toBe(false);
    expect(() => loadApiConfig({ CINDERBLOCK_API_REFLECTION: "no" })).toThrow(/CINDERBLOCK_API_REFLECTION="no"/);
  });

  it("want a certificate and its key together, naming the one missing", () => {
    expect(() => loadApiConfig({ CINDERBLOCK_API_TLS_CERT_FILE: cert })).toThrow(
      'CINDERBLOCK_API_TLS_KEY_FILE="": required with CINDERBLOCK_API_TLS_CERT_FILE (set both or neither)',
    );
    expect(() => loadApiConfig({ CINDERBLOCK_HOST_TLS_KEY_FILE: key })).toThrow(
      /CINDERBLOCK_HOST_TLS_CERT_FILE="": required with CINDERBLOCK_HOST_TLS_KEY_FILE/,
    );
    expect(() => loadVolumeConfig({ CINDERBLOCK_VOLUME_TLS_CERT_FILE: cert })).toThrow(
      /CINDERBLOCK_VOLUME_TLS_KEY_FILE="": required with CINDERBLOCK_VOLUME_TLS_CERT_FILE/,
    );
    expect(() => loadApiConfig({ CINDERBLOCK_API_TLS_CLIENT_CA_FILE: ca })).toThrow(
      /CINDERBLOCK_API_TLS_CLIENT_CA_FILE=.*client certificates need TLS/,
    );
    const config = loadApiConfig({
      CINDERBLOCK_API_TLS_CERT_FILE: cert,
      CINDERBLOCK_API_TLS_KEY_FILE: key,
      CINDERBLOCK_API_TLS_CLIENT_CA_FILE: ca,
    });
    expect(apiServerTls(config)).toEqual({ certFile: cert, keyFile: key, caFile: ca });
  });

  it("require mutual TLS between the api and volume hosts, naming each missing setting", () => {
    expect(() => hostClientTls(loadApiConfig({}))).toThrow(
      /CINDERBLOCK_HOST_TLS_CERT_FILE: required[^\n]*\n\s+CINDERBLOCK_HOST_TLS_KEY_FILE: required[^\n]*\n\s+CINDERBLOCK_HOST_TLS_CA_FILE: required/,
    );
    expect(() =>
      volumeServerTls(
        loadVolumeConfig({ CINDERBLOCK_VOLUME_TLS_CERT_FILE: cert, CINDERBLOCK_VOLUME_TLS_KEY_FILE: key }),
      ),
    ).toThrow(
      /CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE: required \(the volume host's internal service accepts only mutual TLS\)/,
    );
    expect(
      volumeServerTls(
        loadVolumeConfig({
          CINDERBLOCK_VOLUME_TLS_CERT_FILE: cert,
          CINDERBLOCK_VOLUME_TLS_KEY_FILE: key,
          CINDERBLOCK_VOLUME_TLS_CLIENT_CA_FILE: ca,
          CINDERBLOCK_VOLUME_TLS_ALLOWED_CLIENTS: "cinderblock-api, api.example.com",
        }),
      ),
    ).toEqual({ certFile: cert, keyFile: key, caFile: ca, allowedClients: ["cinderblock-api", "api.example.com"] });
  });

  it("name the setting whose file cannot be read", () => {
    const missing = join(dir, "missing.pem");
    expect(() =>
      hostClientTls(
        loadApiConfig({
          CINDERBLOCK_HOST_TLS_CERT_FILE: cert,
          CINDERBLOCK_HOST_TLS_KEY_FILE: key,
          CINDERBLOCK_HOST_TLS_CA_FILE: missing,
        }),
      ),
    ).toThrow(`CINDERBLOCK_HOST_TLS_CA_FILE=${JSON.stringify(missing)}: cannot read the file`);
  });

  it("default the allowed clients to the api's name, and refuse an empty list", () => {
    expect(loadVolumeConfig({}).CINDERBLOCK_VOLUME_TLS_ALLOWED_CLIENTS).toEqual(["cinderblock-api"]);
    expect(() => loadVolumeConfig({ CINDERBLOCK_VOLUME_TLS_ALLOWED_CLIENTS: " , " })).toThrow(
      /CINDERBLOCK_VOLUME_TLS_ALLOWED_CLIENTS=" , ": expected a comma-separated list/,
    );
  });
});
