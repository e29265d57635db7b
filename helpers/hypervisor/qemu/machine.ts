// One VM: the vhost-device-vsock backend and QEMU, their lifecycle, and the
// vsock endpoints. Every exit path (guest power-off, stop(), a crash, a start
// that failed) ends in finalize(), which releases the backend, the sockets
// and the pid files, then publishes the stopped state.
import { closeSync, constants as fsConstants, openSync } from "node:fs";
import { readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { ContainerError } from "../../../lib/errors/index.js";
import type { Logger } from "../../../lib/log/index.js";
import { consoleShowsPanic } from "../console.js";
import type { VirtualMachine, VmConfig, VmExitReason, VmListener, VmState } from "../types.js";
import { spawnChild, type ChildExit, type SpawnedChild } from "./child.js";
import { qemuArgs, STATE_FILES, vsockBackendArgs, type Accelerator } from "./command-line.js";
import { QmpClient } from "./qmp.js";
import { assertPort, dialVsock, listenVsock, type UnixListener } from "./vsock.js";

export interface MachineOptions {
  /** Paths already absolute and checked. */
  config: VmConfig;
  accel: Accelerator;
  qemuBinary: string;
  backendBinary: string;
  logger: Logger;
  /** SIGTERM -> SIGKILL grace in stop(). */
  stopGraceMs: number;
  /** How long a guest port may take to accept or refuse a dial. */
  dialTimeoutMs: number;
  /** How long QEMU and the backend may take to come up. */
  startTimeoutMs: number;
}

type Phase = "created" | "starting" | "running" | "stopping" | "stopped";
type Stopped = Extract<VmState, { kind: "stopped" }>;

/** The longest unix socket path bind/connect take (sun_path minus the NUL). */
const MAX_SOCKET_PATH = 107;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function listenerFileName(port: number): string {
  return `${STATE_FILES.vsockSocket}_${port}`;
}

/**
 * Kills processes an earlier owner of this state dir left behind (their pid
 * files name them; a process counts as ours only if its cwd is the state dir).
 */
export async function reapStaleProcesses(stateDir: string): Promise<number[]> {
  const killed: number[] = [];
  for (const file of [STATE_FILES.qemuPid, STATE_FILES.backendPid]) {
    const pid = Number((await readFile(join(stateDir, file), "utf8").catch(() => "")).trim());
    if (!Number.isInteger(pid) || pid <= 1) continue;
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
    if (cwd !== stateDir) continue;
    try {
      process.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // already gone
    }
  }
  return killed;
}

/** Removes the files this backend creates in a VM's state dir (not the dir, not foreign files). */
export async function removeStateFiles(stateDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(stateDir);
  } catch {
    return;
  }
  const ours = new Set<string>([STATE_FILES.vhostSocket, STATE_FILES.vsockSocket, STATE_FILES.qemuPid, STATE_FILES.backendPid]);
  const listenerPrefix = `${STATE_FILES.vsockSocket}_`;
  await Promise.all(
    names
      .filter((n) => ours.has(n) || (n.startsWith(listenerPrefix) && /^\d+$/.test(n.slice(listenerPrefix.length))))
      .map((n) => rm(join(stateDir, n), { force: true })),
  );
}

export class QemuMachine implements VirtualMachine {
  readonly id: string;
  private phase: Phase = "created";
  private current: VmState = { kind: "created" };
  private qemu: SpawnedChild | undefined;
  private backend: SpawnedChild | undefined;
  private qmp: QmpClient | undefined;
  private readonly listeners = new Map<number, UnixListener>();
  private readonly pendingListens = new Set<number>();
  private startPromise: Promise<void> | undefined;
  private finalizing: Promise<void> | undefined;
  private stopRequested = false;
  private backendFailed = false;
  private killTimer: NodeJS.Timeout | undefined;
  private consoleOffset = 0;
  private dirFd: number | undefined;
  private readonly log: Logger;
  private readonly exit: Promise<Stopped>;
  private resolveExit!: (state: Stopped) => void;

  constructor(private readonly options: MachineOptions) {
    this.id = options.config.id;
    this.log = options.logger.child({ vm: options.config.id });
    this.exit = new Promise((resolve) => (this.resolveExit = resolve));
  }

  state(): VmState {
    return this.current;
  }

  pids(): number[] {
    return [this.qemu, this.backend].filter((c): c is SpawnedChild => c !== undefined && c.alive()).map((c) => c.pid);
  }

  waitForExit(): Promise<Stopped> {
    return this.exit;
  }

  async start(): Promise<void> {
    if (this.phase !== "created") {
      throw new ContainerError("invalidState", `cannot start VM ${this.id}: it is ${this.current.kind}`);
    }
    this.phase = "starting";
    this.startPromise = this.launch();
    return this.startPromise;
  }

