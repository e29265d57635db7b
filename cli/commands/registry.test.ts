import { describe, expect, it } from "vitest";
import { isContainerError } from "../../lib/errors/index.js";
import { hostPlatform } from "../../helpers/image/oci.js";
import { pullPlatform } from "./image.js";
import { registryDomain } from "./registry.js";

describe("registryDomain", () => {
  it("takes hosts, host:port and URLs, and Docker Hub under any of its names", () => {
    expect(registryDomain("ghcr.io")).toBe("ghcr.io");
    expect(registryDomain("http://LocalHost:5000/v2/")).toBe("localhost:5000");
    expect(registryDomain("https://index.docker.io/v1/")).toBe("docker.io");
    expect(registryDomain("registry-1.docker.io")).toBe("docker.io");
    for (const bad of ["", "https://", "a b"]) expect(() => registryDomain(bad)).toThrow(/invalid registry/);
  });
});

describe("pullPlatform", () => {
  it("is --platform, or --os/--arch over the host's, or nothing (the apiserver's host default)", () => {
    const host = hostPlatform();
    expect(pullPlatform({})).toBe("");
    expect(pullPlatform({ platform: "linux/aarch64" })).toBe("linux/arm64");
    expect(pullPlatform({ arch: "arm64" })).toBe(`${host.os}/arm64`);
    expect(pullPlatform({ os: "windows" })).toBe(`windows/${host.architecture}`);
    expect(pullPlatform({ os: "linux", arch: "s390x" })).toBe("linux/s390x");
    const err = (() => {
      try {
        pullPlatform({ platform: "linux/amd64", arch: "arm64" });
      } catch (e) {
        return e;
      }
    })();
    expect(isContainerError(err, "invalidArgument")).toBe(true);
    expect(() => pullPlatform({ arch: "Bad Arch" })).toThrow(/invalid platform/);
  });
});
