// Spawning the helper processes a VM consists of (QEMU, the vsock backend).
//
// Children are never detached and never inherit our stdio: their output goes
// line by line to the logger, and the tail of stderr is kept for error
// messages. Where util-linux `setpriv` exists the child is started through it
// with a parent-death signal, so a VM does not outlive the process that owns
// it (Node cannot call prctl itself). The signal fires when the *thread* that
// spawned the child ends: spawn from the main thread, not a worker.
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "../../../lib/log/index.js";

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedChild {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  /** Settles once the process has exited and its stdio is closed. */
  readonly exited: Promise<ChildExit>;
  /** The last few KiB the child wrote to stderr. */
  stderrTail(): string;
  /** Whether the process is still running (not yet reaped). */
  alive(): boolean;
  /** Sends a signal; false if the process is already gone. */
  kill(signal: NodeJS.Signals): boolean;
}

export interface SpawnChildOptions {
  name: string;
  binary: string;
  args: string[];
  cwd: string;
  logger: Logger;
  /** Extra pipes (unix socketpairs) beyond stdio, as fds 3, 4, ... in the child. */
  extraPipes?: number;
  env?: NodeJS.ProcessEnv;
  /** stderr lines that are expected (logged at debug, not warn). */
  expectedStderr?: RegExp;
}

const TAIL_BYTES = 8 * 1024;

/** The first executable named `name` on PATH (or `name` itself when it holds a slash). */
export function findExecutable(name: string, extraDirs: string[] = [], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidates = name.includes("/")
    ? [name]
    : [...(env.PATH ?? "").split(delimiter).filter(Boolean), ...extraDirs].map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

let setprivPath: string | null | undefined;
function setpriv(): string | null {
  if (setprivPath === undefined) setprivPath = findExecutable("setpriv", ["/usr/bin", "/bin"]) ?? null;
  return setprivPath;
}

function forwardLines(stream: Readable | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let partial = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) onLine(line);
  });
  stream.on("end", () => {
    if (partial.trim()) onLine(partial);
    partial = "";
  });
}

export function spawnChild(options: SpawnChildOptions): SpawnedChild {
  const wrapper = setpriv();
  const [file, argv] = wrapper
    ? [wrapper, ["--pdeathsig", "SIGKILL", "--", options.binary, ...options.args]]
    : [options.binary, options.args];
  const stdio: StdioOptions = ["ignore", "pipe", "pipe", ...Array.from({ length: options.extraPipes ?? 0 }, () => "pipe" as const)];
  const child = spawn(file, argv, { cwd: options.cwd, stdio, env: options.env ?? process.env, detached: false });

  const log = options.logger.child({ proc: options.name });
  let tail = "";
  let running = true;
  forwardLines(child.stdout, (line) => log.info("output", { line }));
  forwardLines(child.stderr, (line) => {
    tail = (tail + line + "\n").slice(-TAIL_BYTES);
    if (options.expectedStderr?.test(line)) log.debug("stderr", { line });
    else log.warn("stderr", { line });
  });

  const exited = new Promise<ChildExit>((resolve) => {
    let spawnError: Error | undefined;
    child.once("error", (err) => {
      // ENOENT and friends: there will be a close event with code -2 or so.
      spawnError = err;
      tail = (tail + `${err.message}\n`).slice(-TAIL_BYTES);
    });
    child.once("exit", () => {
      running = false;
    });
    child.once("close", (code, signal) => {
      running = false;
      if (spawnError) log.error("spawn failed", { error: spawnError });
      resolve({ code, signal });
    });
  });

  return {
    name: options.name,
    process: child,
    pid: child.pid ?? -1,
    exited,
    stderrTail: () => tail,
    alive: () => running && child.exitCode === null && child.signalCode === null,
    kill: (signal) => {
      if (!running || child.exitCode !== null || child.signalCode !== null) return false;
      try {
        return child.kill(signal);
      } catch {
        return false;
      }
    },
  };
}
