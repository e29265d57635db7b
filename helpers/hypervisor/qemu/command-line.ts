// Pure translation of a VmConfig into the argv of QEMU and of the
// vhost-device-vsock backend. No I/O here, so every flag is unit-tested.
//
// Both processes run with the VM's stateDir as their working directory and
// name their sockets relative to it: unix socket paths are limited to 108
// bytes, and a stateDir deep in a data dir easily exceeds that.
import type { GuestArch, VmConfig } from "../types.js";

export type Accelerator = "kvm" | "tcg";

/** Files the backend creates in stateDir, relative to it. */
export const STATE_FILES = {
  /** vhost-user control socket: the vsock backend listens, QEMU connects. */
  vhostSocket: "vhost-vsock.sock",
  /**
   * Host side of the vsock device: `CONNECT <port>` here reaches the guest;
   * guest-initiated connections to host port N arrive on `vsock.sock_N`.
   */
  vsockSocket: "vsock.sock",
  qemuPid: "qemu.pid",
  backendPid: "vsock-backend.pid",
} as const;

/** Every VM has its own vsock backend process, so all guests can use the first guest CID. */
export const GUEST_CID = 3;

/** The fd (in QEMU) of the QMP socket the host hands over at spawn. */
export const QMP_FD = 3;

const KERNEL_CMDLINE_BASE = ["reboot=t", "panic=-1", "quiet", "root=/dev/vda", "ro", "rootfstype=ext4", "init=/sbin/vminitd"];

const CONSOLE: Record<GuestArch, string> = { x86_64: "ttyS0", aarch64: "ttyAMA0" };

export interface KernelTuning {
  accel: Accelerator;
  cpus: number;
}

/**
 * The kernel command line: ours first, then the caller's (later settings win
 * in the kernel). Boot-time choices measured in kernel-config/README.md.
 */
export function kernelCommandLine(arch: GuestArch, extra: readonly string[], tuning?: KernelTuning): string {
  const base = [`console=${CONSOLE[arch]}`, ...KERNEL_CMDLINE_BASE];
  if (arch === "x86_64") {
    // The TSC is the only clocksource worth having in a VM: skip the
    // watchdog that would mark it unstable under a busy host, and the
    // IO-APIC timer check. microvm has no PCI bus: don't probe for one.
    base.push("tsc=reliable", "no_timer_check", "pci=off");
    // Under TCG the kernel spends ~200 ms calibrating the APIC timer.
    if (tuning?.accel === "tcg") base.push("noapictimer");
    // With one vCPU there is nothing to patch SMP alternatives for (~60 ms).
    if (tuning?.cpus === 1) base.push("noreplace-smp");
  }
  return [...base, ...extra].join(" ");
}

/** QEMU's option parser splits on `,`; a literal comma is written twice. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(",", ",,");
}

export interface QemuCommandInput {
  config: VmConfig;
  accel: Accelerator;
}

export function qemuBinaryName(arch: GuestArch): string {
  return arch === "x86_64" ? "qemu-system-x86_64" : "qemu-system-aarch64";
}

function machineArgs(arch: GuestArch, accel: Accelerator): string[] {
  if (arch === "x86_64") {
    return [
      "-M",
      // microvm without ACPI or option ROMs. The PIT and PIC stay: under TCG
      // there is no kvmclock and the TSC frequency cannot be calibrated, so
      // the kernel keeps time with the PIT tick (routed through the legacy
      // PIC); without them it hangs early in boot. The RTC gives the guest
      // the wall-clock time. The ISA serial port is the console. A QEMU core
      // dump leaves guest RAM out.
      "microvm,acpi=off,x-option-roms=off,pit=on,pic=on,rtc=on,isa-serial=on,dump-guest-core=off,memory-backend=mem",
      "-cpu",
      accel === "kvm" ? "host" : "max",
    ];
  }
  return [
    "-M",
    // The newest GIC the accelerator offers (GICv3 under TCG; under KVM what
    // the host has). The PL011 UART (the console) is built in.
    "virt,gic-version=max,dump-guest-core=off,memory-backend=mem",
    "-cpu",
    // The architected pointer-auth algorithm is slow to emulate; the
    // implementation-defined one is fine for a guest that just uses it.
    accel === "kvm" ? "host" : "max,pauth-impdef=on",
  ];
}

function driveArgs(config: VmConfig): string[] {
  return config.disks.flatMap((disk, i) => {
    const opts = [
      `if=none`,
      `id=disk${i}`,
      `file=${escapeOptionValue(disk.path)}`,
      `format=${disk.format}`,
      // Host page cache on: the read-only init filesystem is shared by every
      // VM, and container disks are disposable clones; guest flushes are
      // honoured. (aio=io_uring is not used: seccomp profiles often forbid it.)
      `cache=writeback`,
    ];
    if (disk.readOnly) opts.push("readonly=on");
    // A full host disk must fail the guest's writes, not pause the VM (QEMU's
    // default, werror=enospc, which leaves the container hung for good).
    else opts.push("discard=unmap", "detect-zeroes=unmap", "werror=report", "rerror=report");
    return ["-drive", opts.join(",")];
  });
}

/**
 * The virtio-mmio devices, in the order that makes the guest see the disks
 * as vda, vdb, ... in config order. microvm hands out transports in command
 * line order; virt hands them out from the top, so the guest enumerates them
 * in reverse command line order.
 */
function virtioDeviceArgs(config: VmConfig): string[] {
  const devices = [
    ...config.disks.map((_, i) => `virtio-blk-device,drive=disk${i}`),
    "vhost-user-vsock-device,chardev=vsock",
  ];
  if (config.arch === "aarch64") devices.reverse();
  return devices.flatMap((d) => ["-device", d]);
}

/** The QEMU argv (without the binary), for a process whose cwd is config.stateDir. */
export function qemuArgs({ config, accel }: QemuCommandInput): string[] {
  const mem = `${config.memoryMiB}M`;
  return [
    "-name",
    escapeOptionValue(config.id),
    ...machineArgs(config.arch, accel),
    "-accel",
    accel,
    "-smp",
    String(config.cpus),
    "-m",
    mem,
    // vhost-user devices need guest RAM the backend process can map.
    "-object",
    `memory-backend-memfd,id=mem,size=${mem},share=on`,
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    // A guest reboot ends the VM (the agent reboots to power off on microvm).
    "-no-reboot",
    "-kernel",
    config.kernelPath,
    "-append",
    kernelCommandLine(config.arch, config.kernelArgs, { accel, cpus: config.cpus }),
    "-chardev",
    `file,id=con,path=${escapeOptionValue(config.consoleLogPath)},append=on`,
    "-serial",
    "chardev:con",
    ...driveArgs(config),
    "-chardev",
    `socket,id=vsock,path=${STATE_FILES.vhostSocket}`,
    ...virtioDeviceArgs(config),
    // QMP over a socket inherited at spawn: readiness, shutdown reasons, no socket file.
    "-chardev",
    `socket,id=qmp,fd=${QMP_FD}`,
    "-mon",
    "chardev=qmp,mode=control",
    "-pidfile",
    STATE_FILES.qemuPid,
  ];
}

/** The vhost-device-vsock argv (without the binary), for a process whose cwd is config.stateDir. */
export function vsockBackendArgs(): string[] {
  return ["--vm", `guest-cid=${GUEST_CID},socket=${STATE_FILES.vhostSocket},uds-path=${STATE_FILES.vsockSocket}`];
}
