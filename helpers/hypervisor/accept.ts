// The one connection a guest makes to a host port (the bootstrap channel,
// each stdio stream, each copy): listen before the guest dials, take the
// first connection, and stop listening when asked.
import type { Duplex } from "node:stream";
import { ContainerError } from "../../lib/errors/index.js";
import type { VirtualMachine } from "./types.js";

export interface AcceptedOne {
  /** The guest's connection; rejects if the listener closes first (the VM went away). */
  conn: Promise<Duplex>;
  close(): Promise<void>;
}

/** Listens on `port`; `what` names the connection in the error when it never comes. */
export async function acceptOne(vm: VirtualMachine, port: number, what: string): Promise<AcceptedOne> {
  const listener = await vm.listen(port);
  const conn = (async () => {
    for await (const c of listener.connections()) return c;
    throw new ContainerError("unavailable", `the guest never connected ${what}`);
  })();
  conn.catch(() => undefined);
  return { conn, close: () => listener.close() };
}
