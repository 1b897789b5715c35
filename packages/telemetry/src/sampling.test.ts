import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from "@opentelemetry/api";
import { SamplingDecision } from "@opentelemetry/sdk-trace";
import { describe, expect, it } from "vitest";
import { samplerFor } from "./sampling.js";

// Whether a caller's traceparent decides sampling: a remote parent with the sampled flag set, or
// clear, against a sampler whose own choice is the opposite.

const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";

function decide(sampler: ReturnType<typeof samplerFor>, flags: TraceFlags, isRemote = true): SamplingDecision {
  const parent = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: TRACE_ID,
    spanId: "b7ad6b7169203331",
    traceFlags: flags,
    isRemote,
  });
  return sampler.shouldSample(parent, TRACE_ID, "call", SpanKind.SERVER, {}, []).decision;
}

describe("trace sampling", () => {
  it("does not let a caller's sampled flag force recording by default", () => {
    const sampler = samplerFor("parentbased_traceidratio", 0, false);
    expect(decide(sampler, TraceFlags.SAMPLED)).toBe(SamplingDecision.NOT_RECORD);
  });

  it("does not let a caller's unsampled flag switch recording off by default", () => {
    const sampler = samplerFor("parentbased_always_on", 1, false);
    expect(decide(sampler, TraceFlags.NONE)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
  });

  it("follows the caller's flag when CINDERBLOCK_TRACE_TRUST_PARENT is true", () => {
    const sampler = samplerFor("parentbased_traceidratio", 0, true);
    expect(decide(sampler, TraceFlags.SAMPLED)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
    expect(decide(samplerFor("parentbased_always_on", 1, true), TraceFlags.NONE)).toBe(SamplingDecision.NOT_RECORD);
  });

  it("still follows a local parent (spans within one process stay in one decision)", () => {
    const sampler = samplerFor("parentbased_traceidratio", 0, false);
    expect(decide(sampler, TraceFlags.SAMPLED, false)).toBe(SamplingDecision.RECORD_AND_SAMPLED);
  });
});
