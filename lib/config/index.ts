// The user's configuration file, `config.toml`: where it is, reading it, and
// strict validation. Every problem is one invalidArgument line naming the
// file, the line and the dotted key. A missing file means the defaults.
//
// The path is $CONTAINER_CONFIG, else $XDG_CONFIG_HOME/container/config.toml,
// else ~/.config/container/config.toml — on macOS too, where ~/.config is as
// usual for command-line tools as ~/Library/Preferences.
import { statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { parse, TomlError, type TomlTable, type TomlValue } from "smol-toml";
import { ContainerError } from "../errors/index.js";
import { defaultConfig, MAX_CPUS } from "./defaults.js";
import { keyLines, lineOf } from "./locate.js";
import { formatMemory, parseMemoryMiB } from "./size.js";
import type { Config, EmulationMode, VminitLogLevel } from "./types.js";

export * from "./defaults.js";
export { formatMemory, parseMemoryMiB } from "./size.js";
export type { Config, ContainerDefaults, EmulationMode, VminitLogLevel } from "./types.js";

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CONTAINER_CONFIG) return env.CONTAINER_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "container", "config.toml");
}

/** Reads and validates the config file; the defaults when there is none at the default path. */
export async function loadConfig(env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const file = configPath(env);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A file named on purpose must exist; the default one is optional.
    if (code === "ENOENT" && !env.CONTAINER_CONFIG) return defaultConfig();
    const why = code === "ENOENT" ? "no such file (named by $CONTAINER_CONFIG)" : (err as Error).message;
    throw new ContainerError("invalidArgument", `${displayPath(file)}: cannot read the config file: ${why}`, { cause: err });
  }
  return parseConfig(text, { file });
}

export interface ParseOptions {
  /** The file the text came from, for messages. */
  file: string;
  /** Whether a path is an existing regular file (`kernel.path`); stat by default. */
  isFile?: (path: string) => boolean;
}

/** The defaults with the document's settings merged in; invalidArgument naming file, line and key on any problem. */
export function parseConfig(text: string, options: ParseOptions): Config {
  const where = displayPath(options.file);
  let doc: TomlTable;
  try {
    // Integers as bigint, so `cpus = 2.0` (a float) is told apart from `cpus = 2`.
    doc = parse(text, { integersAsBigInt: true });
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const why = err.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
    throw new ContainerError("invalidArgument", `${where}:${err.line}:${err.column}: invalid TOML: ${why}`, { cause: err });
  }
  const lines = keyLines(text);
  const fail = (path: readonly string[], why: string, cause?: unknown): ContainerError => {
    const line = lineOf(lines, path);
    return new ContainerError("invalidArgument", `${where}${line === undefined ? "" : `:${line}`}: ${dotted(path)}: ${why}`, { cause });
  };

  const config = defaultConfig();
  const context: FieldContext = { isFile: options.isFile ?? isRegularFile };
  for (const [table, body] of Object.entries(doc)) {
    const fields = Object.hasOwn(SCHEMA, table) ? SCHEMA[table] : undefined;
    if (!fields) {
      const what = isTable(body) ? "unknown table" : "unknown key";
      throw fail([table], `${what} (the tables are ${Object.keys(SCHEMA).join(", ")})`);
    }
    if (!isTable(body)) throw fail([table], `must be a table, not ${describe(body)}`);
    for (const [key, value] of Object.entries(body)) {
      const set = Object.hasOwn(fields, key) ? fields[key] : undefined;
      if (!set) throw fail([table, key], `unknown key (${table} takes ${Object.keys(fields).join(", ")})`);
      try {
        set(config, value, context);
      } catch (err) {
        if (!(err instanceof ContainerError)) throw err;
        throw fail([table, key], err.hint ? `${err.message} (${err.hint})` : err.message, err);
      }
    }
  }
  return config;
}

/** The merged config in the file's own shape and key names: what `system property list` prints. */
export function configDocument(config: Config): Record<string, Record<string, string | number>> {
  return {
    container: { cpus: config.container.cpus, memory: formatMemory(config.container.memoryMiB) },
    kernel: config.kernel.path === undefined ? {} : { path: config.kernel.path },
    registry: { domain: config.registry.domain },
    network: { subnet: config.network.subnet },
    vminit: { log_level: config.vminit.logLevel },
    emulation: { mode: config.emulation.mode },
  };
}

/** A path for messages: the home directory as `~`. */
export function displayPath(path: string, home = homedir()): string {
  return home && home !== "/" && (path === home || path.startsWith(`${home}/`)) ? `~${path.slice(home.length)}` : path;
}

// ---- the schema: one setter per key, throwing invalidArgument with the reason ----

interface FieldContext {
  isFile: (path: string) => boolean;
}
type Setter = (config: Config, value: TomlValue, context: FieldContext) => void;

