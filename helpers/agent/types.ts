// The seam to the guest agent (vminitd). Types only: the runtime helper codes
// against this; helpers/agent/client.ts is the gRPC implementation.
import type {
  CopyRequest,
  CreateProcessRequest,
  MountRequest,
  PingResponse,
  ProcessSpec,
  StatsResponse,
  WaitProcessResponse,
} from "./gen/agent.js";

export type { CopyRequest, CreateProcessRequest, MountRequest, PingResponse, ProcessSpec, StatsResponse, WaitProcessResponse };

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
  close(): void;
}
