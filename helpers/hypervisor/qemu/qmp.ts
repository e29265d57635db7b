// A minimal QMP client over the socket QEMU inherits at spawn. Used to know
// when QEMU has finished setting up the machine (a command is answered only
// by the main loop) and why it shut down (the SHUTDOWN event's reason).
import type { Duplex } from "node:stream";
import { ContainerError } from "../../../lib/errors/index.js";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class QmpClient {
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly greeting: Promise<void>;
  private resolveGreeting!: () => void;
  private rejectGreeting!: (err: Error) => void;
  private closedError: Error | undefined;
  private shutdown: QmpEvent | undefined;

  constructor(
    private readonly stream: Duplex,
    private readonly onEvent: (event: QmpEvent) => void = () => {},
  ) {
    this.greeting = new Promise<void>((resolve, reject) => {
      this.resolveGreeting = resolve;
      this.rejectGreeting = reject;
    });
    // Nobody may be waiting on the greeting when QEMU dies early.
    this.greeting.catch(() => {});
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => this.onData(chunk));
    stream.on("error", (err) => this.fail(new ContainerError("unavailable", `QEMU monitor: ${err.message}`, { cause: err })));
    stream.on("close", () => this.fail(new ContainerError("unavailable", "QEMU closed its monitor")));
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if ("QMP" in msg) {
      this.resolveGreeting();
      return;
    }
    if (typeof msg.event === "string") {
      const event: QmpEvent = { event: msg.event, data: msg.data as Record<string, unknown> | undefined };
      if (event.event === "SHUTDOWN") this.shutdown ??= event;
      this.onEvent(event);
      return;
    }
    const id = typeof msg.id === "string" ? msg.id : undefined;
    const waiter = id === undefined ? undefined : this.pending.get(id);
    if (!waiter || id === undefined) return;
    this.pending.delete(id);
    if ("error" in msg) {
      const e = msg.error as { class?: string; desc?: string } | undefined;
      waiter.reject(new ContainerError("internal", `QMP: ${e?.class ?? "error"}: ${e?.desc ?? line}`));
    } else {
      waiter.resolve(msg.return);
    }
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    this.rejectGreeting(err);
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }

  /** Waits for the greeting and enters command mode. */
  async handshake(): Promise<void> {
    await this.greeting;
    await this.execute("qmp_capabilities");
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `c${this.nextId++}`;
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.stream.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + "\n");
    });
  }

  /** The reason of the SHUTDOWN event QEMU sent, if any. */
  shutdownEvent(): { guest: boolean; reason: string } | undefined {
    const ev = this.shutdown;
    if (!ev) return undefined;
    return { guest: ev.data?.guest === true, reason: String(ev.data?.reason ?? "") };
  }

  close(): void {
    this.fail(new ContainerError("cancelled", "QMP connection closed"));
    this.stream.destroy();
  }
}
