// Small glue between grpc-js callbacks and async code, shared by every host
// process: errors cross the wire as ContainerErrors (lib/errors) both ways.
import { chmod, mkdir, rm } from "node:fs/promises";
import { dirname } from "node:path";
import {
  credentials,
  Server,
  ServerCredentials,
  type CallOptions,
  type ClientUnaryCall,
  type handleBidiStreamingCall,
  type handleClientStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  Metadata,
  type ServiceDefinition as GrpcServiceDefinition,
  type ServiceError,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { methodPath, type RequestOf, type ResponseOf, type ServiceDefinition } from "./definition.js";
import {
  asContainerError,
  CODE_METADATA_KEY,
  ContainerError,
  fromGrpcError,
  grpcStatusOf,
  HINT_METADATA_KEY,
} from "../errors/index.js";

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** The gRPC error a server sends for `err`: status code, message, and the code's name and hint as metadata. */
export function toGrpcError(err: unknown): Partial<ServiceError> {
  const e = asContainerError(err);
  const metadata = new Metadata();
  metadata.set(CODE_METADATA_KEY, e.code);
  if (e.hint !== undefined) metadata.set(HINT_METADATA_KEY, e.hint);
  return { code: grpcStatusOf(e.code), details: e.message, metadata };
}

/** Promise form of a generated client's unary method; failures are ContainerErrors. */
export function call<Req, Res>(
  method: UnaryMethod<Req, Res>,
  client: object,
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions> = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, metadata, options, (err, res) => {
      if (err) reject(fromGrpcError(err));
      else resolve(res);
    });
  });
}

/** A unary handler from an async function; thrown errors become typed gRPC statuses. */
export function unary<Req, Res>(fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (serverCall, callback) => {
    fn(serverCall.request, serverCall).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toGrpcError(err)),
    );
  };
}

/** The grpc-js handler type of one method of a generic definition. */
type HandlerOf<M> = M extends { requestStream: true; responseStream: true }
  ? handleBidiStreamingCall<RequestOf<M>, ResponseOf<M>>
  : M extends { requestStream: true }
    ? handleClientStreamingCall<RequestOf<M>, ResponseOf<M>>
    : M extends { responseStream: true }
      ? handleServerStreamingCall<RequestOf<M>, ResponseOf<M>>
      : handleUnaryCall<RequestOf<M>, ResponseOf<M>>;

/** What a grpc-js server implements for a service given as a generic definition. */
export type ServerOf<S extends ServiceDefinition> = { [K in keyof S["methods"]]: HandlerOf<S["methods"][K]> };

/** A generic definition as grpc-js's Server.addService takes it. */
export function grpcService<S extends ServiceDefinition>(
  service: S,
  implementation: ServerOf<S>,
): [GrpcServiceDefinition, UntypedServiceImplementation] {
  const definition: Record<string, GrpcServiceDefinition[string]> = {};
  for (const [key, m] of Object.entries(service.methods)) {
    definition[key] = {
      path: methodPath(service, m),
      originalName: key,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      requestSerialize: (v: unknown) => Buffer.from(m.requestType.encode(v).finish()),
      requestDeserialize: (b: Buffer) => m.requestType.decode(b),
      responseSerialize: (v: unknown) => Buffer.from(m.responseType.encode(v).finish()),
      responseDeserialize: (b: Buffer) => m.responseType.decode(b),
    };
  }
  return [definition, implementation as unknown as UntypedServiceImplementation];
}

/** Client options for a unix socket peer on this host. */
export function unixTarget(path: string): string {
  return `unix:${path}`;
}

export const insecure = credentials.createInsecure;

/**
 * Binds `server` to a unix socket only this user can open: the directory is
 * made 0700 and the socket 0600. A stale socket file is replaced; callers check
 * first that no live server owns it.
 */
export async function bindUnix(server: Server, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // mkdir leaves an existing directory's mode alone; the directory is what keeps
  // others out while the socket's own mode is still the umask's.
  await chmod(dirname(path), 0o700);
  await rm(path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(unixTarget(path), ServerCredentials.createInsecure(), (err) => {
      if (err) reject(new ContainerError("unavailable", `cannot listen on ${path}: ${err.message}`, { cause: err }));
      else resolve();
    });
  });
  await chmod(path, 0o600);
}

/** Lets calls in flight finish (replies already sent get out), forcing the rest after `graceMs`. */
export function shutdownServer(server: Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export { Server };
