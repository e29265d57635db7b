// The CLI's connection to the apiserver. An absent or dead socket becomes one
// clear error with the hint to start the service.
import { Metadata } from "@grpc/grpc-js";
import { CODE_METADATA_KEY, ContainerError, asContainerError } from "../lib/errors/index.js";
import { call, insecure, unixTarget } from "../lib/grpc/index.js";
import { apiserverSocketPath } from "../lib/paths/index.js";
import { ContainerServiceClient } from "../apiserver/api/gen/apiserver.js";

export type ApiClient = InstanceType<typeof ContainerServiceClient>;

export function connect(): ApiClient {
  return new ContainerServiceClient(unixTarget(apiserverSocketPath()), insecure());
}

export function notRunning(cause?: unknown): ContainerError {
  return new ContainerError("unavailable", "the container apiserver is not running", {
    hint: "start it with `container system start`",
    cause,
  });
}

/**
 * Maps "nobody listens on the socket" to notRunning; other errors pass as they
 * are. Only an error the local gRPC client made up counts: one the apiserver
 * sent (it carries our error code) is about something further down.
 */
export function explain(err: unknown): ContainerError {
  const e = asContainerError(err);
  const cause = e.cause as { metadata?: { get(key: string): unknown[] } } | undefined;
  const fromPeer = (cause?.metadata?.get(CODE_METADATA_KEY).length ?? 0) > 0;
  if (!fromPeer && e.code === "unavailable" && /No connection established|ECONNREFUSED|ENOENT|connect/i.test(e.message)) {
    return notRunning(err);
  }
  return e;
}

type Unary<Req, Res> = Parameters<typeof call<Req, Res>>[0];

export async function request<Req, Res>(client: ApiClient, method: Unary<Req, Res>, req: Req): Promise<Res> {
  try {
    return await call(method, client, req, new Metadata());
  } catch (err) {
    throw explain(err);
  }
}
