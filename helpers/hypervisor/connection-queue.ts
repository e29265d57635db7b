// The connections the guest makes to one host port, handed to one consumer
// (VmListener): both backends queue them the same way.
import type { Duplex } from "node:stream";

/** A single-consumer queue of connections that ends when the listener closes. */
export class ConnectionQueue implements AsyncIterable<Duplex> {
  private readonly items: Duplex[] = [];
  private readonly waiters: Array<(r: IteratorResult<Duplex>) => void> = [];
  private closed = false;

  get ended(): boolean {
    return this.closed;
  }

  push(conn: Duplex): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter({ value: conn, done: false });
    else this.items.push(conn);
  }

  end(): void {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter({ value: undefined, done: true });
    // Connections nobody took are closed: the guest sees them reset.
    for (const conn of this.items.splice(0)) conn.destroy();
  }

  [Symbol.asyncIterator](): AsyncIterator<Duplex> {
    return {
      next: () => {
        const item = this.items.shift();
        if (item) return Promise.resolve({ value: item, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiters.push(resolve));
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }
}
