// Registry credentials from the docker CLI's config file, the one place users
// already keep them: `$DOCKER_CONFIG/config.json`, else
// `~/.docker/config.json`. Only `auths` entries with an `auth` field
// (base64 of `user:password`) are read; credential helpers (`credsStore`,
// `credHelpers`) and identity tokens are not.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ContainerError } from "../../../lib/errors/index.js";
import { DEFAULT_DOMAIN } from "../reference.js";
import type { Credentials } from "./auth.js";

const DOCKER_HUB_ALIASES = ["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.DOCKER_CONFIG || path.join(env.HOME || os.homedir(), ".docker"), "config.json");
}

/** An `auths` key as a registry domain: `https://index.docker.io/v1/` → `docker.io`, `http://host:5000` → `host:5000`. */
function registryOfKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, "");
  return DOCKER_HUB_ALIASES.includes(host) ? DEFAULT_DOMAIN : host;
}

/** The credentials a parsed config.json holds for `domain` (a reference's registry), if any. */
export function credentialsFromConfig(config: unknown, domain: string, file: string): Credentials | undefined {
  const auths = (config as { auths?: unknown } | null)?.auths;
  if (typeof auths !== "object" || auths === null) return undefined;
  for (const [key, entry] of Object.entries(auths as Record<string, { auth?: unknown }>)) {
    if (registryOfKey(key) !== domain || typeof entry?.auth !== "string" || entry.auth === "") continue;
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) throw new ContainerError("invalidArgument", `${file}: auths["${key}"].auth is not base64 of user:password`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return undefined;
}

/** Reads the docker config for `domain`'s credentials; none when the file is absent. */
export async function dockerCredentials(domain: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  const file = dockerConfigPath(env);
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ContainerError("invalidArgument", `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    throw new ContainerError("invalidArgument", `${file} is not valid JSON`);
  }
  return credentialsFromConfig(config, domain, file);
}
