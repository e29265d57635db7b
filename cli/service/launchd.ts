// The apiserver as a launchd user agent on macOS: a generated plist in
// ~/Library/LaunchAgents, booted into the user's GUI domain.
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ContainerError } from "../../lib/errors/index.js";
import type { ServiceSpec } from "./types.js";

const run = promisify(execFile);
export const LAUNCHD_LABEL = "com.container-vm.container.apiserver";

function xml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const str = (s: string): string => `<string>${xml(s)}</string>`;

/**
 * The agent's plist. KeepAlive only after a failure: a crashed apiserver
 * comes back, a clean `system stop` stays stopped. AbandonProcessGroup: the
 * runtime helpers the apiserver starts (each owning a VM) must outlive it.
 */
export function launchdPlist(spec: ServiceSpec): string {
  const env = Object.entries(spec.env)
    .map(([k, v]) => `      <key>${xml(k)}</key>${str(v)}`)
    .join("\n");
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
  <dict>
    <key>Label</key>${str(LAUNCHD_LABEL)}
    <key>ProgramArguments</key>
    <array>${str(spec.node)}${str(spec.main)}</array>
    <key>EnvironmentVariables</key>
    <dict>
${env}
    </dict>
    <key>RunAtLoad</key><true/>
    <key>KeepAlive</key>
    <dict><key>SuccessfulExit</key><false/></dict>
    <key>AbandonProcessGroup</key><true/>
    <key>StandardOutPath</key>${str(spec.logPath)}
    <key>StandardErrorPath</key>${str(spec.logPath)}
  </dict>
</plist>
`;
}

export function launchdPlistPath(): string {
  return join(homedir(), "Library", "LaunchAgents", `${LAUNCHD_LABEL}.plist`);
}

const domain = (): string => `gui/${process.getuid?.() ?? 501}`;

/** Writes the plist and boots it; an agent already loaded is restarted with the new plist. */
export async function startLaunchdAgent(spec: ServiceSpec): Promise<void> {
  const path = launchdPlistPath();
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, launchdPlist(spec), { mode: 0o644 });
  await run("launchctl", ["bootout", `${domain()}/${LAUNCHD_LABEL}`]).catch(() => undefined);
  try {
    await run("launchctl", ["bootstrap", domain(), path]);
  } catch (err) {
    throw new ContainerError("unavailable", `launchctl could not load ${path}: ${(err as Error).message.split("\n")[0]}`, { cause: err });
  }
}

/** After a clean stop: unload the agent so that it does not start again at login. */
export async function stopLaunchdAgent(): Promise<void> {
  await run("launchctl", ["bootout", `${domain()}/${LAUNCHD_LABEL}`]).catch(() => undefined);
}
