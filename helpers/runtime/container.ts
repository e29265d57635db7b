// One container's life inside its runtime helper: boot the VM, wait for the
// agent, mount the rootfs, run the process with its stdio over vsock, record
// the exit status, and take the VM down. The gRPC service (service.ts) is a
// thin layer over this.
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { ContainerError, asContainerError } from "../../lib/errors/index.js";
import { writeJsonAtomic } from "../../lib/fs/index.js";
import type { Logger } from "../../lib/log/index.js";
import { agentLogKernelArg, watchAgentLog } from "../agent/ready.js";
import { AGENT_PORT, type AgentClient } from "../agent/types.js";
import type { Hypervisor, VirtualMachine } from "../hypervisor/types.js";
import { EXIT_FILE, STDIO_LOG_FILE, VMINITD_LOG_FILE, type ExitRecord, type RuntimeConfig } from "./config.js";

/** Where the rootfs disk (the second disk, /dev/vdb) is mounted in the guest. */
export const GUEST_ROOTFS = "/run/container/rootfs";
const ROOTFS_DEVICE = "/dev/vdb";
const PROCESS_ID = "init";
/** Host vsock ports the guest dials for the process's stdio. */
const STDIO_PORTS = { stdin: 2000, stdout: 2001, stderr: 2002 } as const;
/** TCG boots are slow and a loaded 2-core machine slower still. */
const AGENT_READY_TIMEOUT_MS = 60_000;
const CLEAN_SHUTDOWN_TIMEOUT_MS = 10_000;

export type ContainerPhase = "booting" | "ready" | "running" | "exited" | "stopped";

