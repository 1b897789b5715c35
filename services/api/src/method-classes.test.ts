import {
  EventsServiceService,
  GroupSnapshotsServiceService,
  QuotasServiceService,
  ServicesServiceService,
  SnapshotsServiceService,
  VolumesServiceService,
  VolumeTypesServiceService,
} from "@cinderblock/proto";
import { describe, expect, it } from "vitest";
import { API_METHOD_CLASSES } from "./method-classes.js";

const METHODS = [
  VolumesServiceService,
  SnapshotsServiceService,
  QuotasServiceService,
  EventsServiceService,
  GroupSnapshotsServiceService,
  VolumeTypesServiceService,
  ServicesServiceService,
].flatMap((service) => Object.values(service) as Array<{ path: string; responseStream: boolean }>);

describe("the rate-limit classes", () => {
  it("class every public RPC, the server-streaming ones as streams", () => {
    expect(Object.keys(API_METHOD_CLASSES).sort()).toEqual(METHODS.map((m) => m.path.split("/").pop()).sort());
    for (const m of METHODS) {
      const name = m.path.split("/").pop() as keyof typeof API_METHOD_CLASSES;
      expect(API_METHOD_CLASSES[name] === "stream", name).toBe(m.responseStream);
    }
  });
});
