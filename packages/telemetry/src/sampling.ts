import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace";

/** The standard OTEL_TRACES_SAMPLER values this project understands. */
export type SamplerName =
  | "always_on"
  | "always_off"
  | "traceidratio"
  | "parentbased_always_on"
  | "parentbased_always_off"
  | "parentbased_traceidratio";

/**
 * The sampler OTEL_TRACES_SAMPLER names. With `trustRemoteParent` false, a `parentbased_*` sampler
 * follows a local parent's decision only: for a remote parent (a caller's `traceparent`, or a
 * message's stored context) the root sampler decides whatever the sampled flag says, so the span
 * still joins the caller's trace but a client cannot force recording (or suppress it).
 *
 * NOTE: our own hops (api → scheduler → volume over NATS) are remote parents too; the ratio
 * sampler decides from the trace id alone, so every service reaches the same decision for one trace.
 */
export function samplerFor(name: SamplerName, ratio: number, trustRemoteParent: boolean): Sampler {
  let root: Sampler = new TraceIdRatioBasedSampler(ratio);
  if (name.endsWith("always_on")) root = new AlwaysOnSampler();
  else if (name.endsWith("always_off")) root = new AlwaysOffSampler();
  if (!name.startsWith("parentbased_")) return root;
  return trustRemoteParent
    ? new ParentBasedSampler({ root })
    : new ParentBasedSampler({ root, remoteParentSampled: root, remoteParentNotSampled: root });
}