export interface OutputSink {
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
  exit(code: number): void;
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
  /** Stops the VM (cleanly unless forced) and resolves when everything is released. */
  stop(force: boolean): Promise<void>;
  /** Resolves when the VM is gone and the exit is recorded: the helper may end. */
  done(): Promise<void>;
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
    kernelArgs: [...config.vm.kernelArgs, agentLogKernelArg()],
  });
  const agentListening = watchAgentLog(vm, { path: join(config.bundleDir, VMINITD_LOG_FILE), logger });
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
  let stopping: Promise<void> | undefined;
  let log: WriteStream | undefined;

  // The agent and the rootfs mount are prepared while the caller attaches.
  const ready: Promise<AgentClient> = (async () => {
    // Loaded after the VM is started: gRPC's import cost overlaps the guest's boot.
    const { connectAgent } = await import("../agent/client.js");
    await Promise.race([agentListening, new Promise((r) => setTimeout(r, AGENT_READY_TIMEOUT_MS))]);
    logger.debug("agent listening");
    const agent = await connectAgent({
      dial: () => vm.dial(AGENT_PORT),
      socketPath: join(config.runDir, "agent.sock"),
      readyTimeoutMs: AGENT_READY_TIMEOUT_MS,
    });
    logger.debug("agent connected");
    await agent.mount({ source: ROOTFS_DEVICE, target: GUEST_ROOTFS, fstype: "ext4", options: [] });
    if (phase === "booting") phase = "ready";
    logger.info("agent ready");
    return agent;
  })();
  ready.catch(() => undefined);

  const recordExit = async (record: ExitRecord): Promise<void> => {
    if (exitRecord) return;
    exitRecord = record;
    phase = "exited";
    await writeJsonAtomic(join(config.bundleDir, EXIT_FILE), record);
    for (const sink of sinks) sink.exit(record.exitCode);
    exited.resolve(record);
    logger.info("process exited", { exitCode: record.exitCode, reason: record.reason });
  };

  // The VM going away on its own ends the container whatever it was doing.
  void vm.waitForExit().then(async (state) => {
    phase = "stopped";
    if (!exitRecord) {
      const reason = state.reason === "crashed" ? "vmCrashed" : "vmStopped";
      await recordExit({ exitCode: 137, exitedAt: state.exitedAt, reason, message: `the VM ${state.reason === "crashed" ? "crashed" : "stopped"}` });
    }
    stdin?.destroy();
    log?.end();
    if (log) await once(log, "close").catch(() => undefined);
    (await ready.catch(() => undefined))?.close();
    finished.resolve();
  });

  const broadcast = (stream: "stdout" | "stderr", chunk: Buffer): void => {
    log?.write(JSON.stringify({ t: Date.now(), s: stream, d: chunk.toString("base64") }) + "\n");
    for (const sink of sinks) sink[stream](chunk);
  };

  async function acceptOne(port: number): Promise<{ conn: Promise<Duplex>; close: () => Promise<void> }> {
    const listener = await vm.listen(port);
    const conn = (async () => {
      for await (const c of listener.connections()) return c;
      throw new ContainerError("internal", `the guest never connected stdio port ${port}`);
    })();
    return { conn, close: () => listener.close() };
  }

  function drain(conn: Duplex, stream: "stdout" | "stderr"): Promise<void> {
    conn.on("data", (chunk: Buffer) => broadcast(stream, chunk));
    return new Promise((resolve) => {
      conn.once("end", resolve);
      conn.once("close", resolve);
      conn.once("error", () => resolve());
    });
  }

  async function runProcess(): Promise<number> {
    const agent = await ready;
    log = createWriteStream(join(config.bundleDir, STDIO_LOG_FILE), { flags: "a", mode: 0o600 });
    const wanted = { stdin: config.process.interactive, stdout: true, stderr: true };
    const listeners = await Promise.all(
      (["stdin", "stdout", "stderr"] as const).map(async (name) => (wanted[name] ? await acceptOne(STDIO_PORTS[name]) : undefined)),
    );
    const [inL, outL, errL] = listeners;
    try {
      await agent.createProcess({
        id: PROCESS_ID,
        spec: { args: config.process.args, env: config.process.env, cwd: config.process.cwd, rootfs: GUEST_ROOTFS },
        stdinPort: inL ? STDIO_PORTS.stdin : 0,
        stdoutPort: STDIO_PORTS.stdout,
        stderrPort: STDIO_PORTS.stderr,
      });
      const [inConn, outConn, errConn] = await Promise.all([inL?.conn, outL!.conn, errL!.conn]);
      const drained = Promise.all([drain(outConn, "stdout"), drain(errConn, "stderr")]);
      if (inConn) {
        stdin = inConn;
        inConn.on("error", () => undefined);
        for (const chunk of pendingStdin.splice(0)) inConn.write(chunk);
        if (stdinClosed) inConn.end();
      }
      pid = await agent.startProcess(PROCESS_ID);
      phase = "running";
      void (async () => {
        const status = await agent.waitProcess(PROCESS_ID);
        await drained;
        await recordExit({ exitCode: status.exitCode, exitedAt: Number(status.exitedAtNs / 1_000_000n) || Date.now(), reason: "exited" });
        await stop(config.autoRemove);
      })().catch(async (err: unknown) => {
        logger.error("waiting for the process failed", { err });
        await stop(true);
      });
      return pid;
    } finally {
      await Promise.all(listeners.map((l) => l?.close()));
    }
  }

  let starting: Promise<number> | undefined;

  async function stop(force: boolean): Promise<void> {
    stopping ??= (async () => {
      if (!force && vm.state().kind === "running") {
        const agent = await Promise.race([ready, new Promise<undefined>((r) => setTimeout(() => r(undefined), 1000))]).catch(() => undefined);
        if (agent) {
          try {
            await agent.shutdown();
            const timer = setTimeout(() => void vm.stop(), CLEAN_SHUTDOWN_TIMEOUT_MS);
            await vm.waitForExit();
            clearTimeout(timer);
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
      if (exitRecord) return Promise.reject(new ContainerError("invalidState", "the container has already exited"));
      starting ??= runProcess().catch(async (err: unknown) => {
        const e = asContainerError(err);
        await recordExit({ exitCode: e.code === "notFound" ? 127 : 125, exitedAt: Date.now(), reason: "startFailed", message: e.message });
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
      await (await ready).killProcess(PROCESS_ID, signal);
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
    stop,
    done: () => finished.promise,
  };
}
