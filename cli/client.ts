// The CLI's connection to the apiserver, over node:http2 (see
// lib/grpc/http2-client.ts for why not grpc-js). An absent or dead socket
// becomes one clear error with the hint to start the service.
import { ContainerError, asContainerError, sentByPeer } from "../lib/errors/index.js";
import { PassThrough, type Readable } from "node:stream";
import { createHttp2Client, type CallOptions, type Http2Client } from "../lib/grpc/http2-client.js";
import type { RequestOf, ResponseOf } from "../lib/grpc/definition.js";
import { apiserverSocketPath } from "../lib/paths/index.js";
import { ContainerServiceDefinition } from "../apiserver/api/gen/apiserver.js";

type Methods = (typeof ContainerServiceDefinition)["methods"];
export type ApiClient = Http2Client<typeof ContainerServiceDefinition>;

export function connect(): ApiClient {
  return createHttp2Client(ContainerServiceDefinition, apiserverSocketPath());
}

export function notRunning(cause?: unknown): ContainerError {
  return new ContainerError("unavailable", "the container apiserver is not running", {
    hint: "start it with `container system start`",
    cause,
  });
}

/**
 * Maps "nobody listens on the socket" to notRunning; other errors pass as they
 * are. Only an error the client made up counts: one the apiserver sent (it
 * carries our error code) is about something further down.
 */
export function explain(err: unknown): ContainerError {
  const e = asContainerError(err);
  if (sentByPeer(e)) return e;
  // The apiserver died (or was stopped) with the call in flight: whether the
  // operation took effect is unknown, so say so rather than "not running".
  const cut = /^(\w+): the server closed the call without a status/.exec(e.message);
  if (cut) {
    return new ContainerError("unavailable", `the apiserver went away during ${cut[1]}`, {
      hint: "start it again with `container system start`, then see what was done with `container ls -a`",
      cause: err,
    });
  }
  if (e.code === "unavailable" && /ECONNREFUSED|ENOENT|connect/i.test(e.message)) return notRunning(err);
  return e;
}

/** A unary call whose failure is already explained. */
export async function request<K extends keyof Methods & string>(
  client: ApiClient,
  method: K,
  req: RequestOf<Methods[K]>,
  options?: CallOptions,
): Promise<ResponseOf<Methods[K]>> {
  try {
    return await client.unary(method, req, options);
  } catch (err) {
    throw explain(err);
  }
}

/** A server-streaming call of `{ data }` chunks as a Readable, with backpressure onto the call (archives: cp, export, image save). */
export function readChunks<K extends keyof Methods & string>(client: ApiClient, method: K, req: RequestOf<Methods[K]>): Readable {
  const out = new PassThrough();
  const call = client.stream(method, {
    message: (chunk) => {
      if (!out.write((chunk as { data: Uint8Array }).data)) {
        call.pause();
        out.once("drain", () => call.resume());
      }
    },
    end: () => out.end(),
    error: (err) => out.destroy(explain(err)),
  });
  call.write(req);
  call.end();
  return out;
}