  async stop(): Promise<void> {
    switch (this.phase) {
      case "created":
        await this.finalize("stopped");
        return;
      case "starting":
        await this.startPromise?.catch(() => {});
        return this.stop();
      case "running":
        this.phase = "stopping";
        this.stopRequested = true;
        this.killQemu("SIGTERM");
        this.killTimer = setTimeout(() => this.killQemu("SIGKILL"), this.options.stopGraceMs);
        await this.exit;
        return;
      case "stopping":
      case "stopped":
        await this.exit;
        return;
    }
  }

  /** Ends the VM at once with SIGKILL (the KVM probe's time limit); reason `stopped`. */
  async kill(): Promise<void> {
    if (this.phase === "starting") await this.startPromise?.catch(() => {});
    if (this.phase === "running" || this.phase === "stopping") {
      this.phase = "stopping";
      this.stopRequested = true;
      this.killQemu("SIGKILL");
    }
    if (this.phase === "created") await this.finalize("stopped");
    await this.exit;
  }

  async dial(port: number): Promise<Duplex> {
    assertPort(port);
    if (this.phase !== "running") {
      throw new ContainerError("invalidState", `cannot dial port ${port} of VM ${this.id}: it is ${this.current.kind}`);
    }
    return dialVsock(this.hostPath(STATE_FILES.vsockSocket), port, { timeoutMs: this.options.dialTimeoutMs });
  }

  async listen(port: number): Promise<VmListener> {
    assertPort(port);
    if (this.phase === "stopping" || this.phase === "stopped" || this.finalizing) {
      throw new ContainerError("invalidState", `cannot listen on port ${port} of VM ${this.id}: it is ${this.current.kind}`);
    }
    if (this.listeners.has(port) || this.pendingListens.has(port)) {
      throw new ContainerError("exists", `VM ${this.id} already listens on host vsock port ${port}`);
    }
    this.pendingListens.add(port);
    let listener: UnixListener;
    try {
      listener = await listenVsock(this.hostPath(listenerFileName(port)), () => {
        if (this.listeners.get(port) === listener) this.listeners.delete(port);
      });
    } finally {
      this.pendingListens.delete(port);
    }
    if (this.finalizing) {
      await listener.close();
      throw new ContainerError("invalidState", `VM ${this.id} stopped while it started listening on port ${port}`);
    }
    this.listeners.set(port, listener);
    return listener;
  }

  // --- lifecycle ---------------------------------------------------------------

  private async launch(): Promise<void> {
    const { config } = this.options;
    const deadline = Date.now() + this.options.startTimeoutMs;
    try {
      await rm(join(config.stateDir, STATE_FILES.vhostSocket), { force: true });
      await rm(join(config.stateDir, STATE_FILES.vsockSocket), { force: true });
      this.consoleOffset = await stat(config.consoleLogPath).then((s) => s.size, () => 0);

      const backend = spawnChild({
        name: "vhost-device-vsock",
        binary: this.options.backendBinary,
        args: vsockBackendArgs(),
        cwd: config.stateDir,
        logger: this.log,
      });
      this.backend = backend;
      void backend.exited.then((exit) => this.onBackendExit(exit));
      await writeFile(join(config.stateDir, STATE_FILES.backendPid), `${backend.pid}\n`);
      await this.waitForBackendSocket(backend, deadline);

      const qemu = spawnChild({
        name: "qemu",
        binary: this.options.qemuBinary,
        args: qemuArgs({ config, accel: this.options.accel }),
        cwd: config.stateDir,
        logger: this.log,
        extraPipes: 1,
        // What QEMU says when stop() sends SIGTERM.
        expectedStderr: /terminating on signal/,
      });
      this.qemu = qemu;
      const startedAt = Date.now();
      // One line a second at most: a guest writing to a full host disk fails
      // many requests at once (each an I/O error in the guest: werror=report).
      let ioErrorLoggedAt = 0;
      let ioErrorsSince = 0;
      const qmp = new QmpClient(qemu.process.stdio[3] as Duplex, (ev) => {
        if (ev.event !== "BLOCK_IO_ERROR") {
          this.log.debug("qmp event", { event: ev.event, data: ev.data });
        } else if (Date.now() - ioErrorLoggedAt < 1000) {
          ioErrorsSince++;
        } else {
          this.log.warn("a disk operation of the VM failed on the host", { ...ev.data, alsoFailedSinceLastLine: ioErrorsSince });
          ioErrorLoggedAt = Date.now();
          ioErrorsSince = 0;
        }
      });
      this.qmp = qmp;
      void qemu.exited.then((exit) => this.onQemuExit(exit));

      // A command is answered by QEMU's main loop, which runs only once the
      // machine is built (kernel loaded, devices realized, backend connected).
      await this.raceStart(
        (async () => {
          await qmp.handshake();
          await qmp.execute("query-status");
        })(),
        deadline,
      );
      if (this.finalizing) throw new ContainerError("unavailable", "the VM exited while starting");
      this.phase = "running";
      this.current = { kind: "running", startedAt };
      this.log.debug("vm running", { pids: this.pids(), accel: this.options.accel, ms: Date.now() - startedAt });
    } catch (err) {
      const detail = [this.qemu?.stderrTail(), this.backend?.stderrTail()].filter(Boolean).join("").trim();
      await this.finalize("crashed");
      if (err instanceof ContainerError && err.code === "timeout") throw err;
      throw new ContainerError("unavailable", `VM ${this.id} failed to start${detail ? `: ${detail}` : ""}`, {
        hint: "check that QEMU and vhost-device-vsock work (`npm run setup`), and see the VM console log",
        cause: err,
      });
    }
  }

