// One container's life inside its runtime helper: boot the VM; on start, hand
// vminitd the rootfs mount and the process over the bootstrap channel (no
// round trip on the cold-start path); carry its stdio over vsock; record the
// exit status; and take the VM down. The agent's gRPC service is dialed only
// for signals and clean stops. The gRPC service (service.ts) is a thin layer
// over this.
import { once } from "node:events";
import { finished as streamFinished } from "node:stream/promises";
import { createWriteStream, type WriteStream } from "node:fs";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { ContainerError, asContainerError, startFailureStatus } from "../../lib/errors/index.js";
import { writeJsonAtomic } from "../../lib/fs/index.js";
import { sleep } from "../../lib/fs/read.js";
import type { Logger } from "../../lib/log/index.js";
import { bootstrapKernelArg, listenBootstrap } from "../agent/bootstrap.js";
import { acceptOne } from "../hypervisor/accept.js";
import { agentLogKernelArg, watchAgentLog } from "../agent/ready.js";
import type { BootstrapRequest } from "../agent/gen/agent.js";
import { AGENT_PORT, type AgentClient, type MountRequest, type ProcessSpec, type StatsResponse } from "../agent/types.js";
import type { Hypervisor, VirtualMachine } from "../hypervisor/types.js";
import { latestInOrder } from "./latest.js";
import { DEFAULT_ISOLATION, EXIT_FILE, STDIO_LOG_FILE, fallbackExitPath, VMINITD_LOG_FILE, type Emulator, type ExitRecord, type ProcessConfig, type RuntimeConfig } from "./config.js";

/** Where the rootfs disk (the second disk, /dev/vdb) is mounted in the guest. */
export const GUEST_ROOTFS = "/run/container/rootfs";
const ROOTFS_DEVICE = "/dev/vdb";
/** Where the VM's Rosetta share (virtiofs tag `rosetta`) is mounted in the guest; /run is a tmpfs. */
export const GUEST_ROSETTA = "/run/rosetta";
const PROCESS_ID = "init";
/** Host vsock ports the guest dials for the process's stdio. */
const STDIO_PORTS = { stdin: 2000, stdout: 2001, stderr: 2002 } as const;
/** Exec n uses host vsock ports EXEC_PORT_BASE + 3n (stdin), +1 (stdout), +2 (stderr). */
const EXEC_PORT_BASE = 3000;
/** Copy n (cp, export) streams over host vsock port COPY_PORT_BASE + n, far above the exec ports. */
const COPY_PORT_BASE = 1 << 20;
/** TCG boots are slow and a loaded 2-core machine slower still. */
const AGENT_READY_TIMEOUT_MS = 60_000;
const CLEAN_SHUTDOWN_TIMEOUT_MS = 10_000;
/** How long a kill whose answer was lost waits to see the process end. */
const KILL_ANSWER_GRACE_MS = 2000;

export type ContainerPhase = "booting" | "running" | "exited" | "stopped";

export interface OutputSink {
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
  exit(code: number): void;
}

export interface ExecSpec {
  args: string[];
  env: string[];
  cwd: string;
  /** Docker's -u form, resolved in the guest. */
  user: string;
  interactive: boolean;
  /** A terminal of this size (0 × 0: unset). */
  terminal: boolean;
  size: TerminalSize;
  /** No stdio: the output is discarded and nobody waits. */
  detach: boolean;
}

export interface TerminalSize {
  rows: number;
  cols: number;
}

export interface ExecHandle {
  pid: number;
  resize(size: TerminalSize): Promise<void>;
  writeStdin(chunk: Buffer): void;
  closeStdin(): void;
  kill(signal: number): Promise<void>;
}

