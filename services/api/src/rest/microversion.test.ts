import { describe, expect, it } from "vitest";
import { MAX_MICROVERSION, type MicroversionError, negotiateMicroversion } from "./microversion.js";

const negotiate = (headers: Record<string, string>) => {
  const v = negotiateMicroversion(headers);
  return `${v.major}.${v.minor}`;
};

describe("microversion negotiation", () => {
  it("is 3.0 without a header, the maximum for latest", () => {
    expect(negotiate({})).toBe("3.0");
    expect(negotiate({ "openstack-api-version": "volume latest" })).toBe(MAX_MICROVERSION);
  });

  it("reads the volume entry of OpenStack-API-Version, else the legacy header", () => {
    expect(negotiate({ "openstack-api-version": "compute 2.90, volume 3.41" })).toBe("3.41");
    expect(negotiate({ "x-openstack-volume-api-version": "3.27" })).toBe("3.27");
    expect(negotiate({ "openstack-api-version": "volume 3.10", "x-openstack-volume-api-version": "3.20" })).toBe(
      "3.10",
    );
  });

  it("refuses a version outside the range with 406 and a malformed one with 400", () => {
    const refused = (headers: Record<string, string>) => {
      try {
        negotiateMicroversion(headers);
      } catch (error) {
        return (error as MicroversionError).status;
      }
      return undefined;
    };
    expect(refused({ "openstack-api-version": "volume 3.999" })).toBe(406);
    expect(refused({ "openstack-api-version": "volume 2.0" })).toBe(406);
    expect(refused({ "openstack-api-version": "volume 3.x" })).toBe(400);
  });
});
