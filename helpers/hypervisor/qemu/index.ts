// The Linux hypervisor backend: every VM is a QEMU process (microvm on
// x86_64, virt on aarch64) plus a vhost-device-vsock process for its vsock
// device. See command-line.ts for the exact flags.
import { stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { ContainerError } from "../../../lib/errors/index.js";
import { createLogger, type Logger } from "../../../lib/log/index.js";
import { runtimeDir } from "../../../lib/paths/index.js";
import type { GuestArch, Hypervisor, VirtualMachine, VmConfig } from "../types.js";
import { resolveQemuBinary, resolveVsockBackend } from "./binaries.js";
import type { Accelerator } from "./command-line.js";
import { accelFromEnv, nativeGuestArch, probeAccelerator, type ProbeResult } from "./kvm-probe.js";
import { QemuMachine, reapStaleProcesses, removeStateFiles } from "./machine.js";

export type { Accelerator } from "./command-line.js";
export { probeAccelerator, type ProbeOptions, type ProbeResult } from "./kvm-probe.js";

export interface QemuHypervisorOptions {
  logger?: Logger;
  /** `auto` (default) probes KVM once per guest kernel; CONTAINER_ACCEL overrides auto. */
  accel?: Accelerator | "auto";
  /** Where the KVM probe caches its verdict; the runtime dir by default. */
  cacheDir?: string;
  /** QEMU binaries per guest arch (name on PATH or a path). */
  qemuBinaries?: Partial<Record<GuestArch, string>>;
  /** vhost-device-vsock (name on PATH or a path). */
  vsockBackendBinary?: string;
  stopGraceMs?: number;
  dialTimeoutMs?: number;
  startTimeoutMs?: number;
  /** Hard limit of the KVM probe boot. */
  probeTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface QemuHypervisor extends Hypervisor {
  /** The accelerator VMs of `arch` get, probing KVM if needed (kernel and initfs to probe with). */
  accelerator(arch: GuestArch, kernelPath: string, initfsPath: string): Promise<ProbeResult>;
}

const SETUP_HINT = "run `npm run setup` to build the guest kernel and init filesystem";
const VALID_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

async function requireFile(path: string, what: string, hint?: string): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s) throw new ContainerError("notFound", `${what} ${path} does not exist`, hint ? { hint } : {});
  if (!s.isFile()) throw new ContainerError("invalidArgument", `${what} ${path} is not a file`);
}

async function requireDir(path: string, what: string): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s) throw new ContainerError("notFound", `${what} ${path} does not exist`);
  if (!s.isDirectory()) throw new ContainerError("invalidArgument", `${what} ${path} is not a directory`);
}

/** Checks a config and makes its paths absolute (the VM's processes run in stateDir). */
export async function validateConfig(config: VmConfig): Promise<VmConfig> {
  if (!VALID_ID.test(config.id)) {
    throw new ContainerError("invalidArgument", `invalid VM id ${JSON.stringify(config.id)}`, {
      hint: "letters, digits, '.', '_' and '-', at most 128",
    });
  }
  if (config.arch !== "x86_64" && config.arch !== "aarch64") {
    throw new ContainerError("unsupported", `guest architecture ${String(config.arch)} is not supported`);
  }
  if (!Number.isInteger(config.cpus) || config.cpus < 1 || config.cpus > 64) {
    throw new ContainerError("invalidArgument", `cpus must be an integer from 1 to 64, not ${config.cpus}`);
  }
  if (!Number.isInteger(config.memoryMiB) || config.memoryMiB < 64) {
    throw new ContainerError("invalidArgument", `memoryMiB must be an integer of at least 64, not ${config.memoryMiB}`);
  }
  if (config.disks.length === 0) {
    throw new ContainerError("invalidArgument", "a VM needs at least its init filesystem disk");
  }
  if (config.rosetta) throw new ContainerError("unsupported", "Rosetta is only offered by the macOS backend on Apple silicon");
  const abs: VmConfig = {
    ...config,
    kernelPath: resolve(config.kernelPath),
    disks: config.disks.map((d) => ({ ...d, path: resolve(d.path) })),
    stateDir: resolve(config.stateDir),
    consoleLogPath: resolve(config.consoleLogPath),
    kernelArgs: [...config.kernelArgs],
  };
  await requireFile(abs.kernelPath, "guest kernel", SETUP_HINT);
  for (const [i, disk] of abs.disks.entries()) {
    if (disk.format !== "raw" && disk.format !== "qcow2") {
      throw new ContainerError("invalidArgument", `disk ${disk.path}: unknown format ${String(disk.format)}`);
    }
    await requireFile(disk.path, i === 0 ? "init filesystem" : "disk", i === 0 ? SETUP_HINT : undefined);
  }
  await requireDir(abs.stateDir, "VM state directory");
  await requireDir(dirname(abs.consoleLogPath), "console log directory");
  for (const arg of abs.kernelArgs) {
    if (/[\s\0]/.test(arg) || arg === "") {
      throw new ContainerError("invalidArgument", `kernel argument ${JSON.stringify(arg)} is empty or holds whitespace`);
    }
  }
  return abs;
}