export interface RuntimeContainer {
  phase(): ContainerPhase;
  processPid(): number;
  vmPids(): number[];
  /** Resolves once the process runs; throws what stopped it from starting. */
  start(): Promise<number>;
  /** Resolves with the exit status (immediately when known). */
  wait(): Promise<ExitRecord>;
  kill(signal: number): Promise<void>;
  writeStdin(chunk: Buffer): void;
  closeStdin(): void;
  /** Adds an output sink; returns its removal. A sink added after the exit gets the exit at once. */
  attach(sink: OutputSink): () => void;
  /** A tar stream of `path` in the running container (the agent's CopyOut). */
  copyOut(path: string): AsyncGenerator<Buffer>;
  /** Unpacks the tar from `source` at `path` in the running container (the agent's CopyIn). */
  copyIn(path: string, contents: boolean, source: AsyncIterable<Buffer>): Promise<void>;
  /** The container's cgroup counters; invalidState unless it runs. */
  stats(): Promise<StatsResponse>;
  /** The terminal's new size; before the start, the size it starts with. Ignored without a terminal. */
  resize(size: TerminalSize): Promise<void>;
  /** Runs another process in the running container; `sink` gets its output and exit status. */
  exec(spec: ExecSpec, sink: OutputSink): Promise<ExecHandle>;
  /** Stops the VM (cleanly unless forced) and resolves when everything is released. */
  stop(force: boolean): Promise<void>;
  /** Resolves when the VM is gone and the exit is recorded: the helper may end. */
  done(): Promise<void>;
}

/**
 * The bootstrap request's mounts and binfmt_misc rules: the rootfs, and the
 * emulator of an image of another architecture. vminitd mounts (creating the
 * targets) in order, in its own mount namespace, before it registers the
 * rules; Rosetta's rule has flag F, which opens the interpreter at
 * registration, so its share is mounted first.
 */
