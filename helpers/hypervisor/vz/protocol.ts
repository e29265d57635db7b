// The messages between a VzMachine (in the runtime helper) and its VM host
// process (host.ts), over Node's IPC channel. Streams travel as handles
// attached to `connected` and `accepted`. Types only.
import type { AddonMachineOptions, BridgeEventKind } from "./addon.js";

export type ToHost =
  | { op: "create"; options: AddonMachineOptions }
  | { op: "start" | "stop"; request: number }
  | { op: "connect"; request: number; port: number }
  | { op: "listen" | "unlisten"; port: number };

export type FromHost =
  | { kind: "created" }
  | { kind: "createFailed"; error: string }
  | { kind: BridgeEventKind; request?: number; port?: number; error?: string };
