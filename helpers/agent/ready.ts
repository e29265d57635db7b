// When the guest agent is ready to be dialed. vminitd sends its log to a host
// vsock port and says "listening" once its gRPC socket is bound; the host dials
// only after that. Dialing earlier is not merely wasted: a host connection
// attempt that races the guest's vsock driver coming up can wedge
// vhost-device-vsock's host-to-guest path for the rest of the boot (seen in
// about one boot in twenty-five under TCG), while guest-to-host connections
// keep working. The log itself is kept as the container's vminitd.log.
import { createWriteStream } from "node:fs";
import type { Logger } from "../../lib/log/index.js";
import type { VirtualMachine } from "../hypervisor/types.js";

/** Host vsock port vminitd sends its log to. */
export const AGENT_LOG_PORT = 1025;

/** The kernel argument that points vminitd's log at AGENT_LOG_PORT. */
export function agentLogKernelArg(port = AGENT_LOG_PORT): string {
  return `vminitd.log=${port}`;
}

export interface WatchAgentLogOptions {
  /** Where to append the log; not kept when absent. */
  path?: string;
  port?: number;
  logger?: Logger;
}

/**
 * Listens for vminitd's log connection (call before the VM starts) and
 * resolves once the agent reports that it listens. Never rejects: callers race
 * it against their own deadline.
 */
export async function watchAgentLog(vm: VirtualMachine, options: WatchAgentLogOptions = {}): Promise<void> {
  const listener = await vm.listen(options.port ?? AGENT_LOG_PORT);
  return new Promise<void>((resolve) => {
    void (async () => {
      for await (const conn of listener.connections()) {
        const file = options.path === undefined ? undefined : createWriteStream(options.path, { flags: "a", mode: 0o600 });
        // A full disk loses the rest of the log, and only that.
        file?.once("error", (err) => options.logger?.warn("vminitd's log cannot be written", { err: err.message }));
        let pending = "";
        conn.on("data", (chunk: Buffer) => {
          file?.write(chunk);
          pending += chunk.toString("utf8");
          const lines = pending.split("\n");
          pending = lines.pop() ?? "";
          if (lines.some((l) => l.includes('"msg":"listening"'))) resolve();
        });
        conn.on("error", () => undefined);
        conn.on("close", () => file?.end());
        // One connection per boot; stop accepting.
        await listener.close();
        return;
      }
    })().catch((err: unknown) => options.logger?.warn("vminitd log connection failed", { err }));
  });
}
