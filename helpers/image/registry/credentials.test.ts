import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { credentialsFromConfig, dockerConfigPath, dockerCredentials } from "./credentials.js";

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
