// The local terminal for `-t`: raw mode while attached (so Ctrl-C and every
// key go to the container's terminal), its size, and its size changes.
import { ContainerError } from "../lib/errors/index.js";

export interface TerminalSize {
  rows: number;
  cols: number;
}

/** Docker's rule: -i with -t needs a terminal on stdin. */
export function checkTty(interactive: boolean, tty: boolean): void {
  if (interactive && tty && !process.stdin.isTTY) {
    throw new ContainerError("invalidArgument", "the input device is not a TTY", { hint: "drop -t, or run from a terminal" });
  }
}

/** This terminal's size, when stdout is one. */
export function terminalSize(): TerminalSize | undefined {
  return process.stdout.isTTY ? { rows: process.stdout.rows, cols: process.stdout.columns } : undefined;
}

/**
 * Puts stdin in raw mode (when it is a terminal) and reports every size
 * change to `onResize`; returns the function that undoes both.
 */
export function useTerminal(onResize: (size: TerminalSize) => void): () => void {
  const raw = process.stdin.isTTY === true;
  if (raw) process.stdin.setRawMode(true);
  const resized = (): void => {
    const size = terminalSize();
    if (size) onResize(size);
  };
  process.stdout.on("resize", resized);
  return () => {
    process.stdout.off("resize", resized);
    if (raw) process.stdin.setRawMode(false);
  };
}
