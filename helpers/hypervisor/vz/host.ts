// The VM host: one process per VM, started by VzMachine under the Node copy
// signed with com.apple.security.virtualization. It owns the VZVirtualMachine
// (through the addon) and relays between it and its parent over IPC. It is
// the VM's host process (pids()[0]): killing it ends the VM, and it ends
// itself once the VM has stopped or its parent has gone.
import { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { fromAddonError, loadAddon, type AddonMachine, type BridgeEvent } from "./addon.js";
import type { FromHost, ToHost } from "./protocol.js";

const ENDS: ReadonlySet<string> = new Set(["stopped", "guestStopped", "crashed"]);

function send(message: FromHost, handle?: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(message, handle, {}, () => resolve());
  });
}

/** One bridge event as a message; a descriptor becomes a socket handle (closed here once sent). */
export async function relay(event: BridgeEvent, deliver: (message: FromHost, handle?: Socket) => Promise<void>): Promise<void> {
  const message: FromHost = { kind: event.kind };
  if (event.request != null) message.request = event.request;
  if (event.port != null) message.port = event.port;
  if (event.error != null) message.error = event.error;
  if (event.fd == null) return deliver(message);
  const socket = new Socket({ fd: event.fd, readable: true, writable: true });
  try {
    await deliver(message, socket);
  } finally {
    socket.destroy();
  }
}

function main(): void {
  let machine: AddonMachine | undefined;
  // Events are relayed in order; after the VM's end the host exits.
  let chain = Promise.resolve();
  const onEvent = (event: BridgeEvent): void => {
    chain = chain.then(() => relay(event, send));
    if (ENDS.has(event.kind)) void chain.then(() => process.exit(0));
  };
  process.on("message", (msg: ToHost) => {
    switch (msg.op) {
      case "create":
        try {
          machine = new (loadAddon().VzMachine)(msg.options, onEvent);
          void send({ kind: "created" });
        } catch (err) {
          void send({ kind: "createFailed", error: JSON.stringify(fromAddonError(err).toJSON()) }).then(() => process.exit(1));
        }
        return;
      case "start":
      case "stop":
        machine?.[msg.op](msg.request);
        return;
      case "connect":
        machine?.connect(msg.request, msg.port);
        return;
      case "listen":
      case "unlisten":
        machine?.[msg.op](msg.port);
        return;
    }
  });
  // The parent (runtime helper) is gone: nobody can use this VM any more.
  process.on("disconnect", () => process.exit(0));
}

// Only as a process of its own (the parent forks it with an IPC channel).
if (process.send && process.argv[1] === fileURLToPath(import.meta.url)) main();
