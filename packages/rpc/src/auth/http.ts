import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/** What {@link sendRequest} sends. */
export interface HttpRequestOptions {
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  /** CA certificate(s), PEM, trusted for https instead of the system roots. */
  ca?: string | Buffer;
  /** Milliseconds for the whole exchange (connect, send, read). */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Most bytes of body read; beyond that the exchange fails. */
  maxBodyBytes?: number;
}

/** An HTTP response, its body read whole. */
export interface HttpResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One HTTP(S) exchange on a fresh connection, closed afterwards.
 *
 * NOTE: no keep-alive on purpose. Keystone under uWSGI's `--http-socket` closes the connection after
 * each response without saying so; a client that reuses it gets "connection reset" on the next
 * request. Identity providers are asked rarely (results are cached), so a new connection costs little.
 */
export function sendRequest(url: URL, options: HttpRequestOptions): Promise<HttpResponse> {
  const maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024;
  const signal = options.signal
    ? AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)])
    : AbortSignal.timeout(options.timeoutMs);
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { connection: "close", ...options.headers };
    if (options.body !== undefined) headers["content-length"] = String(Buffer.byteLength(options.body));
    const req = request(
      url,
      {
        method: options.method ?? "GET",
        headers,
        agent: false,
        signal,
        ...(url.protocol === "https:" && options.ca !== undefined ? { ca: options.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBodyBytes) {
            req.destroy(new Error(`the response from ${url.origin} is larger than ${maxBodyBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", (error) => reject(signal.aborted && !options.signal?.aborted ? timeoutError(url, error) : error));
    req.end(options.body);
  });
}

function timeoutError(url: URL, cause: unknown): Error {
  return new Error(`no answer from ${url.origin} in time`, { cause });
}

/** A header's single value (the first, when repeated). */
export function headerValue(response: HttpResponse, name: string): string | undefined {
  const value = response.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
