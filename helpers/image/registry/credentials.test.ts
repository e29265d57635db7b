import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import {
  authFilePath,
  credentialsFromConfig,
  dockerConfigPath,
  dockerCredentials,
  registryCredentials,
  removeLogin,
  saveLogin,
} from "./credentials.js";

const auth = (s: string): { auth: string } => ({ auth: Buffer.from(s).toString("base64") });

describe("credentialsFromConfig", () => {
  const config = {
    auths: {
      "https://index.docker.io/v1/": auth("hub:secret"),
      "http://127.0.0.1:5000/v2/": auth("me:pa:ss"),
      "ghcr.io": { auth: "" },
    },
    credsStore: "desktop",
  };

  it("matches auths keys written as URLs or hosts to a reference's registry", () => {
    expect(credentialsFromConfig(config, "docker.io", "f")).toEqual({ username: "hub", password: "secret" });
    expect(credentialsFromConfig(config, "127.0.0.1:5000", "f")).toEqual({ username: "me", password: "pa:ss" });
  });

  it("has none for other registries, empty entries or configs without auths", () => {
    expect(credentialsFromConfig(config, "127.0.0.1:5001", "f")).toBeUndefined();
    expect(credentialsFromConfig(config, "ghcr.io", "f")).toBeUndefined();
    expect(credentialsFromConfig({}, "docker.io", "f")).toBeUndefined();
    expect(credentialsFromConfig(null, "docker.io", "f")).toBeUndefined();
  });

  it("rejects an auth that is not user:password", () => {
    const err = (() => {
      try {
        credentialsFromConfig({ auths: { "r.io": auth("nocolon") } }, "r.io", "/x/config.json");
      } catch (e) {
        return e;
      }
    })();
    expect(isContainerError(err, "invalidArgument")).toBe(true);
  });
});

describe("dockerCredentials", () => {
  it("reads $DOCKER_CONFIG/config.json, and nothing when it is absent", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "docker-config-"));
    try {
      const env = { DOCKER_CONFIG: dir, HOME: "/nonexistent" };
      expect(dockerConfigPath(env)).toBe(path.join(dir, "config.json"));
      expect(await dockerCredentials("r.io", env)).toBeUndefined();
      await fs.writeFile(path.join(dir, "config.json"), JSON.stringify({ auths: { "r.io": auth("a:b") } }));
      expect(await dockerCredentials("r.io", env)).toEqual({ username: "a", password: "b" });
      await fs.writeFile(path.join(dir, "config.json"), "{");
      await expect(dockerCredentials("r.io", env)).rejects.toThrow(/is not valid JSON/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
    expect(dockerConfigPath({ HOME: "/home/x" })).toBe("/home/x/.docker/config.json");
  });
});

// A credential helper as docker-credential-helpers' programs behave: `get`
// reads the server URL on stdin, prints JSON, or says it has nothing.
const FAKE_HELPER = `#!/bin/sh
[ "$1" = get ] || { echo "unknown action $1" >&2; exit 1; }
server=$(cat)
echo "$server" >> "$(dirname "$0")/asked"
case "$server" in
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hubber","Secret":"hubpass"}' ;;
  helped.io|stored.io) echo "{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"$server-user\\",\\"Secret\\":\\"s3cret\\"}" ;;
  token.io) echo '{"ServerURL":"token.io","Username":"<token>","Secret":"refresh"}' ;;
  broken.io) echo "keychain locked" >&2; exit 3 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`;

describe("credential helpers and our own login file", () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const asked = async (): Promise<string[]> => (await fs.readFile(path.join(dir, "bin", "asked"), "utf8").catch(() => "")).split("\n").filter(Boolean);
  const dockerConfig = (config: unknown): Promise<void> => fs.writeFile(path.join(dir, "docker", "config.json"), JSON.stringify(config));

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "cred-helper-"));
    await fs.mkdir(path.join(dir, "bin"));
    await fs.mkdir(path.join(dir, "docker"));
    await fs.writeFile(path.join(dir, "bin", "docker-credential-fake"), FAKE_HELPER, { mode: 0o755 });
    env = { PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, DOCKER_CONFIG: path.join(dir, "docker"), XDG_CONFIG_HOME: path.join(dir, "xdg"), HOME: "/nonexistent" };
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("runs docker-credential-<name> get with the server URL on stdin: credHelpers first, then auths, then credsStore", async () => {
    await dockerConfig({ credHelpers: { "helped.io": "fake" }, credsStore: "fake", auths: { "helped.io": auth("file:x"), "plain.io": auth("plain:pw") } });
    expect(await dockerCredentials("helped.io", env)).toEqual({ username: "helped.io-user", password: "s3cret" });
    expect(await dockerCredentials("plain.io", env)).toEqual({ username: "plain", password: "pw" });
    expect(await dockerCredentials("stored.io", env)).toEqual({ username: "stored.io-user", password: "s3cret" });
    expect(await dockerCredentials("docker.io", env)).toEqual({ username: "hubber", password: "hubpass" });
    expect(await dockerCredentials("elsewhere.io", env)).toBeUndefined();
    expect(await asked()).toEqual(["helped.io", "stored.io", "https://index.docker.io/v1/", "elsewhere.io"]);
  });

  it("fails with one line for a helper that fails, is missing, or holds an identity token", async () => {
    await dockerConfig({ credsStore: "fake", credHelpers: { "gone.io": "missing" } });
    const failures: [string, string, RegExp][] = [
      ["broken.io", "unavailable", /^credential helper docker-credential-fake failed for broken\.io: keychain locked$/],
      ["gone.io", "notFound", /^credential helper docker-credential-missing is not on PATH$/],
      ["token.io", "unsupported", /^credential helper docker-credential-fake holds an identity token for token\.io/],
    ];
    for (const [domain, code, message] of failures) {
      const err = await dockerCredentials(domain, env).catch((e: unknown) => e);
      expect(isContainerError(err, code as "notFound"), String(err)).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
  });

  it("keeps logins in its own 0600 file, read before the docker config, and forgets them on logout", async () => {
    await dockerConfig({ auths: { "r.io": auth("docker:pw") } });
    expect(await registryCredentials("r.io", env)).toEqual({ username: "docker", password: "pw" });
    const file = await saveLogin("r.io", { username: "ours", password: "p:w" }, env);
    expect(file).toBe(path.join(dir, "xdg", "container", "auth.json"));
    expect(file).toBe(authFilePath(env));
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    await saveLogin("other.io:5000", { username: "o", password: "o" }, env);
    expect(await registryCredentials("r.io", env)).toEqual({ username: "ours", password: "p:w" });
    expect(JSON.parse(await fs.readFile(file, "utf8"))).toEqual({ auths: { "r.io": auth("ours:p:w"), "other.io:5000": auth("o:o") } });

    expect(await removeLogin("r.io", env)).toBe(true);
    expect(await removeLogin("r.io", env)).toBe(false);
    expect(await registryCredentials("r.io", env)).toEqual({ username: "docker", password: "pw" });
    expect(await registryCredentials("other.io:5000", env)).toEqual({ username: "o", password: "o" });
  });
});
