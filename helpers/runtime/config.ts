// What the apiserver hands a runtime helper: written as runtime.json in the
// container's bundle directory before the helper starts, never changed after.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ContainerError } from "../../lib/errors/index.js";
import type { VmConfig } from "../hypervisor/types.js";

export interface ProcessConfig {
  args: string[];
  env: string[];
  cwd: string;
  /** Docker's -u form, resolved in the guest. */
  user: string;
  /** Whether stdin is connected; otherwise the process reads /dev/null. */
  interactive: boolean;
  /** The rootfs is mounted read-only. */
  readOnly: boolean;
  /** A terminal as stdin/stdout/stderr; its output is the stdout stream. */
  terminal: boolean;
  /** Absent in configs older than the isolation flags. */
  isolation?: Isolation;
  /** The container's hostname (Docker's: the short id). */
  hostname?: string;
  /** For an image of another architecture than the guest's: the emulator vminitd registers (binfmt_misc). */
  emulator?: Emulator;
}

/**
 * How the guest runs the image's binaries: qemu-user from the init filesystem
 * (`interpreter`, a guest path), or Rosetta from the VM's Rosetta share
 * (the helper then creates the VM with VmConfig.rosetta).
 */
export type Emulator = { kind: "qemu-user"; imageArch: string; interpreter: string } | { kind: "rosetta" };

/** How the container is isolated inside its VM; the guest applies it (vminitd's sandbox). */
export interface Isolation {
  /** A tiny init as PID 1 (--init). */
  init: boolean;
  capAdd: string[];
  capDrop: string[];
  /** Docker's --ulimit; -1 is unlimited. */
  ulimits: { type: string; soft: number; hard: number }[];
  tmpfs: { path: string; options: string[] }[];
  /** /dev/shm's size; 0: 64 MiB. */
  shmSizeBytes: number;
  /** prctl(PR_SET_NO_NEW_PRIVS) for every process (--security-opt no-new-privileges); absent in older configs. */
  noNewPrivileges?: boolean;
}

export const DEFAULT_ISOLATION: Isolation = { init: false, capAdd: [], capDrop: [], ulimits: [], tmpfs: [], shmSizeBytes: 0 };

export interface RuntimeConfig {
  id: string;
  /** <data dir>/containers/<id>: config, rootfs, logs, exit status. */
  bundleDir: string;
  /** <runtime dir>/c/<short id>: sockets; removed when the helper ends. */
  runDir: string;
  vm: VmConfig;
  /** Hypervisor options: "kvm" or "tcg" for QEMU. */
  accelerator: string;
  process: ProcessConfig;
  /** The disk is thrown away after exit, so the VM may be killed instead of shut down. */
  autoRemove: boolean;
}

export const RUNTIME_CONFIG_FILE = "runtime.json";
export const EXIT_FILE = "exit.json";
export const STDIO_LOG_FILE = "stdio.log";
export const RUNTIME_LOG_FILE = "runtime.log";
export const BOOT_LOG_FILE = "boot.log";
export const VMINITD_LOG_FILE = "vminitd.log";
export const RUNTIME_SOCKET = "runtime.sock";

/** Written once the container's process (or its VM) has ended. */
export interface ExitRecord {
  exitCode: number;
  exitedAt: number;
  /** Why: the process exited, or the VM went away underneath it. */
  reason: "exited" | "vmCrashed" | "vmStopped" | "startFailed";
  message?: string;
}

/**
 * Where the exit status goes when the bundle's disk is full: beside the run
 * dir, in the runtime dir (another filesystem as a rule), where the helper's
 * own cleanup leaves it for the apiserver.
 */
export function fallbackExitPath(config: Pick<RuntimeConfig, "runDir">): string {
  return `${config.runDir}.${EXIT_FILE}`;
}

export function runtimeSocketPath(config: Pick<RuntimeConfig, "runDir">): string {
  return join(config.runDir, RUNTIME_SOCKET);
}

export async function readRuntimeConfig(bundleDir: string): Promise<RuntimeConfig> {
  const path = join(bundleDir, RUNTIME_CONFIG_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new ContainerError("invalidArgument", `cannot read runtime config ${path}: ${(err as Error).message}`, { cause: err });
  }
  const c = parsed as Partial<RuntimeConfig>;
  if (typeof c.id !== "string" || typeof c.runDir !== "string" || !c.vm || !c.process || !Array.isArray(c.process.args)) {
    throw new ContainerError("invalidArgument", `runtime config ${path} is incomplete`);
  }
  const config = { ...(c as RuntimeConfig), bundleDir };
  const emulator = config.process.emulator as Emulator | Omit<Extract<Emulator, { kind: "qemu-user" }>, "kind"> | undefined;
  // Configs written before Rosetta name qemu-user's emulator without a kind.
  if (emulator && !("kind" in emulator)) config.process = { ...config.process, emulator: { kind: "qemu-user", ...emulator } };
  return config;
}
