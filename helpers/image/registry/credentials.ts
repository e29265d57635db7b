// Registry credentials, looked up for one registry in this order:
//
//   1. Our own file, written by `container registry login`:
//      `$XDG_CONFIG_HOME/container/auth.json` (else `~/.config/container/`),
//      mode 0600, in the docker config's `auths` format.
//   2. The docker CLI's config (`$DOCKER_CONFIG/config.json`, else
//      `~/.docker/config.json`), the one place users already keep them, read
//      as the docker CLI reads it: the registry's `credHelpers` entry, else
//      an `auths` entry with an `auth` field (base64 of `user:password`), else
//      the `credsStore` helper.
//
// A credential helper is the program `docker-credential-<name>` on PATH,
// run as `docker-credential-<name> get` with the server URL on stdin; it
// prints `{"ServerURL","Username","Secret"}`, or fails saying the
// credentials are not found. Identity tokens (Username `<token>`, an OAuth
// refresh token) are not supported.
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ContainerError } from "../../../lib/errors/index.js";
import { writeFileAtomic } from "../../../lib/fs/index.js";
import { DEFAULT_DOMAIN } from "../reference.js";
import type { Credentials } from "./auth.js";

const DOCKER_HUB_ALIASES = ["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];
/** The key Docker Hub's credentials are stored under, by docker and by its helpers. */
const DOCKER_HUB_SERVER = "https://index.docker.io/v1/";
const HELPER_TIMEOUT_MS = 60_000;

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.DOCKER_CONFIG || path.join(env.HOME || os.homedir(), ".docker"), "config.json");
}

/** Where `container registry login` keeps credentials. */
export function authFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), ".config"), "container", "auth.json");
}

/** A config key as a registry domain: `https://index.docker.io/v1/` → `docker.io`, `http://host:5000` → `host:5000`. */
function registryOfKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, "");
  return DOCKER_HUB_ALIASES.includes(host) ? DEFAULT_DOMAIN : host;
}

/** What a credential helper is asked for: Docker Hub's historic URL, else the registry's host[:port]. */
function serverUrl(domain: string): string {
  return domain === DEFAULT_DOMAIN ? DOCKER_HUB_SERVER : domain;
}

interface ConfigFile {
  auths?: Record<string, { auth?: unknown }>;
  credHelpers?: Record<string, unknown>;
  credsStore?: unknown;
}

