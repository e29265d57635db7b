// Picks the hypervisor backend for this host at run time: QEMU on Linux,
// Virtualization.framework on macOS; and locates the guest assets it boots.
import { homedir } from "node:os";
import { join } from "node:path";
import { ContainerError } from "../../lib/errors/index.js";
import type { Logger } from "../../lib/log/index.js";
import { assetsDir } from "../../lib/paths/index.js";
import type { GuestArch, GuestAssets, Hypervisor } from "./types.js";

export function hostGuestArch(): GuestArch {
  return process.arch === "arm64" ? "aarch64" : "x86_64";
}

/**
 * Whether the backend createHypervisor picks here can share Rosetta with the
 * guest (VmConfig.rosetta): Virtualization.framework on Apple silicon. Whether
 * Rosetta is installed is known only when a VM is created (unavailable, with
 * the install command as the hint).
 */
export function offersRosetta(platform: NodeJS.Platform = process.platform, arch: string = process.arch): boolean {
  return platform === "darwin" && arch === "arm64";
}

/** The kernel and init filesystem built by the set-up, for the host's architecture. */
export function guestAssets(arch: GuestArch = hostGuestArch(), env: NodeJS.ProcessEnv = process.env): GuestAssets {
  const root = assetsDir(env);
  return arch === "x86_64"
    ? { arch, kernelPath: join(root, "kernel", "x86_64", "vmlinux"), initfsPath: join(root, "initfs", "x86_64", "initfs.ext4") }
    : { arch, kernelPath: join(root, "kernel", "arm64", "Image"), initfsPath: join(root, "initfs", "aarch64", "initfs.ext4") };
}

function unsupportedHost(): ContainerError {
  return new ContainerError("unsupported", `no hypervisor backend for ${process.platform}`, {
    hint: "container runs on Linux with QEMU and on macOS with Virtualization.framework",
  });
}

/** Where verdicts that hold for the whole host (the KVM probe) are cached. */
function hostCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "container");
}

export interface SelectOptions {
  assets: GuestAssets;
  logger: Logger;
}

/** The accelerator new VMs get: "kvm" or "tcg" on Linux (a time-limited probe, cached), "vz" on macOS. */
export async function selectAccelerator(options: SelectOptions, platform: NodeJS.Platform = process.platform): Promise<string> {
  if (platform === "darwin") return "vz";
  if (platform !== "linux") throw unsupportedHost();
  const { createQemuHypervisor } = await import("./qemu/index.js");
  const qemu = createQemuHypervisor({ logger: options.logger, cacheDir: hostCacheDir() });
  const { assets } = options;
  return (await qemu.accelerator(assets.arch, assets.kernelPath, assets.initfsPath)).accel;
}

/** Loads this host's backend code ahead of need (a standby runtime helper). */
export async function preloadBackend(): Promise<void> {
  if (process.platform === "linux") await import("./qemu/index.js");
  else if (process.platform === "darwin") await import("./vz/index.js");
}

export interface CreateHypervisorOptions {
  /** As chosen by selectAccelerator ("vz" on macOS, where there is no choice). */
  accelerator: string;
  logger: Logger;
}

/** The backend is chosen here, at run time: the other one's code is never loaded. */
export async function createHypervisor(options: CreateHypervisorOptions, platform: NodeJS.Platform = process.platform): Promise<Hypervisor> {
  if (platform === "darwin") {
    const { createVzHypervisor } = await import("./vz/index.js");
    return createVzHypervisor({ logger: options.logger });
  }
  if (platform !== "linux") throw unsupportedHost();
  const { createQemuHypervisor } = await import("./qemu/index.js");
  const accel = options.accelerator === "kvm" ? "kvm" : "tcg";
  return createQemuHypervisor({ logger: options.logger, accel });
}
