// Where this user's state lives. The apiserver owns the data dir; sockets and
// other per-boot files go in the runtime dir, which only the user can open.
// CONTAINER_DATA_DIR / CONTAINER_RUNTIME_DIR override both (tests, several
// instances side by side).
import { homedir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CONTAINER_DATA_DIR) return env.CONTAINER_DATA_DIR;
  if (process.platform === "darwin") {
    return join(homedir(), "Library", "Application Support", "com.container-vm.container");
  }
  return join(env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "container");
}

export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CONTAINER_RUNTIME_DIR) return env.CONTAINER_RUNTIME_DIR;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, "container");
  const uid = process.getuid?.() ?? 0;
  return join(env.TMPDIR || "/tmp", `container-${uid}`);
}

export function apiserverSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(runtimeDir(env), "apiserver.sock");
}

/** The running apiserver's pid, and the lock that keeps it the only one. */
export function apiserverPidPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(runtimeDir(env), "apiserver.pid");
}

/** What an apiserver's command line names, whichever checkout it runs from. */
export const APISERVER_PROGRAM = join("apiserver", "main.js");

/**
 * Built guest assets (kernel, init filesystem). CONTAINER_ASSETS_DIR overrides.
 * Works both from sources (lib/paths) and from dist/lib/paths.
 */
export function assetsDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.CONTAINER_ASSETS_DIR || join(repoRoot(), "build");
}

/** Root of this installation (the checkout), from sources or from dist/. */
export function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes("/dist/") ? join(here, "..", "..", "..") : join(here, "..", "..");
}
