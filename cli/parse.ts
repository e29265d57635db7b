// Pure parsing of CLI values; every failure is an invalidArgument the CLI
// prints as one line.
import { ContainerError } from "../lib/errors/index.js";

// One size parser for --memory, --shm-size and config.toml's [container] memory.
export { parseBytes, parseMemoryMiB } from "../lib/config/size.js";

export function parseCpus(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1) {
    throw new ContainerError("invalidArgument", `invalid CPU count "${value}"`, { hint: "use a whole number of at least 1" });
  }
  return n;
}

/**
 * The user a process runs as, from `-u name|uid[:group|gid]` and/or
 * `--uid N` / `--gid N`; "" leaves it to the image.
 */
export function parseUser(opts: { user?: string; uid?: string; gid?: string }): string {
  const numeric = (flag: string, v: string): string => {
    if (!/^\d+$/.test(v) || Number(v) > 2 ** 31 - 1) throw new ContainerError("invalidArgument", `${flag} must be a number, not "${v}"`);
    return v;
  };
  if (opts.user !== undefined && opts.uid !== undefined) {
    throw new ContainerError("invalidArgument", "--user and --uid cannot be used together");
  }
  if (opts.user !== undefined && (opts.user === "" || /[\s\0]/.test(opts.user) || opts.user.split(":").length > 2)) {
    throw new ContainerError("invalidArgument", `invalid user "${opts.user}"`, { hint: "use name|uid[:group|gid]" });
  }
  let user = opts.uid !== undefined ? numeric("--uid", opts.uid) : (opts.user ?? "");
  if (opts.gid !== undefined) {
    if (user.includes(":")) throw new ContainerError("invalidArgument", "--gid cannot be used with a group in --user");
    user = `${user}:${numeric("--gid", opts.gid)}`;
  }
  return user;
}

/** `--format` of listings and inspect: json or table. */
export function parseFormat(value: string): "json" | "table" {
  if (value !== "json" && value !== "table") {
    throw new ContainerError("invalidArgument", `unknown format "${value}"`, { hint: "use json or table" });
  }
  return value;
}

/** A whole number of seconds (`stop -t`). */
export function parseSeconds(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 86_400) {
    throw new ContainerError("invalidArgument", `invalid number of seconds "${value}"`, { hint: "use a whole number, e.g. -t 10" });
  }
  return Number(value);
}

/** A positive line count (`logs -n`). */
export function parseCount(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new ContainerError("invalidArgument", `invalid count "${value}"`, { hint: "use a whole number of at least 1" });
  }
  return Number(value);
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

/**
 * An `--env-file`'s text: KEY=VALUE lines, `#` comments and blank lines
 * skipped, a bare KEY taken from this environment (Docker's format; no quotes
 * or escapes are interpreted). `source` names the file in errors.
 */
export function parseEnvFile(text: string, source: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const entries: string[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/^\s+/, "");
    if (line === "" || line.startsWith("#")) continue;
    try {
      entries.push(...parseEnv([line], env));
    } catch {
      throw new ContainerError("invalidArgument", `${source}:${i + 1}: invalid environment variable "${line}"`, {
        hint: "each line is KEY=VALUE or KEY",
      });
    }
  }
  return entries;
}

/** `-l KEY=VALUE` (or a bare KEY, with an empty value), as a map. */
export function parseLabels(entries: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    const key = eq === -1 ? entry : entry.slice(0, eq);
    if (key === "" || /[\s\0]/.test(key)) {
      throw new ContainerError("invalidArgument", `invalid label "${entry}"`, { hint: "use -l KEY=VALUE" });
    }
    labels[key] = eq === -1 ? "" : entry.slice(eq + 1);
  }
  return labels;
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

/** Docker's `--ulimit type=soft[:hard]`; "unlimited" or -1 is no limit, a missing hard is the soft. */
export function parseUlimit(value: string): { type: string; soft: number; hard: number } {
  const m = /^([a-z]+)=([^:]+)(?::(.+))?$/.exec(value);
  const limit = (v: string): number => (v === "unlimited" || v === "-1" ? -1 : /^\d+$/.test(v) && Number.isSafeInteger(Number(v)) ? Number(v) : NaN);
  const soft = m ? limit(m[2]!) : NaN;
  const hard = m?.[3] === undefined ? soft : limit(m[3]);
  if (!m || Number.isNaN(soft) || Number.isNaN(hard)) {
    throw new ContainerError("invalidArgument", `invalid ulimit "${value}"`, { hint: "use type=soft[:hard], e.g. nofile=1024:2048" });
  }
  return { type: m[1]!, soft, hard };
}

/** Docker's `--tmpfs path[:opt,opt...]`. */
export function parseTmpfs(value: string): { path: string; options: string[] } {
  const i = value.indexOf(":");
  const path = i === -1 ? value : value.slice(0, i);
  const options = i === -1 ? [] : value.slice(i + 1).split(",").filter((o) => o !== "");
  if (!path.startsWith("/")) {
    throw new ContainerError("invalidArgument", `invalid tmpfs "${value}"`, { hint: "use an absolute path[:options], e.g. /run:size=64m" });
  }
  return { path, options };
}

/** Docker's `--security-opt` values this runtime has: `no-new-privileges[:true|false]`. */
export function parseSecurityOpts(opts: string[]): { noNewPrivileges: boolean } {
  let noNewPrivileges = false;
  for (const opt of opts) {
    const m = /^no-new-privileges(?:[:=](true|false))?$/.exec(opt);
    if (!m) {
      throw new ContainerError("unsupported", `unsupported security option "${opt}"`, { hint: "the one supported is no-new-privileges[:true|false]" });
    }
    noNewPrivileges = m[1] !== "false";
  }
  return { noNewPrivileges };
}