export function createQemuHypervisor(options: QemuHypervisorOptions = {}): QemuHypervisor {
  const env = options.env ?? process.env;
  const logger = options.logger ?? createLogger({ component: "hypervisor-qemu" });
  const nativeArch = nativeGuestArch();
  const probes = new Map<string, Promise<ProbeResult>>();

  const accelerator = (arch: GuestArch, kernelPath: string, initfsPath: string): Promise<ProbeResult> => {
    if (arch !== nativeArch) {
      return Promise.resolve({ accel: "tcg", source: "no-kvm", reason: `${arch} guests are emulated on a ${nativeArch} host` });
    }
    const wanted = options.accel && options.accel !== "auto" ? options.accel : accelFromEnv(env);
    if (wanted) return Promise.resolve({ accel: wanted, source: "env", reason: `accelerator set to ${wanted}` });
    const key = `${kernelPath}\0${initfsPath}`;
    let probe = probes.get(key);
    if (!probe) {
      probe = probeAccelerator({
        qemuBinary: resolveQemuBinary(arch, options.qemuBinaries?.[arch], env),
        backendBinary: resolveVsockBackend(options.vsockBackendBinary, env),
        kernelPath,
        initfsPath,
        cacheDir: options.cacheDir ?? runtimeDir(env),
        ...(options.probeTimeoutMs === undefined ? {} : { timeoutMs: options.probeTimeoutMs }),
        env,
        logger: logger.child({ component: "kvm-probe" }),
      });
      probes.set(key, probe);
      probe.catch(() => probes.delete(key));
    }
    return probe;
  };

  return {
    name: "qemu",
    nativeArch,
    accelerator,
    async create(config: VmConfig): Promise<VirtualMachine> {
      const checked = await validateConfig(config);
      const qemuBinary = resolveQemuBinary(checked.arch, options.qemuBinaries?.[checked.arch], env);
      const backendBinary = resolveVsockBackend(options.vsockBackendBinary, env);
      const initfs = checked.disks[0]!.path;
      const { accel } = await accelerator(checked.arch, checked.kernelPath, initfs);
      // Leftovers of an earlier VM with this state dir (a helper that died).
      const reaped = await reapStaleProcesses(checked.stateDir);
      if (reaped.length > 0) logger.warn("killed processes left by an earlier VM", { vm: checked.id, pids: reaped });
      await removeStateFiles(checked.stateDir);
      return new QemuMachine({
        config: checked,
        accel,
        qemuBinary,
        backendBinary,
        logger,
        stopGraceMs: options.stopGraceMs ?? 2000,
        dialTimeoutMs: options.dialTimeoutMs ?? 10_000,
        startTimeoutMs: options.startTimeoutMs ?? 10_000,
      });
    },
  };
}