  private async raceStart(work: Promise<void>, deadline: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ContainerError("timeout", `VM ${this.id} did not start within ${this.options.startTimeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
    });
    const died = (this.qemu?.exited ?? new Promise<never>(() => {})).then((exit) => {
      throw new ContainerError("unavailable", `QEMU exited while starting (${describeExit(exit)})`);
    });
    try {
      await Promise.race([work, timeout, died]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async waitForBackendSocket(backend: SpawnedChild, deadline: number): Promise<void> {
    const path = join(this.options.config.stateDir, STATE_FILES.vhostSocket);
    for (;;) {
      if (await stat(path).then((s) => s.isSocket(), () => false)) return;
      if (!backend.alive()) throw new ContainerError("unavailable", "vhost-device-vsock exited while starting");
      if (Date.now() > deadline) throw new ContainerError("timeout", "vhost-device-vsock did not create its socket in time");
      await delay(2);
    }
  }

  private killQemu(signal: NodeJS.Signals): void {
    this.qemu?.kill(signal);
  }

  private onBackendExit(exit: ChildExit): void {
    if (this.finalizing || this.stopRequested) return;
    // Without its vsock device the guest cannot be reached: end the VM.
    this.backendFailed = true;
    this.log.error("vsock backend exited; stopping the VM", { exit: describeExit(exit) });
    this.killQemu("SIGKILL");
  }

  private async onQemuExit(exit: ChildExit): Promise<void> {
    const reason = await this.exitReason(exit);
    this.log.info("qemu exited", { exit: describeExit(exit), reason, shutdown: this.qmp?.shutdownEvent() });
    await this.finalize(reason);
  }

  private async exitReason(exit: ChildExit): Promise<VmExitReason> {
    if (this.stopRequested) return "stopped";
    if (this.backendFailed) return "crashed";
    const shutdown = this.qmp?.shutdownEvent();
    if (shutdown && !shutdown.guest) return "stopped"; // a signal from the host, or QMP quit
    if (shutdown || exit.code === 0) return (await consoleShowsPanic(this.options.config.consoleLogPath, this.consoleOffset)) ? "crashed" : "guestShutdown";
    return "crashed";
  }

  private finalize(reason: VmExitReason): Promise<void> {
    this.finalizing ??= (async () => {
      this.phase = "stopping";
      clearTimeout(this.killTimer);
      this.qmp?.close();
      await Promise.all([...this.listeners.values()].map((l) => l.close()));
      this.listeners.clear();
      await Promise.all([this.reap(this.qemu), this.reap(this.backend)]);
      await removeStateFiles(this.options.config.stateDir);
      if (this.dirFd !== undefined) {
        closeSync(this.dirFd);
        this.dirFd = undefined;
      }
      const stopped: Stopped = { kind: "stopped", exitedAt: Date.now(), reason };
      this.current = stopped;
      this.phase = "stopped";
      this.resolveExit(stopped);
    })();
    return this.finalizing;
  }

  /** Ends a child if still running: SIGTERM, then SIGKILL after a moment. */
  private async reap(child: SpawnedChild | undefined): Promise<void> {
    if (!child) return;
    if (child.alive()) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 1000);
      await child.exited;
      clearTimeout(timer);
    } else {
      await child.exited;
    }
  }

  /** A socket path in stateDir short enough for bind/connect. */
  private hostPath(name: string): string {
    const direct = join(this.options.config.stateDir, name);
    if (Buffer.byteLength(direct) <= MAX_SOCKET_PATH) return direct;
    // Too long: reach the directory through an fd we hold open.
    this.dirFd ??= openSync(this.options.config.stateDir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    return `/proc/self/fd/${this.dirFd}/${name}`;
  }
}

export function describeExit(exit: ChildExit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}
