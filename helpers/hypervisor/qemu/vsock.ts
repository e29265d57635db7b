// Host side of the guest's virtio-vsock device, as vhost-device-vsock exposes
// it (the "hybrid vsock" convention Firecracker and Cloud Hypervisor share):
//
//  - host -> guest: connect to the unix socket `uds`, write `CONNECT <port>\n`,
//    read `OK <host-port>\n`; from then on the stream is the guest connection.
//    When nothing listens in the guest the backend closes the stream instead.
//  - guest -> host port P: the backend connects to the unix socket `uds_P`,
//    which the host must be listening on before the guest dials. (If nobody
//    listens, 0.3.0 sends the guest no reset: its connect times out.)
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { rm } from "node:fs/promises";
import type { Duplex } from "node:stream";
import { ContainerError } from "../../../lib/errors/index.js";
import type { VmListener } from "../types.js";
import { ConnectionQueue } from "../connection-queue.js";

export const MAX_VSOCK_PORT = 0xffffffff;
const MAX_REPLY_BYTES = 64;

export type ConnectReply =
  | { kind: "incomplete" }
  | { kind: "ok"; hostPort: number; rest: Buffer }
  | { kind: "error"; line: string };

/** Parses the backend's answer to `CONNECT`: the line, and whatever bytes followed it. */
export function parseConnectReply(data: Buffer): ConnectReply {
  const nl = data.indexOf(0x0a);
  if (nl < 0) {
    return data.length > MAX_REPLY_BYTES
      ? { kind: "error", line: data.subarray(0, MAX_REPLY_BYTES).toString("latin1") }
      : { kind: "incomplete" };
  }
  const line = data.subarray(0, nl).toString("latin1").replace(/\r$/, "");
  const m = /^OK (\d{1,10})$/.exec(line);
  if (!m) return { kind: "error", line };
  const hostPort = Number(m[1]);
  if (hostPort > MAX_VSOCK_PORT) return { kind: "error", line };
  return { kind: "ok", hostPort, rest: data.subarray(nl + 1) };
}

export function assertPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > MAX_VSOCK_PORT) {
    throw new ContainerError("invalidArgument", `invalid vsock port ${port}`);
  }
}

export interface DialOptions {
  /** How long the guest may take to accept or refuse. */
  timeoutMs: number;
}

/**
 * Opens a stream to `port` in the guest through the backend socket `udsPath`.
 * The returned socket is positioned just after the `OK` line; nothing is
 * lost before the caller starts reading.
 */
export function dialVsock(udsPath: string, port: number, options: DialOptions): Promise<Duplex> {
  try {
    assertPort(port);
  } catch (err) {
    return Promise.reject(err);
  }
  return new Promise<Duplex>((resolve, reject) => {
    const socket: Socket = createConnection({ path: udsPath });
    let received = Buffer.alloc(0);
    let settled = false;

    const finish = (err: ContainerError | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener("readable", onReadable);
      socket.removeListener("end", onEnd);
      socket.removeListener("error", onError);
      socket.removeListener("connect", onConnect);
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        resolve(socket);
      }
    };
    const onConnect = (): void => {
      socket.write(`CONNECT ${port}\n`);
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (!settled && (chunk = socket.read() as Buffer | null) !== null) {
        received = Buffer.concat([received, chunk]);
        const reply = parseConnectReply(received);
        if (reply.kind === "incomplete") continue;
        if (reply.kind === "error") {
          finish(new ContainerError("internal", `vsock backend answered ${JSON.stringify(reply.line)} to CONNECT ${port}`));
          return;
        }
        // Bytes the guest sent right after accepting belong to the caller.
        if (reply.rest.length > 0) socket.unshift(reply.rest);
        finish(undefined);
      }
    };
    const onEnd = (): void => {
      finish(new ContainerError("unavailable", `nothing listens on guest vsock port ${port}`));
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      // No backend socket, or a backend that drops the connection because the
      // guest's vsock driver is not up yet (early boot): try again later.
      const notReady = ["ENOENT", "ECONNREFUSED", "ECONNRESET", "EPIPE"].includes(err.code ?? "");
      finish(
        new ContainerError(notReady ? "unavailable" : "internal", `cannot reach guest vsock port ${port}: ${err.message}`, {
          cause: err,
        }),
      );
    };
    const timer = setTimeout(() => {
      finish(new ContainerError("timeout", `guest vsock port ${port} did not answer within ${options.timeoutMs} ms`));
    }, options.timeoutMs);

    socket.on("connect", onConnect);
    socket.on("readable", onReadable);
    socket.on("end", onEnd);
    socket.on("error", onError);
  });
}

export interface UnixListener extends VmListener {
  readonly path: string;
  readonly closed: boolean;
}

/** Listens on `path` (the backend's `uds_<port>`) for guest-initiated connections. */
export async function listenVsock(path: string, onClose?: () => void): Promise<UnixListener> {
  await rm(path, { force: true });
  const queue = new ConnectionQueue();
  const server: Server = createServer((socket) => queue.push(socket));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.removeListener("error", reject);
      resolve();
    });
  });
  let closing: Promise<void> | undefined;
  const listener: UnixListener = {
    path,
    get closed() {
      return closing !== undefined;
    },
    connections: () => queue,
    close: () => {
      closing ??= (async () => {
        queue.end();
        // Stops accepting; connections already handed out stay open.
        server.close();
        await rm(path, { force: true });
        onClose?.();
      })();
      return closing;
    },
  };
  return listener;
}
