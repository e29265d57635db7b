// Pure parsing of CLI values; every failure is an invalidArgument the CLI
// prints as one line.
import { ContainerError } from "../lib/errors/index.js";

// One memory-size parser for --memory and config.toml's [container] memory.
export { parseMemoryMiB } from "../lib/config/size.js";

export function parseCpus(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1) {
    throw new ContainerError("invalidArgument", `invalid CPU count "${value}"`, { hint: "use a whole number of at least 1" });
  }
  return n;
}

/**
 * `-e KEY=VALUE` as given; `-e KEY` takes KEY's value from this environment
 * and is dropped when unset, as Docker does.
 */
export function parseEnv(entries: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    const key = eq === -1 ? entry : entry.slice(0, eq);
    if (key === "" || /[\s\0]/.test(key)) {
      throw new ContainerError("invalidArgument", `invalid environment variable "${entry}"`, { hint: "use -e KEY=VALUE" });
    }
    if (eq !== -1) out.push(entry);
    else if (env[key] !== undefined) out.push(`${key}=${env[key]}`);
  }
  return out;
}

const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, KILL: 9, USR1: 10, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, CONT: 18, STOP: 19, TSTP: 20, WINCH: 28,
};

export function parseSignal(value: string): number {
  const upper = value.toUpperCase().replace(/^SIG/, "");
  const n = /^\d+$/.test(upper) ? Number(upper) : SIGNALS[upper];
  if (n === undefined || n < 1 || n > 64) throw new ContainerError("invalidArgument", `unknown signal "${value}"`);
  return n;
}

export function signalNumber(name: NodeJS.Signals): number {
  return parseSignal(name);
}
