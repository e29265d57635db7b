// The seam to the guest agent (vminitd). Types only: the runtime helper codes
// against this; helpers/agent/client.ts is the gRPC implementation.
import type {
  AddRouteRequest,
  CopyRequest,
  CreateProcessRequest,
  HostsEntry,
  MkdirRequest,
  MountRequest,
  PingResponse,
  ProcessSpec,
  RegisterBinfmtRequest,
  RegisterBinfmtResponse,
  RelayUnixRequest,
  StatRequest,
  StatResponse,
  StatsResponse,
  UnmountRequest,
  WaitProcessResponse,
  WriteFileRequest,
  WriteResolvConfRequest,
} from "./gen/agent.js";

export type { CopyRequest, CreateProcessRequest, MountRequest, PingResponse, ProcessSpec, StatsResponse, WaitProcessResponse };
export type {
  AddRouteRequest,
  HostsEntry,
  MkdirRequest,
  RegisterBinfmtRequest,
  RegisterBinfmtResponse,
  RelayUnixRequest,
  StatRequest,
  StatResponse,
  UnmountRequest,
  WriteFileRequest,
  WriteResolvConfRequest,
};
// FileType (StatResponse.type) and RelayDirection are enums: values, in ./gen/agent.js.

/** A request with the fields K given and the rest defaulting to their zero values. */
export type Given<T, K extends keyof T> = Pick<T, K> & Partial<Omit<T, K>>;

/** The vsock port vminitd serves this API on. */
export const AGENT_PORT = 1024;

export interface AgentClient {
  /** With `memory`, the answer carries vminitd's resident memory. */
  ping(options?: { memory?: boolean }): Promise<PingResponse>;
  mount(request: MountRequest): Promise<void>;
  createProcess(request: CreateProcessRequest): Promise<void>;
  /** Returns the process's pid in the guest. */
  startProcess(id: string): Promise<number>;
  waitProcess(id: string): Promise<WaitProcessResponse>;
  killProcess(id: string, signal: number): Promise<void>;
  closeProcessStdin(id: string): Promise<void>;
  /** Sets the window size of a process's terminal. */
  resizeProcess(id: string, rows: number, cols: number): Promise<void>;
  deleteProcess(id: string): Promise<void>;
  /** Streams a tar of `path` to a host port the caller listens on (CopyRequest). */
  copyOut(request: CopyRequest): Promise<void>;
  /** Unpacks the tar the caller sends on a host port it listens on. */
  copyIn(request: CopyRequest): Promise<void>;
  /** The container's cgroup counters. */
  stats(): Promise<StatsResponse>;
  /** Syncs and powers the guest off; the VM's exit follows. */
  shutdown(): Promise<void>;

  // Filesystem: guest paths, or paths inside `rootfs` that may not leave it
  // (invalidArgument); see agent.proto.
  unmount(request: Given<UnmountRequest, "path">): Promise<void>;
  mkdir(request: Given<MkdirRequest, "path">): Promise<void>;
  writeFile(request: Given<WriteFileRequest, "path" | "data">): Promise<void>;
  /** Describes the path itself (a symlink is not followed). */
  stat(request: Given<StatRequest, "path">): Promise<StatResponse>;

  // System.
  /** Reads a sysctl ("vm.swappiness"), writing `value` first when given; returns the value read back. */
  sysctl(name: string, value?: string): Promise<string>;
  /** Sets the guest's wall clock, in nanoseconds since the Unix epoch. */
  setTime(timeNs: bigint): Promise<void>;
  /** vminitd's own environment; undefined when unset. */
  getenv(key: string): Promise<string | undefined>;
  setenv(key: string, value: string): Promise<void>;
  /** Freezes (thaws) every process of the container; resolves once the kernel says so. */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** Discards the free blocks of the filesystem at `path`; resolves with the bytes discarded. */
  trim(path: string, minLength?: bigint): Promise<bigint>;
  /** Registers a binfmt_misc rule for qemu-user (`imageArch`) or Rosetta. */
  registerBinfmt(request: RegisterBinfmtRequest): Promise<RegisterBinfmtResponse>;

  // Network (the guest's namespace, which containers share).
  linkUp(link: string): Promise<void>;
  /** Adds "10.0.0.2/24" to a link. */
  addAddress(link: string, cidr: string): Promise<void>;
  /** destination: a CIDR, or "" / "default"; a gateway, a link or both. */
  addRoute(request: Partial<AddRouteRequest>): Promise<void>;
  writeResolvConf(request: Given<WriteResolvConfRequest, "rootfs">): Promise<void>;
  writeHosts(rootfs: string, entries: HostsEntry[]): Promise<void>;

  // Relays between a guest unix socket and host vsock ports.
  relayUnix(request: Given<RelayUnixRequest, "id" | "path" | "port" | "direction">): Promise<void>;
  stopRelay(id: string): Promise<void>;
  close(): void;
}
