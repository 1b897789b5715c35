import { z } from "zod";

/** Cinder v3 REST compatibility (issue 16). Spread into the api schema. */
export const restFields = {
  /**
   * host:port of the api's Cinder block-storage v3 REST listener (a view over the same use cases,
   * policy and authentication as the gRPC port); unset: no REST listener.
   */
  CINDERBLOCK_REST_LISTEN: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:8776")
    .optional(),
  /**
   * The public base URL the REST listener writes into links and the versions document (Cinder's
   * public_endpoint), e.g. `https://volume.example.com:8776`; unset: the request's Host header.
   */
  CINDERBLOCK_REST_PUBLIC_URL: z.string().url("must be a URL, e.g. https://volume.example.com:8776").optional(),
};
