// Reading files another process appends to (logs): from an offset, and
// following them by polling, since fs.watch is not reliable on every
// filesystem.

import { open } from "node:fs/promises";

/** The bytes of `path` from `offset` to its current end; a missing file reads as empty. */
export async function readFrom(path: string, offset: number): Promise<Buffer> {
  let file;
  try {
    file = await open(path, "r");
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const { size } = await file.stat();
    if (size <= offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - offset);
    const { bytesRead } = await file.read(buf, 0, buf.length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

/**
 * Resolves after `ms`, or at once when `signal` aborts. Unlike
 * node:timers/promises it never rejects: an abort just ends the wait of a
 * polling loop that checks the signal itself.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
