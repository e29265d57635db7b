// The apiserver as a launchd user agent on macOS: a generated plist in
// ~/Library/LaunchAgents, booted into the user's GUI domain. The runtime
// helpers are not launchd jobs: the apiserver forks them, and they (and the
// VM host processes they fork) outlive it because launchd abandons its
// process group instead of killing it.
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { ContainerError } from "../../lib/errors/index.js";
import type { ServiceSpec } from "./types.js";

export const LAUNCHD_LABEL = "com.container-vm.container.apiserver";
/** Seconds launchd waits before restarting a crashed apiserver (its default is 10). */
export const RESTART_THROTTLE_S = 2;

function xml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const str = (s: string): string => `<string>${xml(s)}</string>`;

/**
 * The agent's plist. KeepAlive only after a failure: a crashed apiserver
 * comes back (after RESTART_THROTTLE_S), a clean `system stop` stays stopped.
 * AbandonProcessGroup: the runtime helpers the apiserver starts (each owning
 * a VM) must outlive it. Interactive: the VMs it runs are the user's work,
 * not background chores to be throttled.
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
    <key>ThrottleInterval</key><integer>${RESTART_THROTTLE_S}</integer>
    <key>AbandonProcessGroup</key><true/>
    <key>ProcessType</key>${str("Interactive")}
    <key>StandardOutPath</key>${str(spec.logPath)}
    <key>StandardErrorPath</key>${str(spec.logPath)}
  </dict>
</plist>
`;
}

export function launchdPlistPath(home: string = homedir()): string {
  return join(home, "Library", "LaunchAgents", `${LAUNCHD_LABEL}.plist`);
}

/** The user's GUI domain, where per-user agents live. */
export function launchdDomain(uid: number): string {
  return `gui/${uid}`;
}

/** The launchctl argv for each step (without "launchctl"). */
export function launchctlArgs(uid: number, plistPath: string): Record<"enable" | "bootstrap" | "bootout", string[]> {
  const service = `${launchdDomain(uid)}/${LAUNCHD_LABEL}`;
  return {
    // A service once disabled (`launchctl disable`) refuses to bootstrap.
    enable: ["enable", service],
    bootstrap: ["bootstrap", launchdDomain(uid), plistPath],
    bootout: ["bootout", service],
  };
}

export interface LaunchdDeps {
  /** Runs launchctl with these arguments; rejects on a non-zero exit. */
  launchctl(args: string[]): Promise<unknown>;
  uid: number;
  plistPath: string;
  /** Pause between bootstrap attempts while a booted-out agent is still going away. */
  sleep(ms: number): Promise<void>;
}

const run = promisify(execFile);

function defaultDeps(): LaunchdDeps {
  return {
    launchctl: (args) => run("launchctl", args),
    uid: process.getuid?.() ?? 501,
    plistPath: launchdPlistPath(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  };
}

const BOOTSTRAP_ATTEMPTS = 5;

/** Writes the plist and boots it; an agent already loaded is replaced by the new plist. */
export async function startLaunchdAgent(spec: ServiceSpec, deps: LaunchdDeps = defaultDeps()): Promise<void> {
  const args = launchctlArgs(deps.uid, deps.plistPath);
  await mkdir(dirname(deps.plistPath), { recursive: true });
  await writeFile(deps.plistPath, launchdPlist(spec), { mode: 0o644 });
  await deps.launchctl(args.bootout).catch(() => undefined);
  await deps.launchctl(args.enable).catch(() => undefined);
  // bootout returns before the old job is gone; bootstrap fails ("Input/output error") until it is.
  for (let attempt = 1; ; attempt++) {
    try {
      await deps.launchctl(args.bootstrap);
      return;
    } catch (err) {
      if (attempt >= BOOTSTRAP_ATTEMPTS) {
        throw new ContainerError("unavailable", `launchctl could not load ${deps.plistPath}: ${(err as Error).message.split("\n")[0]}`, {
          hint: `see \`launchctl print ${launchdDomain(deps.uid)}/${LAUNCHD_LABEL}\` and the apiserver log`,
          cause: err,
        });
      }
      await deps.sleep(200 * attempt);
    }
  }
}

/** After a clean stop: unload the agent so that it does not start again at login. */
export async function stopLaunchdAgent(deps: LaunchdDeps = defaultDeps()): Promise<void> {
  await deps.launchctl(launchctlArgs(deps.uid, deps.plistPath).bootout).catch(() => undefined);
}
