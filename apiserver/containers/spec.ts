// Pure translation of a create request plus the image's config into the
// process the container runs. Docker's rules: the command replaces the image's
// Cmd (not its Entrypoint); -e overrides the image's variables by name.
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
}

export interface ProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
}

/** A container's VM size unless asked otherwise. */
export const DEFAULT_CPUS = 1;
export const DEFAULT_MEMORY_MIB = 1024;
export const MAX_CPUS = 64;

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

export function buildProcess(request: CreateRequest, image: ImageConfig): ProcessSpec {
  validateEnv(request.env);
  const args = [...image.entrypoint, ...(request.command.length > 0 ? request.command : image.cmd)];
  if (args.length === 0) {
    throw new ContainerError("invalidArgument", `no command given and image ${request.image} has none`, {
      hint: "name a command after the image",
    });
  }
  const cwd = request.workdir || image.workingDir || "/";
  if (!cwd.startsWith("/")) {
    throw new ContainerError("invalidArgument", `the working directory must be absolute, not "${cwd}"`);
  }
  return { args, env: mergeEnv(image.env, request.env), cwd };
}
