// One VM on Virtualization.framework, as the runtime helper sees it: a VM
// host process (host.ts) that owns the VZVirtualMachine, driven over IPC.
// Listeners registered before start() are handed to the host before it boots
// the guest. Every end (stop(), a guest power-off, a crash, a failed start)
// goes through finalize(), which closes the listeners and publishes the state.
import { fork, type ChildProcess } from "node:child_process";
import { stat } from "node:fs/promises";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { ContainerError } from "../../../lib/errors/index.js";
import type { Logger } from "../../../lib/log/index.js";
import { consoleShowsPanic } from "../console.js";
import type { VirtualMachine, VmExitReason, VmListener, VmState } from "../types.js";
import { fromEnvelope, type AddonMachineOptions } from "./addon.js";
import type { FromHost, ToHost } from "./protocol.js";
import { ConnectionQueue } from "../connection-queue.js";

export interface VzMachineOptions {
  options: AddonMachineOptions;
  /** The Node binary the host runs under (signed with the virtualization entitlement). */
  node: string;
  /** host.js. */
  hostMain: string;
  logger: Logger;
  startTimeoutMs: number;
  dialTimeoutMs: number;
  /** How long stop() waits for the host before SIGKILL. */
  stopGraceMs: number;
}

type Stopped = Extract<VmState, { kind: "stopped" }>;
type Phase = "created" | "starting" | "running" | "stopping" | "stopped";

const MAX_PORT = 0xffffffff;

export function assertPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > MAX_PORT) {
    throw new ContainerError("invalidArgument", `invalid vsock port ${port}`);
  }
}

interface Pending {
  resolve(value: Socket | undefined): void;
  reject(err: ContainerError): void;
}

export class VzMachine implements VirtualMachine {
  readonly id: string;
  private phase: Phase = "created";
  private current: VmState = { kind: "created" };
  private host: ChildProcess | undefined;
  private readonly listeners = new Map<number, ConnectionQueue>();
  private readonly pending = new Map<number, Pending>();
  private nextRequest = 1;
  private startPromise: Promise<void> | undefined;
  private finalizing: Promise<void> | undefined;
  private stopRequested = false;
  private guestStopped = false;
  private consoleOffset = 0;
  private readonly log: Logger;
  private readonly exit: Promise<Stopped>;
  private resolveExit!: (state: Stopped) => void;

  constructor(private readonly vz: VzMachineOptions) {
    this.id = vz.options.id;
    this.log = vz.logger.child({ vm: this.id });
    this.exit = new Promise((resolve) => (this.resolveExit = resolve));
  }

  state(): VmState {
    return this.current;
  }

  pids(): number[] {
    const host = this.host;
    return host?.pid !== undefined && host.exitCode === null && host.signalCode === null ? [host.pid] : [];
  }

  waitForExit(): Promise<Stopped> {
    return this.exit;
  }

  start(): Promise<void> {
    if (this.phase !== "created") {
      return Promise.reject(new ContainerError("invalidState", `cannot start VM ${this.id}: it is ${this.current.kind}`));
    }
    this.phase = "starting";
    this.startPromise = this.launch();
    return this.startPromise;
  }

  async stop(): Promise<void> {
    await this.end(this.vz.stopGraceMs);
  }

  /** VZ's stop is already immediate; kill() only waits less before SIGKILL. */
  async kill(): Promise<void> {
    await this.end(0);
  }

  async dial(port: number): Promise<Duplex> {
    assertPort(port);
    if (this.phase !== "running") {
      throw new ContainerError("invalidState", `cannot dial port ${port} of VM ${this.id}: it is ${this.current.kind}`);
    }
    const socket = await this.request((request) => ({ op: "connect", request, port }), this.vz.dialTimeoutMs, `guest vsock port ${port}`);
    if (!socket) throw new ContainerError("internal", `the VM host answered a dial of port ${port} without a stream`);
    return socket;
  }

  async listen(port: number): Promise<VmListener> {
    assertPort(port);
    if (this.phase === "stopping" || this.phase === "stopped") {
      throw new ContainerError("invalidState", `cannot listen on port ${port} of VM ${this.id}: it is ${this.current.kind}`);
    }
    if (this.listeners.has(port)) throw new ContainerError("exists", `VM ${this.id} already listens on host vsock port ${port}`);
    const queue = new ConnectionQueue();
    this.listeners.set(port, queue);
    this.send({ op: "listen", port });
    return {
      connections: () => queue,
      close: async () => {
        if (queue.ended) return;
        queue.end();
        if (this.listeners.get(port) === queue) this.listeners.delete(port);
        this.send({ op: "unlisten", port });
      },
    };
  }

  // --- lifecycle ---------------------------------------------------------------

