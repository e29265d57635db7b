// Pure translation of a create request plus the image's config into the
// process the container runs. Docker's rules: the command replaces the image's
// Cmd (not its Entrypoint); -e overrides the image's variables by name.
import { DEFAULT_CPUS, DEFAULT_MEMORY_MIB, MAX_CPUS, MIN_MEMORY_MIB } from "../../lib/config/defaults.js";
import type { ContainerDefaults } from "../../lib/config/types.js";
import { ContainerError } from "../../lib/errors/index.js";
import type { ImageConfig } from "../../helpers/image/types.js";

export interface CreateRequest {
  name: string;
  image: string;
  command: string[];
  env: string[];
  workdir: string;
  interactive: boolean;
  autoRemove: boolean;
  cpus: number;
  memoryMiB: number;
  labels: Record<string, string>;
  /** Docker's -u; empty: the image's user. */
  user: string;
  /** Replaces the image's entrypoint (and drops its cmd, as Docker does); "" clears it. */
  entrypoint?: string;
  readOnly: boolean;
  /** A terminal (-t). */
  tty: boolean;
  /** A kernel to boot instead of the configured one; "" for that one. */
  kernel: string;
}

export interface ProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
  /** Resolved in the guest against the rootfs's /etc/passwd and /etc/group. */
  user: string;
}

/** The built-in VM size (lib/config); the apiserver goes by the loaded config's `[container]` instead. */
export { DEFAULT_CPUS, DEFAULT_MEMORY_MIB, MAX_CPUS };

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function validateName(name: string): string {
  if (!NAME.test(name)) {
    throw new ContainerError("invalidArgument", `invalid container name "${name}"`, {
      hint: "names start with a letter or digit and use only [a-zA-Z0-9_.-], at most 128 characters",
    });
  }
  return name;
}

function envKey(entry: string): string {
  const i = entry.indexOf("=");
  return i === -1 ? entry : entry.slice(0, i);
}

export function validateEnv(entries: string[]): void {
  for (const e of entries) {
    const key = envKey(e);
    if (!e.includes("=") || key === "" || /[\s\0]/.test(key)) {
      throw new ContainerError("invalidArgument", `invalid environment variable "${e}"`, { hint: "use -e KEY=VALUE" });
    }
  }
}

export function mergeEnv(base: string[], overrides: string[]): string[] {
  const merged = new Map<string, string>();
  for (const e of [...base, ...overrides]) merged.set(envKey(e), e);
  if (!merged.has("PATH")) merged.set("PATH", DEFAULT_PATH);
  return [...merged.values()];
}

/** The VM size a create request asks for, where 0 means the configured default. */
export function resolveResources(
  requested: { cpus: number; memoryMiB: number },
  defaults: ContainerDefaults,
): { cpus: number; memoryMiB: number } {
  const cpus = requested.cpus || defaults.cpus;
  if (cpus > MAX_CPUS) throw new ContainerError("invalidArgument", `at most ${MAX_CPUS} CPUs, not ${cpus}`);
  const memoryMiB = requested.memoryMiB || defaults.memoryMiB;
  if (memoryMiB < MIN_MEMORY_MIB) {
    throw new ContainerError("invalidArgument", `at least ${MIN_MEMORY_MIB} MiB of memory, not ${memoryMiB} MiB`);
  }
  return { cpus, memoryMiB };
}

export function buildProcess(request: CreateRequest, image: ImageConfig): ProcessSpec {
  validateEnv(request.env);
  const entrypoint = request.entrypoint === undefined ? image.entrypoint : request.entrypoint === "" ? [] : [request.entrypoint];
  const cmd = request.command.length > 0 ? request.command : request.entrypoint === undefined ? image.cmd : [];
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) {
    throw new ContainerError("invalidArgument", `no command given and image ${request.image} has none`, {
      hint: "name a command after the image",
    });
  }
  const cwd = request.workdir || image.workingDir || "/";
  if (!cwd.startsWith("/")) {
    throw new ContainerError("invalidArgument", `the working directory must be absolute, not "${cwd}"`);
  }
  return { args, env: mergeEnv(image.env, request.env), cwd, user: request.user || image.user };
}
