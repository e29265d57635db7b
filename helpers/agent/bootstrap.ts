// The host end of the bootstrap channel (BootstrapRequest in agent.proto):
// vminitd dials this port as soon as it listens, the host writes the
// container's mounts and process once it is asked to start, and the guest
// answers with `started` (or `failed`) and later `exited`. No round trip on
// the cold-start path waits for the host to dial the agent.
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { ContainerError, ERROR_CODES, type ErrorCode } from "../../lib/errors/index.js";
import { acceptOne } from "../hypervisor/accept.js";
import type { VirtualMachine } from "../hypervisor/types.js";
import { BootstrapEvent, BootstrapRequest, type Failure, type WaitProcessResponse } from "./gen/agent.js";

/** Host vsock port vminitd fetches its bootstrap request from. */
export const BOOTSTRAP_PORT = 1026;

export function bootstrapKernelArg(port = BOOTSTRAP_PORT): string {
  return `vminitd.bootstrap=${port}`;
}

export interface BootstrapChannel {
  /**
   * Sends the request (at most once; it waits for the guest's connection) and
   * resolves with the process's pid, or rejects with the guest's failure.
   */
  start(request: BootstrapRequest): Promise<number>;
  /** Resolves once the process has exited and its output is drained; rejects if the channel ends first. */
  exited(): Promise<WaitProcessResponse>;
}

function failureError(f: Failure): ContainerError {
  const code: ErrorCode = (ERROR_CODES as readonly string[]).includes(f.code) ? (f.code as ErrorCode) : "internal";
  return new ContainerError(code, f.message, f.hint ? { hint: f.hint } : {});
}

/**
 * Splits a byte stream into varint-length-prefixed messages. Written here
 * because @bufbuild/protobuf's delimited-message helpers belong to its
 * reflection API, which the generated code does not use.
 */
export function delimitedReader(onMessage: (bytes: Uint8Array) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (;;) {
      const reader = new BinaryReader(pending);
      let length: number;
      try {
        length = reader.uint32();
      } catch {
        return; // the varint is not complete yet
      }
      if (pending.length - reader.pos < length) return;
      onMessage(pending.subarray(reader.pos, reader.pos + length));
      pending = pending.subarray(reader.pos + length);
    }
  };
}

export function encodeDelimited(request: BootstrapRequest): Uint8Array {
  return new BinaryWriter().bytes(BootstrapRequest.encode(request).finish()).finish();
}

/** Listens on the bootstrap port; call before the VM starts. */
export async function listenBootstrap(vm: VirtualMachine, port = BOOTSTRAP_PORT): Promise<BootstrapChannel> {
  const accepted = await acceptOne(vm, port, "the bootstrap channel");
  const connected = accepted.conn;
  // One connection per boot.
  void connected.finally(() => accepted.close()).catch(() => undefined);

  let onStarted: { resolve(pid: number): void; reject(err: unknown): void } | undefined;
  let onExited: { resolve(r: WaitProcessResponse): void; reject(err: unknown): void } | undefined;
  const started = new Promise<number>((resolve, reject) => (onStarted = { resolve, reject }));
  const exited = new Promise<WaitProcessResponse>((resolve, reject) => (onExited = { resolve, reject }));
  started.catch(() => undefined);
  exited.catch(() => undefined);

  void connected.then(
    (conn) => {
      conn.on(
        "data",
        delimitedReader((bytes) => {
          const ev = BootstrapEvent.decode(bytes);
          if (ev.started) onStarted?.resolve(ev.started.pid);
          if (ev.exited) onExited?.resolve(ev.exited);
          if (ev.failed) {
            const err = failureError(ev.failed);
            onStarted?.reject(err);
            onExited?.reject(err);
          }
        }),
      );
      const ended = (): void => {
        const err = new ContainerError("unavailable", "the guest closed the bootstrap channel");
        onStarted?.reject(err);
        onExited?.reject(err);
      };
      conn.on("close", ended);
      conn.on("end", ended);
      conn.on("error", ended);
    },
    (err: unknown) => {
      onStarted?.reject(err);
      onExited?.reject(err);
    },
  );

  let sent = false;
  return {
    start: async (request) => {
      if (!sent) {
        sent = true;
        (await connected).write(encodeDelimited(request));
      }
      return started;
    },
    exited: () => exited,
  };
}