  private async launch(): Promise<void> {
    const { options } = this.vz;
    try {
      this.consoleOffset = await stat(options.consoleLogPath).then((s) => s.size, () => 0);
      const host = fork(this.vz.hostMain, [], { execPath: this.vz.node, stdio: ["ignore", "ignore", "pipe", "ipc"], serialization: "json" });
      this.host = host;
      let stderr = "";
      host.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString("utf8")).slice(-4096)));
      host.on("message", (msg: FromHost, handle?: Socket) => this.onMessage(msg, handle));
      const exited = new Promise<void>((resolve) => host.once("exit", () => resolve()));
      host.once("error", (err) => this.log.error("VM host error", { err }));
      void exited.then(() => this.onHostExit(stderr));

      const created = new Promise<void>((resolve, reject) => {
        const onMsg = (msg: FromHost): void => {
          if (msg.kind === "created") resolve();
          else if (msg.kind === "createFailed") reject(fromEnvelope((msg as { error: string }).error));
          else return;
          host.removeListener("message", onMsg);
        };
        host.on("message", onMsg);
        void exited.then(() => reject(new ContainerError("unavailable", `the VM host exited while starting${stderr ? `: ${stderr.trim()}` : ""}`)));
      });
      this.send({ op: "create", options });
      await this.withTimeout(created, this.vz.startTimeoutMs, "create");
      for (const port of this.listeners.keys()) this.send({ op: "listen", port });
      await this.request((request) => ({ op: "start", request }), this.vz.startTimeoutMs, "start");
      if (this.finalizing) throw new ContainerError("unavailable", `VM ${this.id} ended while starting`);
      this.phase = "running";
      this.current = { kind: "running", startedAt: Date.now() };
      this.log.debug("vm running", { pid: this.host?.pid });
    } catch (err) {
      this.host?.kill("SIGKILL");
      await this.finalize("crashed");
      if (err instanceof ContainerError) throw err;
      throw new ContainerError("unavailable", `VM ${this.id} failed to start`, { cause: err });
    }
  }

  private async end(graceMs: number): Promise<void> {
    if (this.phase === "starting") await this.startPromise?.catch(() => undefined);
    if (this.phase === "created") {
      await this.finalize("stopped");
      return;
    }
    if (this.phase === "running") {
      this.phase = "stopping";
      this.stopRequested = true;
      this.request((request) => ({ op: "stop", request }), graceMs + 1000, "stop").catch((err: unknown) =>
        this.log.warn("stop failed; killing the VM host", { err }),
      );
      const timer = setTimeout(() => this.host?.kill("SIGKILL"), graceMs);
      await this.exit;
      clearTimeout(timer);
      return;
    }
    if (this.phase === "stopping" && graceMs === 0) this.host?.kill("SIGKILL");
    await this.exit;
  }

  private send(message: ToHost): void {
    if (this.host?.connected) this.host.send(message);
  }

  /** Sends a request and waits for its answer (a stream, or nothing). */
  private request(make: (request: number) => ToHost, timeoutMs: number, what: string): Promise<Socket | undefined> {
    const request = this.nextRequest++;
    const answer = new Promise<Socket | undefined>((resolve, reject) => this.pending.set(request, { resolve, reject }));
    this.send(make(request));
    return this.withTimeout(answer, timeoutMs, what).finally(() => this.pending.delete(request));
  }

  private async withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ContainerError("timeout", `${what} of VM ${this.id} took more than ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private onMessage(msg: FromHost, handle: Socket | undefined): void {
    const request = "request" in msg ? msg.request : undefined;
    const error = "error" in msg && msg.error ? fromEnvelope(msg.error) : undefined;
    switch (msg.kind) {
      case "started":
      case "stopped":
      case "connected":
        if (request !== undefined) this.pending.get(request)?.resolve(handle);
        else handle?.destroy();
        return;
      case "startFailed":
      case "stopFailed":
      case "connectFailed":
        if (request !== undefined) this.pending.get(request)?.reject(error ?? new ContainerError("internal", `${msg.kind} without an error`));
        return;
      case "accepted": {
        const queue = "port" in msg && msg.port !== undefined ? this.listeners.get(msg.port) : undefined;
        if (queue && handle) queue.push(handle);
        else handle?.destroy();
        return;
      }
      case "guestStopped":
        this.guestStopped = true;
        return;
      case "crashed":
        this.log.error("the VM stopped on an error", { err: error });
        return;
    }
  }

  private async onHostExit(stderr: string): Promise<void> {
    const reason = await this.exitReason();
    this.log.info("VM host exited", { reason, stderr: stderr.trim() || undefined });
    await this.finalize(reason);
  }

  private async exitReason(): Promise<VmExitReason> {
    if (this.stopRequested) return "stopped";
    if (this.guestStopped) return (await consoleShowsPanic(this.vz.options.consoleLogPath, this.consoleOffset)) ? "crashed" : "guestShutdown";
    return "crashed";
  }

  private finalize(reason: VmExitReason): Promise<void> {
    this.finalizing ??= (async () => {
      this.phase = "stopping";
      for (const queue of this.listeners.values()) queue.end();
      this.listeners.clear();
      const gone = new ContainerError("invalidState", `VM ${this.id} stopped`);
      for (const p of this.pending.values()) p.reject(gone);
      this.pending.clear();
      const host = this.host;
      if (host && host.exitCode === null && host.signalCode === null) {
        host.kill("SIGKILL");
        await new Promise((resolve) => host.once("exit", resolve));
      }
      const stopped: Stopped = { kind: "stopped", exitedAt: Date.now(), reason };
      this.current = stopped;
      this.phase = "stopped";
      this.resolveExit(stopped);
    })();
    return this.finalizing;
  }
}
