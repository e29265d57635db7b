// Which service manager runs the apiserver here: launchd on macOS, a systemd
// user unit where a user manager runs, else a detached daemon with a pid file.
// CONTAINER_SERVICE=detached|systemd|launchd overrides the choice.
import { ContainerError } from "../../lib/errors/index.js";
import { systemdAvailable } from "./systemd.js";
import type { ServiceKind, ServiceSpec } from "./types.js";

export type { ServiceKind, ServiceSpec };

const KINDS: readonly ServiceKind[] = ["launchd", "systemd", "detached"];

export function serviceKind(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): ServiceKind {
  const forced = env.CONTAINER_SERVICE;
  if (forced !== undefined && forced !== "") {
    if (!(KINDS as readonly string[]).includes(forced)) {
      throw new ContainerError("invalidArgument", `CONTAINER_SERVICE="${forced}" is not one of ${KINDS.join(", ")}`);
    }
    return forced as ServiceKind;
  }
  if (platform === "darwin") return "launchd";
  return systemdAvailable(env) ? "systemd" : "detached";
}

/**
 * The caller's settings the apiserver must see wherever it is started from
 * (PATH: it runs QEMU and qemu-img; NODE_EXTRA_CA_CERTS: the registries' CAs
 * it trusts, which the pull hint tells users to set for `system start`).
 */
export function serviceEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const keep = Object.entries(env).filter(
    ([k, v]) => v !== undefined && (/^CONTAINER_/.test(k) || /^XDG_(DATA|CONFIG|RUNTIME)_/.test(k) || k === "PATH" || k === "HOME" || k === "NODE_EXTRA_CA_CERTS"),
  );
  return Object.fromEntries(keep.filter(([k]) => k !== "CONTAINER_SERVICE")) as Record<string, string>;
}
