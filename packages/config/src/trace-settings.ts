import { z } from "zod";

/** How far a caller's trace context is trusted (every service). */
export const traceFields = {
  /**
   * `true`: a remote parent's sampled flag decides whether spans are recorded (the OpenTelemetry
   * default, for a trusted caller such as a gateway that samples). `false` (default): a caller's
   * `traceparent` links the spans into its trace, but the service's own sampler decides, so a
   * client cannot make every call recorded (or switch tracing off) by setting the flag.
   */
  CINDERBLOCK_TRACE_TRUST_PARENT: z
    .union([z.boolean(), z.enum(["true", "false"], "expected true or false").transform((v) => v === "true")])
    .default(false),
};
