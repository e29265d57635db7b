// Starting and talking to runtime helpers. A helper is spawned detached (its
// own session) so that it, and the container's VM, survive the apiserver.
import { spawn, type ChildProcess } from "node:child_process";
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Metadata } from "@grpc/grpc-js";
import { ContainerError } from "../../lib/errors/index.js";
import { processExists, runsProgram } from "../../lib/process/index.js";
import { call, insecure, unixTarget } from "../../lib/grpc/index.js";
import { RuntimeClient, type StateResponse } from "../../helpers/runtime/api/gen/runtime.js";
import { EXIT_FILE, RUNTIME_LOG_FILE, fallbackExitPath, runtimeSocketPath, type ExitRecord, type RuntimeConfig } from "../../helpers/runtime/config.js";

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

/** Resolves once `pid` no longer exists (for helpers that are not our children). */
export function waitForPidExit(pid: number, intervalMs = 100): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (!processExists(pid)) {
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

/**
 * Asks the helper's State until it answers (undefined) or, once `gone()`
 * says it exited or HELPER_READY_TIMEOUT_MS have passed, gives the last
 * failure.
 */
async function untilServing(client: RuntimeClient, gone: () => boolean): Promise<{ lastError: unknown } | undefined> {
  const deadline = Date.now() + HELPER_READY_TIMEOUT_MS;
  for (;;) {
    try {
      await call(client.state, client, {}, new Metadata(), { deadline: Math.min(deadline, Date.now() + 500) });
      return undefined;
    } catch (err) {
      if (gone() || Date.now() >= deadline) return { lastError: err };
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** The helper's last error, which says why it failed; "" when it logged none. */
async function lastError(bundleDir: string): Promise<string> {
  try {
    const lines = (await readFile(join(bundleDir, RUNTIME_LOG_FILE), "utf8")).trim().split("\n").reverse();
    for (const line of lines) {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === "error" && entry.msg) return entry.msg;
    }
  } catch {
    // No log, or a torn last line: nothing to say.
  }
  return "";
}

export interface HelperLauncher {
  /**
   * Starts the helper for a container whose runtime.json is written, and waits
   * until it serves. `spawned` runs first with the helper's pid (to record
   * it: an apiserver that dies meanwhile must find the helper again); if it
   * fails, the helper is killed.
   */
  launch(config: RuntimeConfig, spawned?: (pid: number) => Promise<void>): Promise<HelperHandle>;
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
    async launch(config, spawned) {
      const child = take(config) ?? (await spawnFresh(config));
      const pid = child.pid;
      if (pid === undefined) throw new ContainerError("internal", "could not start the runtime helper");
      try {
        await spawned?.(pid);
      } catch (err) {
        child.kill("SIGKILL");
        prepareSpare();
        throw err;
      }
      const exited = new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once("exit", () => resolve());
      });
      let gone = false;
      void exited.then(() => (gone = true));
      const client = connectHelper(config);
      const failure = await untilServing(client, () => gone);
      if (failure === undefined) return handle(pid, client, exited);
      client.close();
      if (!gone) process.kill(pid, "SIGKILL");
      prepareSpare();
      // Killed from outside: its log would only say how far it got.
      if (child.signalCode !== null) {
        throw new ContainerError("unavailable", `the runtime helper died (${child.signalCode}) while the container's VM started`, {
          hint: "see the runtime log in the container's directory",
          cause: failure.lastError,
        });
      }
      const why = await lastError(config.bundleDir);
      throw new ContainerError("internal", `the container's VM did not start${why ? `: ${why}` : ""}`, {
        hint: "see the runtime log in the container's directory",
        cause: failure.lastError,
      });
    },
    prepareSpare,
    close() {
      closed = true;
      spare?.kill("SIGTERM");
      spare = undefined;
    },
  };
}

/**
 * Reconnects to the helper of a container found after an apiserver restart,
 * waiting for one that is still booting its VM (the apiserver died during
 * the create). A helper that never answers is killed: nothing may be left
 * running that no record accounts for.
 */
export async function reattachHelper(config: Pick<RuntimeConfig, "runDir">, pid: number): Promise<HelperHandle | undefined> {
  if (!processExists(pid)) return undefined;
  const client = connectHelper(config);
  if ((await untilServing(client, () => !processExists(pid))) === undefined) return handle(pid, client, waitForPidExit(pid));
  client.close();
  if (await runsProgram(pid, HELPER_MAIN)) process.kill(pid, "SIGKILL");
  return undefined;
}

/** The helper's exit status: in the bundle, or where it went when the bundle's disk was full. */
export async function readExitRecord(config: Pick<RuntimeConfig, "bundleDir" | "runDir">): Promise<ExitRecord | undefined> {
  for (const path of [join(config.bundleDir, EXIT_FILE), fallbackExitPath(config)]) {
    try {
      return JSON.parse(await readFile(path, "utf8")) as ExitRecord;
    } catch {
      // Not there: the next place, or none.
    }
  }
  return undefined;
}
