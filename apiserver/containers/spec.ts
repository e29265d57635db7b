// Pure translation of a create request plus the image's config into the
// process the container runs. Docker's rules: the command replaces the image's
// Cmd (not its Entrypoint); -e overrides the image's variables by name.
import { DEFAULT_CPUS, DEFAULT_MEMORY_MIB, MAX_CPUS, MIN_MEMORY_MIB } from "../../lib/config/defaults.js";
import type { ContainerDefaults } from "../../lib/config/types.js";
import { ContainerError } from "../../lib/errors/index.js";
import type { ImageConfig } from "../../helpers/image/types.js";
import type { Isolation } from "../../helpers/runtime/config.js";
import type { GuestArch } from "../../helpers/hypervisor/types.js";

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
  isolation: Isolation;
  /** Docker's --platform; "" for the host's. */
  platform: string;
}

/** The platforms a container can have: an image architecture and the guest that runs it. */
const PLATFORMS: Record<string, GuestArch> = { amd64: "x86_64", x86_64: "x86_64", arm64: "aarch64", aarch64: "aarch64" };

/** Docker's `--platform [linux/]ARCH[/VARIANT]`, as the guest architecture; "" gives `host`. */
export function parsePlatform(platform: string, host: GuestArch): GuestArch {
  if (platform === "") return host;
  const [os, arch, ...rest] = platform.includes("/") ? platform.toLowerCase().split("/") : ["linux", platform.toLowerCase()];
  const guest = PLATFORMS[arch ?? ""];
  if (os !== "linux" || !guest || rest.length > 1 || (rest.length === 1 && !(guest === "aarch64" && rest[0] === "v8"))) {
    throw new ContainerError("invalidArgument", `unsupported platform "${platform}"`, { hint: "use linux/amd64 or linux/arm64" });
  }
  return guest;
}

/** The OCI architecture of a guest's images. */
export function imageArch(arch: GuestArch): "amd64" | "arm64" {
  return arch === "x86_64" ? "amd64" : "arm64";
}

/** Docker's --ulimit names. */
const ULIMIT_TYPES = new Set(["as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"]);
const CAPABILITY = /^(CAP_)?[A-Z_]+$/i;
const RESERVED_TMPFS = /^\/(proc(\/.*)?|sys|dev|dev\/pts)?$/;

/** Checks what the guest would refuse only once the VM has booted. */
export function validateIsolation(iso: Isolation): void {
  for (const cap of [...iso.capAdd, ...iso.capDrop]) {
    if (!CAPABILITY.test(cap)) throw new ContainerError("invalidArgument", `invalid capability "${cap}"`, { hint: "name one such as NET_ADMIN or CAP_SYS_TIME, or ALL" });
  }
  for (const u of iso.ulimits) {
    if (!ULIMIT_TYPES.has(u.type)) {
      throw new ContainerError("invalidArgument", `unknown ulimit type "${u.type}"`, { hint: `use one of ${[...ULIMIT_TYPES].join(", ")}` });
    }
    const unlimited = (n: number): boolean => n === -1;
    if (!unlimited(u.hard) && (unlimited(u.soft) || u.soft > u.hard)) {
      throw new ContainerError("invalidArgument", `ulimit ${u.type}: the soft limit ${u.soft} is above the hard limit ${u.hard}`);
    }
  }
  for (const t of iso.tmpfs) {
    if (!t.path.startsWith("/") || t.path.split("/").includes("..")) {
      throw new ContainerError("invalidArgument", `tmpfs path "${t.path}" must be absolute`);
    }
    if (RESERVED_TMPFS.test(t.path.replace(/\/+$/, "") || "/")) throw new ContainerError("invalidArgument", `tmpfs cannot be mounted on ${t.path}`);
  }
  if (iso.shmSizeBytes < 0) throw new ContainerError("invalidArgument", "the shm size cannot be negative");
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
