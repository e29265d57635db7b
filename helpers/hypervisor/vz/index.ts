// The macOS hypervisor backend: every VM is a VZVirtualMachine owned by a VM
// host process (host.ts) running under a Node copy signed with the
// virtualization entitlement. Config translation and validation happen in
// the addon (native/virtualization-bridge/src/config.rs); what needs the
// file system is checked here, so that a missing kernel is notFound before
// any process starts.
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ContainerError } from "../../../lib/errors/index.js";
import { createLogger, type Logger } from "../../../lib/log/index.js";
import { repoRoot } from "../../../lib/paths/index.js";
import type { GuestArch, Hypervisor, VirtualMachine, VmConfig } from "../types.js";
import { BUILD_HINT, SIGNED_NODE_FILE, vzBuildDir, type AddonMachineOptions, type AddonShare } from "./addon.js";
import { VzMachine } from "./machine.js";

/** What this backend offers beyond the seam's VmConfig. */
export interface VzExtras {
  /** Guest networking: none (vsock only, the default) or the host's NAT. */
  network?: "none" | "nat";
  /** virtiofs shares (bind mounts): the guest mounts each by its tag. */
  shares?: AddonShare[];
}

export type VzVmConfig = VmConfig & VzExtras;

export interface VzHypervisorOptions {
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
  /** The VM host entry point; dist/…/host.js by default. */
  hostMain?: string;
  /** The signed Node the VM host runs under; build/vz/node by default. */
  node?: string;
  startTimeoutMs?: number;
  dialTimeoutMs?: number;
  stopGraceMs?: number;
}

const SETUP_HINT = "copy the aarch64 guest kernel and init filesystem into build/ (see README, macOS)";
const VALID_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

async function requireKind(path: string, what: string, dir: boolean, hint?: string): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s) throw new ContainerError("notFound", `${what} ${path} does not exist`, hint ? { hint } : {});
  if (dir ? !s.isDirectory() : !s.isFile()) throw new ContainerError("invalidArgument", `${what} ${path} is not a ${dir ? "directory" : "file"}`);
}

/** The addon's options for `config`, after the checks that need the file system. */
export async function machineOptions(config: VzVmConfig): Promise<AddonMachineOptions> {
  if (!VALID_ID.test(config.id)) {
    throw new ContainerError("invalidArgument", `invalid VM id ${JSON.stringify(config.id)}`, { hint: "letters, digits, '.', '_' and '-', at most 128" });
  }
  const options: AddonMachineOptions = {
    id: config.id,
    arch: config.arch,
    cpus: config.cpus,
    memoryMib: config.memoryMiB,
    kernelPath: resolve(config.kernelPath),
    kernelArgs: [...config.kernelArgs],
    disks: config.disks.map((d) => ({ path: resolve(d.path), format: d.format, readOnly: d.readOnly })),
    consoleLogPath: resolve(config.consoleLogPath),
    network: config.network ?? "none",
    shares: (config.shares ?? []).map((s) => ({ ...s, path: resolve(s.path) })),
    rosetta: config.rosetta ?? false,
  };
  if (options.disks.length === 0) throw new ContainerError("invalidArgument", "a VM needs at least its init filesystem disk");
  await requireKind(options.kernelPath, "guest kernel", false, SETUP_HINT);
  for (const [i, disk] of options.disks.entries()) {
    await requireKind(disk.path, i === 0 ? "init filesystem" : "disk", false, i === 0 ? SETUP_HINT : undefined);
  }
  for (const share of options.shares) await requireKind(share.path, "shared directory", true);
  await requireKind(resolve(config.stateDir), "VM state directory", true);
  await requireKind(dirname(options.consoleLogPath), "console log directory", true);
  return options;
}

/** host.js beside this module when built; from sources (tests), the built copy in dist/. */
export function defaultHostMain(): string {
  const here = fileURLToPath(new URL("./host.js", import.meta.url));
  return here.includes("/dist/") ? here : join(repoRoot(), "dist", "helpers", "hypervisor", "vz", "host.js");
}

export function createVzHypervisor(options: VzHypervisorOptions = {}): Hypervisor {
  const env = options.env ?? process.env;
  const logger = options.logger ?? createLogger({ component: "hypervisor-vz" });
  const nativeArch: GuestArch = process.arch === "arm64" ? "aarch64" : "x86_64";
  return {
    name: "vz",
    nativeArch,
    async create(config: VmConfig): Promise<VirtualMachine> {
      const machine = await machineOptions(config);
      const node = options.node ?? join(vzBuildDir(env), SIGNED_NODE_FILE);
      const hostMain = options.hostMain ?? defaultHostMain();
      if (!existsSync(node)) throw new ContainerError("unavailable", `the signed Node ${node} is missing`, { hint: BUILD_HINT });
      if (!existsSync(hostMain)) throw new ContainerError("unavailable", `the VM host ${hostMain} is not built`, { hint: "npm run build" });
      return new VzMachine({
        options: machine,
        node,
        hostMain,
        logger,
        startTimeoutMs: options.startTimeoutMs ?? 10_000,
        dialTimeoutMs: options.dialTimeoutMs ?? 10_000,
        stopGraceMs: options.stopGraceMs ?? 2000,
      });
    },
  };
}