/** The credentials a parsed config's `auths` hold for `domain` (a reference's registry), if any. */
export function credentialsFromConfig(config: unknown, domain: string, file: string): Credentials | undefined {
  const auths = (config as ConfigFile | null)?.auths;
  if (typeof auths !== "object" || auths === null) return undefined;
  for (const [key, entry] of Object.entries(auths)) {
    if (registryOfKey(key) !== domain || typeof entry?.auth !== "string" || entry.auth === "") continue;
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) throw new ContainerError("invalidArgument", `${file}: auths["${key}"].auth is not base64 of user:password`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return undefined;
}

/** The credential helper a parsed docker config names for `domain`: its `credHelpers` entry, else `credsStore`. */
export function helperFromConfig(config: unknown, domain: string): { name: string; store: boolean } | undefined {
  const c = config as ConfigFile | null;
  for (const [key, name] of Object.entries(c?.credHelpers ?? {})) {
    if (registryOfKey(key) === domain && typeof name === "string" && name !== "") return { name, store: false };
  }
  return typeof c?.credsStore === "string" && c.credsStore !== "" ? { name: c.credsStore, store: true } : undefined;
}

/** A JSON file's content; undefined when it is absent. */
async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ContainerError("invalidArgument", `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ContainerError("invalidArgument", `${file} is not valid JSON`);
  }
}

/** Runs `docker-credential-<name> get` for `domain` (see the file comment); undefined when it has nothing. */
export async function helperCredentials(name: string, domain: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  const program = `docker-credential-${name}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new ContainerError("invalidArgument", `bad credential helper name "${name}" in ${dockerConfigPath(env)}`);
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(program, ["get"], { env, stdio: ["pipe", "pipe", "pipe"], timeout: HELPER_TIMEOUT_MS });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "ENOENT"
          ? new ContainerError("notFound", `credential helper ${program} is not on PATH`, { hint: `install it, or remove it from ${dockerConfigPath(env)}` })
          : new ContainerError("unavailable", `credential helper ${program} failed: ${err.message}`, { cause: err }),
      ),
    );
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(serverUrl(domain));
  });
  if (code !== 0) {
    // The helpers' own words for "nothing stored" (docker-credential-helpers' errCredentialsNotFound).
    if (/credentials not found/i.test(stdout + stderr)) return undefined;
    const why = (stdout.trim() || stderr.trim() || `exit status ${code}`).split("\n")[0];
    throw new ContainerError("unavailable", `credential helper ${program} failed for ${domain}: ${why}`);
  }
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(stdout) as typeof parsed;
  } catch {
    throw new ContainerError("invalidArgument", `credential helper ${program} printed no JSON for ${domain}`);
  }
  if (typeof parsed.Username !== "string" || typeof parsed.Secret !== "string") {
    throw new ContainerError("invalidArgument", `credential helper ${program} printed no Username and Secret for ${domain}`);
  }
  if (parsed.Username === "<token>") {
    throw new ContainerError("unsupported", `credential helper ${program} holds an identity token for ${domain}, which is not supported`, {
      hint: `log in with a password or access token: container registry login ${domain}`,
    });
  }
  if (parsed.Username === "" && parsed.Secret === "") return undefined;
  return { username: parsed.Username, password: parsed.Secret };
}

/** The docker config's credentials for `domain` (see the file comment); none when the file is absent. */
export async function dockerCredentials(domain: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  const file = dockerConfigPath(env);
  const config = await readJson(file);
  if (config === undefined) return undefined;
  const helper = helperFromConfig(config, domain);
  if (helper && !helper.store) return helperCredentials(helper.name, domain, env);
  return credentialsFromConfig(config, domain, file) ?? (helper ? helperCredentials(helper.name, domain, env) : undefined);
}

/** The credentials for `domain`: ours first, then the docker config's. */
export async function registryCredentials(domain: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  const file = authFilePath(env);
  return credentialsFromConfig(await readJson(file), domain, file) ?? dockerCredentials(domain, env);
}

/** Reads our file's `auths`, applies `edit`, and writes it back atomically, 0600 (its directory 0700). */
async function editAuthFile(env: NodeJS.ProcessEnv, edit: (auths: Record<string, unknown>) => void): Promise<void> {
  const file = authFilePath(env);
  const config = ((await readJson(file)) ?? {}) as { auths?: Record<string, unknown> };
  if (typeof config !== "object" || config === null || Array.isArray(config)) throw new ContainerError("invalidArgument", `${file} is not a JSON object`);
  const auths = { ...(config.auths ?? {}) };
  edit(auths);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${JSON.stringify({ ...config, auths }, null, 2)}\n`, 0o600);
}

/** Stores `credentials` for `domain` in our file, replacing any there. */
export async function saveLogin(domain: string, credentials: Credentials, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  await editAuthFile(env, (auths) => {
    for (const key of Object.keys(auths)) if (registryOfKey(key) === domain) delete auths[key];
    auths[domain] = { auth: Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64") };
  });
  return authFilePath(env);
}

/** Removes `domain`'s credentials from our file; false when there were none. */
export async function removeLogin(domain: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const file = authFilePath(env);
  const config = (await readJson(file)) as ConfigFile | undefined;
  if (!Object.keys(config?.auths ?? {}).some((key) => registryOfKey(key) === domain)) return false;
  await editAuthFile(env, (auths) => {
    for (const key of Object.keys(auths)) if (registryOfKey(key) === domain) delete auths[key];
  });
  return true;
}
