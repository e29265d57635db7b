// gRPC client for vminitd. grpc-js can only dial addresses, not hand-made
// streams, so the client talks to a private unix socket whose every
// connection is spliced onto a fresh vsock connection to the agent port.
import { createServer, type Server as NetServer, type Socket } from "node:net";
import { rm } from "node:fs/promises";
import { pipeline } from "node:stream";
import type { Duplex } from "node:stream";
import { Metadata } from "@grpc/grpc-js";
import { ContainerError } from "../../lib/errors/index.js";
import { call, insecure, unixTarget } from "../../lib/grpc/index.js";
import {
  AgentClient as GrpcAgentClient,
  MkdirRequest,
  RelayUnixRequest,
  StatRequest,
  UnmountRequest,
  WriteFileRequest,
  WriteResolvConfRequest,
} from "./gen/agent.js";
import type { AgentClient } from "./types.js";


export interface ConnectAgentOptions {
  /** Opens a stream to the agent's vsock port; rejects while the guest is not listening yet. */
  dial: () => Promise<Duplex>;
  /** Where the private splice socket lives (the VM's state dir). */
  socketPath: string;
  /** How long to keep retrying the first connection (the guest may still be booting). */
  readyTimeoutMs: number;
  /** Delay between dial attempts while the guest boots. */
  retryIntervalMs?: number;
}

async function dialWithRetry(dial: () => Promise<Duplex>, deadline: number, intervalMs: number): Promise<Duplex> {
  for (;;) {
    try {
      return await dial();
    } catch (err) {
      if (Date.now() >= deadline) {
        throw new ContainerError("timeout", "the guest agent did not answer in time", {
          hint: "see the VM console with `container logs --boot`",
          cause: err,
        });
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

/**
 * Connects to the agent, waiting up to readyTimeoutMs for it to come up, and
 * returns once it has answered a Ping.
 */
export async function connectAgent(options: ConnectAgentOptions): Promise<AgentClient> {
  const interval = options.retryIntervalMs ?? 20;
  const deadline = Date.now() + options.readyTimeoutMs;
  const sockets = new Set<Socket>();
  const splice: NetServer = createServer((local) => {
    sockets.add(local);
    local.once("close", () => sockets.delete(local));
    dialWithRetry(options.dial, Math.max(deadline, Date.now() + 1000), interval).then(
      (remote) => {
        pipeline(local, remote, local, () => {
          local.destroy();
          remote.destroy();
        });
      },
      () => local.destroy(),
    );
  });
  await rm(options.socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    splice.once("error", reject);
    splice.listen(options.socketPath, () => resolve());
  });

  const grpc = new GrpcAgentClient(unixTarget(options.socketPath), insecure(), {
    // One long-lived connection; no keepalive pings through vsock needed.
    "grpc.max_reconnect_backoff_ms": 200,
    "grpc.initial_reconnect_backoff_ms": 20,
  });
  const md = (): Metadata => new Metadata();
  const close = (): void => {
    grpc.close();
    for (const s of sockets) s.destroy();
    splice.close();
    void rm(options.socketPath, { force: true });
  };
  const client: AgentClient = {
    ping: (options) => call(grpc.ping, grpc, { memory: options?.memory ?? false }, md()),
    mount: async (req) => void (await call(grpc.mount, grpc, req, md())),
    createProcess: async (req) => void (await call(grpc.createProcess, grpc, req, md())),
    startProcess: async (id) => (await call(grpc.startProcess, grpc, { id }, md())).pid,
    waitProcess: (id) => call(grpc.waitProcess, grpc, { id }, md()),
    killProcess: async (id, signal) => void (await call(grpc.killProcess, grpc, { id, signal }, md())),
    closeProcessStdin: async (id) => void (await call(grpc.closeProcessStdin, grpc, { id }, md())),
    resizeProcess: async (id, rows, cols) => void (await call(grpc.resizeProcess, grpc, { id, rows, cols }, md())),
    stats: () => call(grpc.stats, grpc, {}, md()),
    copyOut: async (req) => void (await call(grpc.copyOut, grpc, req, md())),
    copyIn: async (req) => void (await call(grpc.copyIn, grpc, req, md())),
    deleteProcess: async (id) => void (await call(grpc.deleteProcess, grpc, { id }, md())),
    shutdown: async () => void (await call(grpc.shutdown, grpc, {}, md())),
    unmount: async (req) => void (await call(grpc.unmount, grpc, UnmountRequest.fromPartial(req), md())),
    mkdir: async (req) => void (await call(grpc.mkdir, grpc, MkdirRequest.fromPartial(req), md())),
    writeFile: async (req) => void (await call(grpc.writeFile, grpc, WriteFileRequest.fromPartial(req), md())),
    stat: (req) => call(grpc.stat, grpc, StatRequest.fromPartial(req), md()),
    sysctl: async (name, value) => (await call(grpc.sysctl, grpc, { name, value }, md())).value,
    setTime: async (timeNs) => void (await call(grpc.setTime, grpc, { timeNs }, md())),
    getenv: async (key) => {
      const res = await call(grpc.getenv, grpc, { key }, md());
      return res.present ? res.value : undefined;
    },
    setenv: async (key, value) => void (await call(grpc.setenv, grpc, { key, value }, md())),
    freeze: async () => void (await call(grpc.freeze, grpc, {}, md())),
    thaw: async () => void (await call(grpc.thaw, grpc, {}, md())),
    trim: async (path, minLength = 0n) => (await call(grpc.trim, grpc, { path, minLength }, md())).trimmedBytes,
    registerBinfmt: (req) => call(grpc.registerBinfmt, grpc, req, md()),
    linkUp: async (link) => void (await call(grpc.linkUp, grpc, { link }, md())),
    addAddress: async (link, cidr) => void (await call(grpc.addAddress, grpc, { link, cidr }, md())),
    addRoute: async (req) =>
      void (await call(grpc.addRoute, grpc, { destination: req.destination ?? "", gateway: req.gateway ?? "", link: req.link ?? "" }, md())),
    writeResolvConf: async (req) => void (await call(grpc.writeResolvConf, grpc, WriteResolvConfRequest.fromPartial(req), md())),
    writeHosts: async (rootfs, entries) => void (await call(grpc.writeHosts, grpc, { rootfs, entries }, md())),
    relayUnix: async (req) => void (await call(grpc.relayUnix, grpc, RelayUnixRequest.fromPartial(req), md())),
    stopRelay: async (id) => void (await call(grpc.stopRelay, grpc, { id }, md())),
    close,
  };
  try {
    await call(grpc.ping, grpc, { memory: false }, md(), { deadline: deadline + 1000 });
  } catch (err) {
    close();
    throw err;
  }
  return client;
}
