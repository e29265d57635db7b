// What the guest's console log tells a backend about how the VM ended.
import { open } from "node:fs/promises";

const PANIC_MARKER = "Kernel panic - not syncing";

/**
 * Whether the console log shows a kernel panic after `offset` (where this
 * boot's output starts). The guest runs with panic=-1, so a panicking guest
 * reboots, which a backend sees as a power-off: this tells them apart. Reads
 * at most the last 64 KiB; an unreadable log shows nothing.
 */
export async function consoleShowsPanic(path: string, offset: number): Promise<boolean> {
  try {
    const fh = await open(path, "r");
    try {
      const { size } = await fh.stat();
      const from = Math.max(offset, size - 64 * 1024);
      const buf = Buffer.alloc(Math.max(0, size - from));
      await fh.read(buf, 0, buf.length, from);
      return buf.includes(PANIC_MARKER);
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}