export function guestSetup(emulator: Emulator | undefined): Pick<BootstrapRequest, "mounts" | "binfmt"> {
  const rootfs: MountRequest = { source: ROOTFS_DEVICE, target: GUEST_ROOTFS, fstype: "ext4", options: [] };
  switch (emulator?.kind) {
    case undefined:
      return { mounts: [rootfs], binfmt: [] };
    case "qemu-user":
      return { mounts: [rootfs], binfmt: [{ imageArch: emulator.imageArch, interpreter: emulator.interpreter }] };
    case "rosetta":
      return {
        mounts: [{ source: "rosetta", target: GUEST_ROSETTA, fstype: "virtiofs", options: ["ro"] }, rootfs],
        binfmt: [{ rosetta: true, interpreter: `${GUEST_ROSETTA}/rosetta` }],
      };
  }
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export async function bootContainer(
  config: RuntimeConfig,
  hypervisor: Hypervisor,
  logger: Logger,
): Promise<RuntimeContainer> {
  const vm: VirtualMachine = await hypervisor.create({
    ...config.vm,
    kernelArgs: [...config.vm.kernelArgs, agentLogKernelArg(), bootstrapKernelArg()],
    ...(config.process.emulator?.kind === "rosetta" ? { rosetta: true } : {}),
  });
  // Everything the guest dials is listened for before it boots.
  const agentListening = watchAgentLog(vm, { path: join(config.bundleDir, VMINITD_LOG_FILE), logger });
  const bootstrap = await listenBootstrap(vm);
  const wanted = { stdin: config.process.interactive, stdout: true, stderr: !config.process.terminal };
  const stdio = await Promise.all(
    (["stdin", "stdout", "stderr"] as const).map(async (name) => (wanted[name] ? await acceptOne(vm, STDIO_PORTS[name], `its ${name}`) : undefined)),
  );
  await vm.start();
  logger.info("vm started", { pids: vm.pids() });

  let phase: ContainerPhase = "booting";
  let pid = 0;
  let stdin: Duplex | undefined;
  // stdin that arrives before the guest has connected the stream waits here.
  const pendingStdin: Buffer[] = [];
  let stdinClosed = false;
  const sinks = new Set<OutputSink>();
  const exited = deferred<ExitRecord>();
  const finished = deferred<void>();
  let exitRecord: ExitRecord | undefined;
  let starting: Promise<number> | undefined;
  let stopping: Promise<void> | undefined;
  let log: WriteStream | undefined;

  // The agent's gRPC service is only needed for signals and a clean stop, so
  // it is dialed on first use, never on the cold-start path.
  let agentConnection: Promise<AgentClient> | undefined;
  const agent = (): Promise<AgentClient> => {
    agentConnection ??= (async () => {
      const { connectAgent } = await import("../agent/client.js");
      await Promise.race([agentListening, new Promise((r) => setTimeout(r, AGENT_READY_TIMEOUT_MS))]);
      const client = await connectAgent({
        dial: () => vm.dial(AGENT_PORT),
        socketPath: join(config.runDir, "agent.sock"),
        readyTimeoutMs: AGENT_READY_TIMEOUT_MS,
      });
      logger.debug("agent connected");
      return client;
    })();
    return agentConnection;
  };

  const recordExit = async (record: ExitRecord): Promise<void> => {
    if (exitRecord) return;
    exitRecord = record;
    phase = "exited";
    // A full disk must not keep the helper from ending the container cleanly;
    // the status then goes to the runtime dir, and failing that the
    // apiserver records 137.
    await writeJsonAtomic(join(config.bundleDir, EXIT_FILE), record).catch(async (err: unknown) => {
      logger.error("could not save the exit status in the bundle", { exitCode: record.exitCode, err: asContainerError(err).message });
      await writeJsonAtomic(fallbackExitPath(config), record).catch((e: unknown) =>
        logger.error("could not save the exit status", { exitCode: record.exitCode, err: asContainerError(e).message }),
      );
    });
    for (const sink of sinks) sink.exit(record.exitCode);
    exited.resolve(record);
    logger.info("process exited", { exitCode: record.exitCode, reason: record.reason });
  };

  const closeStdioListeners = (): Promise<unknown> => Promise.all(stdio.map((l) => l?.close()));

  // The VM going away on its own ends the container whatever it was doing.
  void vm.waitForExit().then(async (state) => {
    phase = "stopped";
    if (!exitRecord) {
      const reason = state.reason === "crashed" ? "vmCrashed" : "vmStopped";
      const what = `the VM ${state.reason === "crashed" ? "crashed" : "stopped"}`;
      await recordExit({ exitCode: 137, exitedAt: state.exitedAt, reason, message: starting ? what : `${what} before the container started` });
    }
    stdin?.destroy();
    await closeStdioListeners();
    log?.end();
    // finished(), not once("close"): a log that failed (a full disk) closed long ago.
    if (log) await streamFinished(log).catch(() => undefined);
    (await agentConnection?.catch(() => undefined))?.close();
    finished.resolve();
  });

  const broadcast = (stream: "stdout" | "stderr", chunk: Buffer): void => {
    log?.write(JSON.stringify({ t: Date.now(), s: stream, d: chunk.toString("base64") }) + "\n");
    for (const sink of sinks) sink[stream](chunk);
  };

  function drain(conn: Duplex, stream: "stdout" | "stderr"): Promise<void> {
    conn.on("data", (chunk: Buffer) => broadcast(stream, chunk));
    return new Promise((resolve) => {
      conn.once("end", resolve);
      conn.once("close", resolve);
      conn.once("error", () => resolve());
    });
  }

  async function runProcess(): Promise<number> {
    log = createWriteStream(join(config.bundleDir, STDIO_LOG_FILE), { flags: "a", mode: 0o600 });
    // A full disk stops the keeping of output, not the container: attached
    // clients still get it.
    log.once("error", (err) => logger.error("the output log cannot be written; output is no longer kept", { err: err.message }));
    const [inL, outL, errL] = stdio;
    // The guest dials the streams while it creates the process.
    const drained = Promise.all([outL!.conn.then((c) => drain(c, "stdout")), errL?.conn.then((c) => drain(c, "stderr"))]);
    drained.catch(() => undefined);
    void inL?.conn.then((conn) => {
      stdin = conn;
      conn.on("error", () => undefined);
      for (const chunk of pendingStdin.splice(0)) conn.write(chunk);
      if (stdinClosed) conn.end();
    }, () => undefined);
    try {
      pid = await bootstrap.start({
        ...guestSetup(config.process.emulator),
        // The container's cgroup gets the VM's size: what `--cpus` and
        // `--memory` show inside as cpu.max and memory.max.
        resources: { cpus: config.vm.cpus, memoryBytes: BigInt(config.vm.memoryMiB) * 1024n * 1024n, pidsMax: 0n },
        process: {
          id: PROCESS_ID,
          spec: {
            args: config.process.args,
            env: config.process.env,
            cwd: config.process.cwd,
            rootfs: GUEST_ROOTFS,
            readonlyRootfs: config.process.readOnly,
            user: config.process.user,
            terminal: config.process.terminal,
            ...terminalSize,
            ...isolationOf(config.process, true),
          },
          stdinPort: inL ? STDIO_PORTS.stdin : 0,
          stdoutPort: STDIO_PORTS.stdout,
          stderrPort: errL ? STDIO_PORTS.stderr : 0,
        },
      });
    } finally {
      await closeStdioListeners();
    }
    phase = "running";
    void (async () => {
      const status = await bootstrap.exited();
      await drained;
      await recordExit({ exitCode: status.exitCode, exitedAt: Number(status.exitedAtNs / 1_000_000n) || Date.now(), reason: "exited" });
      // The guest powers itself off after reporting the exit; a throwaway
      // rootfs need not wait for that.
      await (config.autoRemove ? stop(true) : poweredOff());
    })().catch(async (err: unknown) => {
      logger.error("waiting for the process failed", { err });
      await stop(true);
    });
    return pid;
  }

  let execs = 0;
  let terminalSize: TerminalSize = { rows: 0, cols: 0 };
  let copies = 0;

  /** Listens on a fresh copy port and starts `rpc` on it; resolves with the guest's connection, or the RPC's failure. */
  async function copyChannel(rpc: (client: AgentClient, port: number) => Promise<void>): Promise<{ conn: Duplex; done: Promise<void>; close: () => Promise<void> }> {
    if (phase !== "running") throw new ContainerError("invalidState", "the container is not running");
    const client = await agent();
    const port = COPY_PORT_BASE + copies++;
    const listener = await acceptOne(vm, port, "the copy stream");
    const done = rpc(client, port);
    done.catch(() => undefined);
    try {
      // The guest dials before it does anything; an RPC that ends first failed.
      const conn = await Promise.race([
        listener.conn,
        done.then(() => {
          throw new ContainerError("internal", "the guest did not connect the copy stream");
        }),
      ]);
      return { conn, done, close: () => listener.close() };
    } catch (err) {
      await listener.close();
      throw err;
    }
  }

  async function* copyOut(path: string): AsyncGenerator<Buffer> {
    const ch = await copyChannel((client, port) => client.copyOut({ rootfs: GUEST_ROOTFS, path, port, contents: false }));
    try {
      for await (const chunk of ch.conn) yield chunk as Buffer;
      await ch.done;
    } finally {
      ch.conn.destroy();
      await ch.close();
    }
  }

  async function copyIn(path: string, contents: boolean, source: AsyncIterable<Buffer>): Promise<void> {
    const ch = await copyChannel((client, port) => client.copyIn({ rootfs: GUEST_ROOTFS, path, port, contents }));
    try {
      for await (const chunk of source) {
        if (!ch.conn.write(chunk)) await Promise.race([once(ch.conn, "drain"), once(ch.conn, "close")]);
        if (ch.conn.destroyed) break; // the guest gave up: its RPC says why
      }
      ch.conn.end();
      await ch.done;
    } finally {
      ch.conn.destroy();
      await ch.close();
    }
  }

  const resizeRunning = latestInOrder(async (size: TerminalSize) => (await agent()).resizeProcess(PROCESS_ID, size.rows, size.cols));
  async function resize(size: TerminalSize): Promise<void> {
    if (!config.process.terminal || exitRecord) return;
    if (phase !== "running") {
      terminalSize = size;
      return;
    }
    await resizeRunning(size);
  }

  async function exec(spec: ExecSpec, sink: OutputSink): Promise<ExecHandle> {
    if (phase !== "running") throw new ContainerError("invalidState", "the container is not running");
    const client = await agent();
    const n = execs++;
    const id = `exec-${n}`;
    const base = EXEC_PORT_BASE + 3 * n;
    const ports = {
      stdin: spec.interactive && !spec.detach ? base : 0,
      stdout: spec.detach ? 0 : base + 1,
      stderr: spec.detach || spec.terminal ? 0 : base + 2,
    };
    const listeners = await Promise.all(Object.values(ports).map((port) => (port ? acceptOne(vm, port, `exec ${id}`) : undefined)));
    let conns: (Duplex | undefined)[];
    try {
      await client.createProcess({
        id,
        spec: {
          args: spec.args,
          env: spec.env,
          cwd: spec.cwd,
          rootfs: GUEST_ROOTFS,
          readonlyRootfs: config.process.readOnly,
          user: spec.user,
          terminal: spec.terminal,
          ...spec.size,
          ...isolationOf(config.process, false),
        },
        stdinPort: ports.stdin,
        stdoutPort: ports.stdout,
        stderrPort: ports.stderr,
      });
      conns = await Promise.all(listeners.map((l) => l?.conn));
    } finally {
      await Promise.all(listeners.map((l) => l?.close()));
    }
    const [inConn, outConn, errConn] = conns;
    inConn?.on("error", () => undefined);
    const forward = (conn: Duplex | undefined, write: (chunk: Buffer) => void): Promise<void> =>
      conn
        ? new Promise((resolve) => {
            conn.on("data", write);
            conn.once("close", () => resolve());
            conn.once("error", () => resolve());
          })
        : Promise.resolve();
    const drained = Promise.all([forward(outConn, (c) => sink.stdout(c)), forward(errConn, (c) => sink.stderr(c))]);
    let pid: number;
    try {
      pid = await client.startProcess(id);
    } catch (err) {
      for (const c of conns) c?.destroy();
      await client.deleteProcess(id).catch(() => undefined);
      throw err;
    }
    void (async () => {
      let code = 137;
      try {
        code = (await client.waitProcess(id)).exitCode;
        await drained;
        await client.deleteProcess(id);
      } catch (err) {
        logger.debug("exec ended with its container", { id, err });
      }
      sink.exit(code);
    })();
    const resizeExec = latestInOrder((size: TerminalSize) => client.resizeProcess(id, size.rows, size.cols));
    return {
      pid,
      writeStdin: (chunk) => void inConn?.write(chunk),
      closeStdin: () => void inConn?.end(),
      kill: (signal) => client.killProcess(id, signal),
      resize: async (size) => {
        if (spec.terminal) await resizeExec(size);
      },
    };
  }

  /** Waits for the guest's own power-off (it syncs first), then releases the VM. */
  function poweredOff(): Promise<void> {
    stopping ??= (async () => {
      await guestPowerOff();
      await vm.stop();
      await finished.promise;
    })();
    return stopping;
  }

  /** Waits for the guest to power itself off, stopping the VM if it takes longer than the clean-shutdown grace. */
  async function guestPowerOff(): Promise<void> {
    const timer = setTimeout(() => void vm.stop(), CLEAN_SHUTDOWN_TIMEOUT_MS);
    await vm.waitForExit();
    clearTimeout(timer);
  }

  async function stop(force: boolean): Promise<void> {
    stopping ??= (async () => {
      if (!force && vm.state().kind === "running") {
        const client = await Promise.race([agent(), new Promise<undefined>((r) => setTimeout(() => r(undefined), 1000))]).catch(() => undefined);
        if (client) {
          try {
            await client.shutdown();
            await guestPowerOff();
          } catch (err) {
            logger.warn("clean shutdown failed; stopping the VM", { err });
          }
        }
      }
      if (force) await vm.kill();
      else await vm.stop();
      await finished.promise;
    })();
    return stopping;
  }

  return {
    phase: () => phase,
    processPid: () => pid,
    vmPids: () => vm.pids(),
    start: () => {
      if (exitRecord) {
        // A VM gone between create and start is why this start fails.
        const lost = !starting && (exitRecord.reason === "vmCrashed" || exitRecord.reason === "vmStopped");
        return Promise.reject(
          lost
            ? new ContainerError("unavailable", exitRecord.message ?? "the VM stopped", { hint: "see the VM console with `container logs --boot`" })
            : new ContainerError("invalidState", "the container has already exited"),
        );
      }
      starting ??= runProcess().catch(async (err: unknown) => {
        const e = asContainerError(err);
        await recordExit({ exitCode: startFailureStatus(e), exitedAt: Date.now(), reason: "startFailed", message: e.message });
        void stop(true);
        throw e;
      });
      return starting;
    },
    wait: () => exited.promise,
    kill: async (signal) => {
      if (exitRecord) return;
      if (phase !== "running") {
        // Nothing runs yet: a signal ends the container before it starts.
        await recordExit({ exitCode: 128 + signal, exitedAt: Date.now(), reason: "exited" });
        await stop(true);
        return;
      }
      try {
        await (await agent()).killProcess(PROCESS_ID, signal);
      } catch (err) {
        // A signal that ends the process may take the VM down before the
        // agent's answer is back (with --rm it is killed at once): the
        // process has ended, which is what the signal was for.
        const ended = await Promise.race([exited.promise.then(() => true), sleep(KILL_ANSWER_GRACE_MS).then(() => false)]);
        if (!ended) throw err;
      }
    },
    writeStdin: (chunk) => {
      if (stdin) stdin.write(chunk);
      else if (config.process.interactive && !stdinClosed) pendingStdin.push(chunk);
    },
    closeStdin: () => {
      stdinClosed = true;
      stdin?.end();
    },
    attach: (sink) => {
      if (exitRecord) {
        sink.exit(exitRecord.exitCode);
        return () => undefined;
      }
      sinks.add(sink);
      return () => sinks.delete(sink);
    },
    exec,
    resize,
    copyOut,
    copyIn,
    stats: async () => {
      if (phase !== "running") throw new ContainerError("invalidState", "the container is not running");
      return (await agent()).stats();
    },
    stop,
    done: () => finished.promise,
  };
}

const UNLIMITED = 2n ** 64n - 1n;

/**
 * The isolation fields of a process's spec. The container's first process
 * (`starts`) also carries its --init and its own settings; an exec'd one only
 * what applies per process, and joins the container's namespaces.
 */
function isolationOf(p: ProcessConfig, starts: boolean): Pick<ProcessSpec, "capAdd" | "capDrop" | "noNewPrivileges" | "rlimits" | "init" | "sandbox"> {
  const iso = p.isolation ?? DEFAULT_ISOLATION;
  const limit = (n: number): bigint => (n === -1 ? UNLIMITED : BigInt(n));
  return {
    capAdd: iso.capAdd,
    capDrop: iso.capDrop,
    noNewPrivileges: iso.noNewPrivileges ?? false,
    rlimits: iso.ulimits.map((u) => ({ type: u.type, soft: limit(u.soft), hard: limit(u.hard) })),
    init: starts && iso.init,
    sandbox: starts ? { hostname: p.hostname ?? "", tmpfs: iso.tmpfs, shmSizeBytes: BigInt(iso.shmSizeBytes), sysctls: {} } : undefined,
  };
}