const LOG_LEVELS: readonly VminitLogLevel[] = ["info", "debug"];
const EMULATION_MODES: readonly EmulationMode[] = ["user", "vm"];

const SCHEMA: Record<string, Record<string, Setter>> = {
  container: {
    cpus: (c, v) => {
      const n = integer(v);
      if (n < 1n || n > BigInt(MAX_CPUS)) throw invalid(`${n} is not a CPU count (use a whole number from 1 to ${MAX_CPUS})`);
      c.container.cpus = Number(n);
    },
    memory: (c, v) => {
      if (typeof v === "bigint") c.container.memoryMiB = parseMemoryMiB(String(v));
      else if (typeof v === "string") c.container.memoryMiB = parseMemoryMiB(v);
      else throw invalid(`must be a size such as "2G" or a number of bytes, not ${describe(v)}`);
    },
  },
  kernel: {
    path: (c, v, context) => {
      const s = string(v);
      const path = s.startsWith("~/") ? join(homedir(), s.slice(2)) : s;
      if (!isAbsolute(path)) throw invalid(`"${s}" is not an absolute path`);
      if (!context.isFile(path)) throw invalid(`${path} does not exist or is not a file`);
      c.kernel.path = path;
    },
  },
  registry: {
    domain: (c, v) => {
      c.registry.domain = registryDomain(string(v));
    },
  },
  network: {
    subnet: (c, v) => {
      c.network.subnet = subnet(string(v));
    },
  },
  vminit: {
    log_level: (c, v) => {
      const s = string(v);
      if (!(LOG_LEVELS as readonly string[]).includes(s)) throw invalid(`"${s}" is not a log level (use ${LOG_LEVELS.join(" or ")})`);
      c.vminit.logLevel = s as VminitLogLevel;
    },
  },
  emulation: {
    mode: (c, v) => {
      const s = string(v);
      if (!(EMULATION_MODES as readonly string[]).includes(s)) throw invalid(`"${s}" is not an emulation mode (use ${EMULATION_MODES.join(" or ")})`);
      c.emulation.mode = s as EmulationMode;
    },
  },
};

const invalid = (why: string): ContainerError => new ContainerError("invalidArgument", why);

function integer(v: TomlValue): bigint {
  if (typeof v !== "bigint") throw invalid(`must be an integer, not ${describe(v)}`);
  return v;
}

function string(v: TomlValue): string {
  if (typeof v !== "string") throw invalid(`must be a string, not ${describe(v)}`);
  if (v === "") throw invalid("must not be empty");
  return v;
}

const LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
const HOST_PORT = new RegExp(`^(${LABEL}(?:\\.${LABEL})*)(?::(\\d{1,5}))?$`);

/** `host[:port]`, as the first component of an image reference. */
function registryDomain(s: string): string {
  const m = HOST_PORT.exec(s);
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!m || (port !== undefined && (port < 1 || port > 65535))) {
    throw invalid(`"${s}" is not a registry host (use host or host:port, e.g. docker.io or localhost:5000)`);
  }
  return s;
}

/** An IPv4 network in CIDR form, with room for a gateway and at least one container. */
function subnet(s: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  const octets = m ? m.slice(1, 5) : [];
  const prefix = Number(m?.[5]);
  if (!m || octets.some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith("0"))) || prefix > 32) {
    throw invalid(`"${s}" is not an IPv4 subnet (use CIDR form, e.g. 192.168.64.0/24)`);
  }
  if (prefix > 30) throw invalid(`"${s}" is too small for a gateway and a container (use at most /30, e.g. /24)`);
  const address = octets.reduce((a, o) => a * 256 + Number(o), 0);
  const network = address - (address % 2 ** (32 - prefix));
  if (network !== address) {
    const dotted4 = [24, 16, 8, 0].map((shift) => Math.floor(network / 2 ** shift) % 256).join(".");
    throw invalid(`"${s}" has host bits set (the network is ${dotted4}/${prefix})`);
  }
  return s;
}

function isTable(v: TomlValue): v is TomlTable {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === null || proto === Object.prototype; // smol-toml's tables have none; dates are TomlDate
}

function describe(v: TomlValue): string {
  if (typeof v === "bigint") return `an integer (${v})`;
  if (typeof v === "number") return `a float (${v})`;
  if (typeof v === "string") return `a string ("${v}")`;
  if (typeof v === "boolean") return `a boolean (${v})`;
  if (Array.isArray(v)) return "an array";
  return isTable(v) ? "a table" : "a date";
}

/** A key path as TOML writes it: bare segments as they are, others quoted. */
function dotted(path: readonly string[]): string {
  return path.map((p) => (/^[A-Za-z0-9_-]+$/.test(p) ? p : JSON.stringify(p))).join(".");
}

function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
