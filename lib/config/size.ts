// Memory sizes, one parser for `run --memory` and `[container] memory`.
import { ContainerError } from "../errors/index.js";
import { MIN_MEMORY_MIB } from "./defaults.js";

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Docker's size syntax: a number of bytes with an optional k/m/g/t suffix (b, i and B tolerated). `what` names it in errors. */
export function parseBytes(value: string, what = "size"): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?$/i.exec(value.trim());
  if (!m) {
    throw new ContainerError("invalidArgument", `invalid ${what} "${value}"`, { hint: "use a size such as 512M or 2G" });
  }
  const bytes = Math.floor(Number(m[1]) * (UNITS[m[2]!.toLowerCase()] ?? 1));
  if (!Number.isSafeInteger(bytes)) throw new ContainerError("invalidArgument", `${what} ${value} is too large`);
  return bytes;
}

/** Memory in whole MiB, with parseBytes's syntax. */
export function parseMemoryMiB(value: string): number {
  const bytes = parseBytes(value, "memory size");
  const mib = Math.floor(bytes / 1024 ** 2);
  if (mib < MIN_MEMORY_MIB) {
    throw new ContainerError("invalidArgument", `memory ${value} is below the minimum of ${MIN_MEMORY_MIB}M`);
  }
  if (!Number.isSafeInteger(mib)) throw new ContainerError("invalidArgument", `memory ${value} is too large`);
  return mib;
}

/** A size parseMemoryMiB reads back: whole gibibytes as "2G", otherwise "1536M". */
export function formatMemory(mib: number): string {
  return mib % 1024 === 0 ? `${mib / 1024}G` : `${mib}M`;
}
