// Starting and talking to runtime helpers. A helper is spawned detached (its
// own session) so that it, and the container's VM, survive the apiserver.
import { spawn, type ChildProcess } from "node:child_process";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Metadata } from "@grpc/grpc-js";
import { ContainerError } from "../../lib/errors/index.js";
import { call, insecure, unixTarget } from "../../lib/grpc/index.js";
import { RuntimeClient, type StateResponse } from "../../helpers/runtime/api/gen/runtime.js";
import { EXIT_FILE, RUNTIME_LOG_FILE, runtimeSocketPath, type ExitRecord, type RuntimeConfig } from "../../helpers/runtime/config.js";

const HELPER_MAIN = fileURLToPath(new URL("../../helpers/runtime/main.js", import.meta.url));
const HELPER_READY_TIMEOUT_MS = 30_000;

export interface HelperHandle {
  pid: number;
  client: RuntimeClient;
  /** Resolves when the helper process is gone. */
  exited: Promise<void>;
  state(): Promise<StateResponse>;
  close(): void;
}

export function connectHelper(config: Pick<RuntimeConfig, "runDir">): RuntimeClient {
  return new RuntimeClient(unixTarget(runtimeSocketPath(config)), insecure(), {
    "grpc.initial_reconnect_backoff_ms": 20,
    "grpc.max_reconnect_backoff_ms": 200,
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Resolves once `pid` no longer exists (for helpers that are not our children). */
export function waitForPidExit(pid: number, intervalMs = 100): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (!isAlive(pid)) {
        clearInterval(timer);
        resolve();
      }
    }, intervalMs);
  });
}

function handle(pid: number, client: RuntimeClient, exited: Promise<void>): HelperHandle {
  return {
    pid,
    client,
    exited,
    state: () => call(client.state, client, {}, new Metadata(), { deadline: Date.now() + 5000 }),
    close: () => client.close(),
  };
}

async function logTail(bundleDir: string): Promise<string> {
  try {
    const lines = (await readFile(join(bundleDir, RUNTIME_LOG_FILE), "utf8")).trim().split("\n");
    const last = JSON.parse(lines[lines.length - 1] ?? "{}") as { msg?: string };
    return last.msg ?? "";
  } catch {
    return "";
  }
}

export interface HelperLauncher {
  /** Starts the helper for a container whose runtime.json is written, and waits until it serves. */
  launch(config: RuntimeConfig): Promise<HelperHandle>;
  /**
   * Makes a spare if there is none. Called when a container has ended rather
   * than right after a launch, so the spare's loading does not steal CPU from
   * a guest that is booting.
   */
  prepareSpare(): void;
  /** Ends the spare helper. */
  close(): void;
}

/**
 * Launches runtime helpers. One spare helper is kept loaded (--standby) and
 * handed the next container's bundle on stdin (a spare still loading reads it
 * when ready), taking Node's and gRPC's start-up off the container's cold
 * start. A spare whose apiserver goes away sees EOF and exits.
 */
export function createHelperLauncher(options: { runtimeDir: string; spare: boolean }): HelperLauncher {
  let spare: ChildProcess | undefined;
  let closed = false;

  const prepareSpare = (): void => {
    if (!options.spare || closed || spare) return;
    const child = spawn(process.execPath, [HELPER_MAIN, "--standby", options.runtimeDir], {
      detached: true,
      stdio: ["pipe", "ignore", "inherit"],
    });
    child.once("exit", () => {
      if (spare === child) spare = undefined;
    });
    child.on("error", () => undefined);
    child.stdin?.on("error", () => undefined);
    child.unref();
    spare = child;
  };

  const take = (config: RuntimeConfig): ChildProcess | undefined => {
    const child = spare;
    spare = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null || !child.stdin?.writable) return undefined;
    child.stdin.end(`${config.bundleDir}\n`);
    return child;
  };

  const spawnFresh = async (config: RuntimeConfig): Promise<ChildProcess> => {
    const log = await open(join(config.bundleDir, RUNTIME_LOG_FILE), "a", 0o600);
    const child = spawn(process.execPath, [HELPER_MAIN, config.bundleDir], {
      detached: true,
      stdio: ["ignore", log.fd, log.fd],
    });
    await log.close();
    child.unref();
    return child;
  };

  prepareSpare();
  return {
    async launch(config) {
      const child = take(config) ?? (await spawnFresh(config));
      const pid = child.pid;
      if (pid === undefined) throw new ContainerError("internal", "could not start the runtime helper");
      const exited = new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once("exit", () => resolve());
      });
      let gone = false;
      void exited.then(() => (gone = true));
      const client = connectHelper(config);
      const deadline = Date.now() + HELPER_READY_TIMEOUT_MS;
      try {
        for (;;) {
          try {
            await call(client.state, client, {}, new Metadata(), { deadline: Math.min(deadline, Date.now() + 500) });
            return handle(pid, client, exited);
          } catch (err) {
            if (gone || Date.now() >= deadline) {
              client.close();
              if (!gone) process.kill(pid, "SIGKILL");
              const why = await logTail(config.bundleDir);
              throw new ContainerError("internal", `the container's VM did not start${why ? `: ${why}` : ""}`, {
                hint: "see the runtime log in the container's directory",
                cause: err,
              });
            }
            await new Promise((r) => setTimeout(r, 10));
          }
        }
      } catch (err) {
        prepareSpare();
        throw err;
      }
    },
    prepareSpare,
    close() {
      closed = true;
      spare?.kill("SIGTERM");
      spare = undefined;
    },
  };
}

/** Reconnects to the helper of a container found running after an apiserver restart. */
export async function reattachHelper(config: Pick<RuntimeConfig, "runDir">, pid: number): Promise<HelperHandle | undefined> {
  if (!isAlive(pid)) return undefined;
  const client = connectHelper(config);
  const h = handle(pid, client, waitForPidExit(pid));
  try {
    await h.state();
    return h;
  } catch {
    client.close();
    return undefined;
  }
}

export async function readExitRecord(bundleDir: string): Promise<ExitRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(bundleDir, EXIT_FILE), "utf8")) as ExitRecord;
  } catch {
    return undefined;
  }
}
