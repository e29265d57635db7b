// Loading the native addon (native/virtualization-bridge) and the errors that
// cross it. The addon exists only on macOS; everywhere else loading it is a
// clear `unsupported`. Errors cross N-API as the JSON envelope
// `{code, message, hint}` and are rebuilt here as ContainerErrors.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { ContainerError, ERROR_CODES, type ErrorCode } from "../../../lib/errors/index.js";
import { repoRoot } from "../../../lib/paths/index.js";

export const BUILD_HINT = "build the macOS backend with `node native/virtualization-bridge/build.mjs` (native/virtualization-bridge/README.md)";

export interface AddonDisk {
  path: string;
  format: string;
  readOnly: boolean;
}

export interface AddonShare {
  tag: string;
  path: string;
  readOnly: boolean;
}

/** MachineOptions in native/virtualization-bridge/src/lib.rs. */
export interface AddonMachineOptions {
  id: string;
  arch: string;
  cpus: number;
  memoryMib: number;
  kernelPath: string;
  kernelArgs: string[];
  disks: AddonDisk[];
  consoleLogPath: string;
  network: "none" | "nat" | "vmnet";
  shares: AddonShare[];
  rosetta: boolean;
}

export type BridgeEventKind =
  | "started"
  | "startFailed"
  | "stopped"
  | "stopFailed"
  | "connected"
  | "connectFailed"
  | "accepted"
  | "guestStopped"
  | "crashed";

/** BridgeEvent in lib.rs; `error` is the JSON envelope. */
export interface BridgeEvent {
  kind: BridgeEventKind;
  request?: number | null;
  port?: number | null;
  fd?: number | null;
  error?: string | null;
}

export interface AddonMachine {
  start(request: number): void;
  stop(request: number): void;
  connect(request: number, port: number): void;
  listen(port: number): void;
  unlisten(port: number): void;
}

export interface HostInfo {
  supported: boolean;
  arch: string;
  minCpus: number;
  maxCpus: number;
  minMemoryMib: number;
  maxMemoryMib: number;
}

export interface Addon {
  VzMachine: new (options: AddonMachineOptions, onEvent: (event: BridgeEvent) => void) => AddonMachine;
  hostInfo(): HostInfo;
}

/** Where the build (native/virtualization-bridge/build.mjs) puts the addon and the signed Node. */
export function vzBuildDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.CONTAINER_VZ_DIR || join(repoRoot(), "build", "vz");
}

export const ADDON_FILE = "virtualization-bridge.node";
/** A copy of Node signed with com.apple.security.virtualization: the VM host runs under it. */
export const SIGNED_NODE_FILE = "node";

export function loadAddon(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): Addon {
  if (platform !== "darwin") {
    throw new ContainerError("unsupported", `Virtualization.framework is unsupported on this platform (${platform})`, {
      hint: "the vz backend runs on macOS on Apple Silicon; Linux uses QEMU",
    });
  }
  const path = join(vzBuildDir(env), ADDON_FILE);
  if (!existsSync(path)) throw new ContainerError("unavailable", `the Virtualization.framework addon ${path} is not built`, { hint: BUILD_HINT });
  return createRequire(import.meta.url)(path) as Addon;
}

function isCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && (ERROR_CODES as readonly string[]).includes(value);
}

/** Rebuilds the envelope; anything that is not one becomes `internal` with the text as message. */
export function fromEnvelope(text: string, cause?: unknown): ContainerError {
  try {
    const v = JSON.parse(text) as { code?: unknown; message?: unknown; hint?: unknown };
    if (isCode(v.code) && typeof v.message === "string") {
      return new ContainerError(v.code, v.message, {
        ...(typeof v.hint === "string" ? { hint: v.hint } : {}),
        ...(cause === undefined ? {} : { cause }),
      });
    }
  } catch {
    // not an envelope
  }
  return new ContainerError("internal", text, cause === undefined ? {} : { cause });
}

/** An error thrown by the addon (its message is the envelope) as a ContainerError. */
export function fromAddonError(err: unknown): ContainerError {
  if (err instanceof ContainerError) return err;
  return fromEnvelope(err instanceof Error ? err.message : String(err), err);
}
