// The apiserver as a systemd user unit, where a user manager runs. The unit is
// generated from the installation in use and (re)written on every `system
// start`, so it always points at this checkout's Node and apiserver.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ContainerError } from "../../lib/errors/index.js";
import type { ServiceSpec } from "./types.js";

const run = promisify(execFile);
export const SYSTEMD_UNIT = "container-apiserver.service";

/** Whether this user has a running systemd user manager (its private socket exists). */
export function systemdAvailable(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.XDG_RUNTIME_DIR) && existsSync(join(env.XDG_RUNTIME_DIR!, "systemd", "private"));
}

/** systemd quotes: a word with spaces, quotes or backslashes is double-quoted with C escapes. */
function quote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * The unit text. KillMode=process: stopping or restarting the unit must end
 * only the apiserver, never the runtime helpers it started (they live in the
 * unit's cgroup and own running VMs). Restart=on-failure brings a crashed
 * apiserver back; a clean `system stop` (exit 0) stays stopped.
 */
export function systemdUnit(spec: ServiceSpec): string {
  const env = Object.entries(spec.env).map(([k, v]) => `Environment=${quote(`${k}=${v}`)}`);
  return [
    "[Unit]",
    "Description=container apiserver (one micro-VM per container)",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${[spec.node, spec.main].map(quote).join(" ")}`,
    ...env,
    `StandardOutput=append:${spec.logPath}`,
    `StandardError=append:${spec.logPath}`,
    "KillMode=process",
    "Restart=on-failure",
    "RestartSec=1",
    "",
    "[Install]",
    "WantedBy=default.target",
    "",
  ].join("\n");
}

export function systemdUnitPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "systemd", "user", SYSTEMD_UNIT);
}

export async function startSystemdUnit(spec: ServiceSpec): Promise<void> {
  const path = systemdUnitPath();
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, systemdUnit(spec), { mode: 0o644 });
  try {
    await run("systemctl", ["--user", "daemon-reload"]);
    await run("systemctl", ["--user", "start", SYSTEMD_UNIT]);
  } catch (err) {
    throw new ContainerError("unavailable", `systemctl --user could not start ${SYSTEMD_UNIT}: ${(err as Error).message.split("\n")[0]}`, {
      hint: "see `journalctl --user -u container-apiserver`, or set CONTAINER_SERVICE=detached",
      cause: err,
    });
  }
}
