// The shape of a service as ts-proto's generic definitions
// describe it (outputServices=generic-definitions), independent of any gRPC
// library. The apiserver adapts it for its grpc-js server (lib/grpc); the CLI
// calls it over node:http2 (lib/grpc/http2-client.ts).
import type { BinaryWriter } from "@bufbuild/protobuf/wire";

export interface MessageType<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: Uint8Array, length?: number): T;
}

export interface MethodDefinition<Req = unknown, Res = unknown> {
  /** The method's name in the .proto, e.g. "CreateContainer". */
  readonly name: string;
  readonly requestType: MessageType<Req>;
  readonly requestStream: boolean;
  readonly responseType: MessageType<Res>;
  readonly responseStream: boolean;
}

export interface ServiceDefinition {
  /** The package-qualified service name, e.g. "container.apiserver.v1.ContainerService". */
  readonly fullName: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each method has its own message types
  readonly methods: Readonly<Record<string, MethodDefinition<any, any>>>;
}

export type RequestOf<M> = M extends { requestType: MessageType<infer Req> } ? Req : never;
export type ResponseOf<M> = M extends { responseType: MessageType<infer Res> } ? Res : never;

/** The HTTP/2 path gRPC calls a method on. */
export function methodPath(service: ServiceDefinition, method: MethodDefinition): string {
  return `/${service.fullName}/${method.name}`;
}
