// The seam every hypervisor backend implements (QEMU on Linux,
// Virtualization.framework on macOS). Types only: callers depend on this
// module, never on a backend. A backend that lacks an operation fails with
// ContainerError("unsupported") rather than pretending.
import type { Duplex } from "node:stream";

export type GuestArch = "x86_64" | "aarch64";

/** The guest side every VM boots: a kernel and the init filesystem holding vminitd. */
export interface GuestAssets {
  arch: GuestArch;
  kernelPath: string;
  initfsPath: string;
}

export interface DiskConfig {
  /** Host path of the disk image. */
  path: string;
  /** `raw` or `qcow2`; a backend that cannot open a format rejects it. */
  format: "raw" | "qcow2";
  readOnly: boolean;
}

export interface VmConfig {
  /** Unique among live VMs of this user; names sockets and logs. */
  id: string;
  arch: GuestArch;
  cpus: number;
  memoryMiB: number;
  /** Uncompressed kernel the backend boots directly. */
  kernelPath: string;
  /** Extra kernel command line, appended after the backend's own. */
  kernelArgs: string[];
  /** In order: the first is the init filesystem (root, read-only), then the container's disks. */
  disks: DiskConfig[];
  /** Directory the backend owns for this VM: sockets, pid files. Must exist. */
  stateDir: string;
  /** File the guest console is appended to (`container logs --boot`). */
  consoleLogPath: string;
  /**
   * Share Apple's Rosetta with an aarch64 guest (virtiofs tag `rosetta`) so it
   * runs x86_64 binaries. A VmConfig field, not a Hypervisor capability: the
   * device must be there from boot, and the apiserver, which decides, holds no
   * backend (it asks index.ts's offersRosetta). Backends without it refuse it
   * with unsupported.
   */
  rosetta?: boolean;
}

export type VmState =
  | { kind: "created" }
  | { kind: "running"; startedAt: number }
  | { kind: "stopped"; exitedAt: number; reason: VmExitReason };

export type VmExitReason =
  /** The guest powered off or rebooted. */
  | "guestShutdown"
  /** stop() or the host killed the hypervisor. */
  | "stopped"
  /** The hypervisor died on its own. */
  | "crashed";

export interface VmListener {
  /** Every connection the guest opens to this host port. */
  connections(): AsyncIterable<Duplex>;
  close(): Promise<void>;
}

export interface VirtualMachine {
  readonly id: string;
  state(): VmState;
  /** Boots the guest; resolves once the hypervisor is running (not once the guest is ready). */
  start(): Promise<void>;
  /**
   * Stops the VM: the hypervisor is terminated and every resource the backend
   * made for it (processes, sockets, files in stateDir) is released. Idempotent.
   */
  stop(): Promise<void>;
  /**
   * Ends the VM at once, giving the guest no chance to flush: for VMs whose
   * writable disks are thrown away. Releases everything stop() does.
   */
  kill(): Promise<void>;
  /** Opens a stream to a port the guest listens on. Fails if nobody listens. */
  dial(port: number): Promise<Duplex>;
  /** Accepts connections the guest makes to `port` on the host. Call before the guest dials. */
  listen(port: number): Promise<VmListener>;
  /** Resolves when the VM has stopped, for whatever reason. */
  waitForExit(): Promise<Extract<VmState, { kind: "stopped" }>>;
  /** Host process ids the VM consists of, the hypervisor first, then device backends. */
  pids(): number[];
}

export interface Hypervisor {
  /** Short backend name: "qemu", "vz". */
  readonly name: string;
  /** The guest architecture this host runs natively. */
  readonly nativeArch: GuestArch;
  /** Validates the config and prepares (does not boot) a VM. */
  create(config: VmConfig): Promise<VirtualMachine>;
}
