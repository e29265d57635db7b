import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { defaultConfig, displayPath, type Config } from "../../lib/config/index.js";
import { ContainerError } from "../../lib/errors/index.js";
import { expectContainerError } from "../../lib/errors/testing.js";
import { listProperties, parsePropertyFormat, renderProperties } from "./property.js";

const config: Config = {
  container: { cpus: 2, memoryMiB: 1536 },
  kernel: { path: "/boot/vmlinux" },
  registry: { domain: "localhost:5000" },
  network: { subnet: "192.168.64.0/24" },
  vminit: { logLevel: "debug" },
  emulation: { mode: "vm" },
};

describe("renderProperties", () => {
  it("prints a KEY VALUE table with dotted keys", () => {
    expect(renderProperties(config, "table")).toBe(
      [
        "KEY                VALUE",
        "container.cpus     2",
        "container.memory   1536M",
        "kernel.path        /boot/vmlinux",
        "registry.domain    localhost:5000",
        "network.subnet     192.168.64.0/24",
        "vminit.log_level   debug",
        "emulation.mode     vm",
        "",
      ].join("\n"),
    );
  });

  it("prints JSON in the file's shape", () => {
    expect(JSON.parse(renderProperties(config, "json"))).toEqual({
      container: { cpus: 2, memory: "1536M" },
      kernel: { path: "/boot/vmlinux" },
      registry: { domain: "localhost:5000" },
      network: { subnet: "192.168.64.0/24" },
      vminit: { log_level: "debug" },
      emulation: { mode: "vm" },
    });
  });

  it("prints TOML that is a valid config file", () => {
    expect(renderProperties(config, "toml")).toBe(
      [
        "[container]",
        "cpus = 2",
        'memory = "1536M"',
        "",
        "[kernel]",
        'path = "/boot/vmlinux"',
        "",
        "[registry]",
        'domain = "localhost:5000"',
        "",
        "[network]",
        'subnet = "192.168.64.0/24"',
        "",
        "[vminit]",
        'log_level = "debug"',
        "",
        "[emulation]",
        'mode = "vm"',
        "",
      ].join("\n"),
    );
  });

  it("leaves kernel.path out when it is not known", () => {
    expect(renderProperties(defaultConfig(), "table")).not.toContain("kernel.path");
    expect(renderProperties(defaultConfig(), "table")).toContain("container.memory   1G\n");
  });
});

describe("parsePropertyFormat", () => {
  it("takes table, json and toml only", () => {
    expect(parsePropertyFormat("toml")).toBe("toml");
    expect(expectContainerError(() => parsePropertyFormat("yaml"), "invalidArgument").hint).toBe("use table, json, toml");
  });
});

describe("listProperties", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("merges the user's file over the defaults and shows the kernel that will boot", async () => {
    const dir = await mkdtemp(join(tmpdir(), "property-test-"));
    try {
      await writeFile(join(dir, "config.toml"), "[container]\ncpus = 3\n");
      vi.stubEnv("CONTAINER_CONFIG", join(dir, "config.toml"));
      vi.stubEnv("CONTAINER_ASSETS_DIR", "/assets");
      const out = await listProperties("table");
      expect(out).toMatch(/^container\.cpus {5}3$/m);
      expect(out).toMatch(/^container\.memory {3}1G$/m);
      expect(out).toMatch(/^kernel\.path {8}\/assets\/kernel\//m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("fails with the one-line error of a bad file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "property-test-"));
    try {
      await writeFile(join(dir, "config.toml"), "[container]\n\nmemory = '1zb'\n");
      vi.stubEnv("CONTAINER_CONFIG", join(dir, "config.toml"));
      const e = await listProperties("json").catch((err: unknown) => err);
      expect(e).toBeInstanceOf(ContainerError);
      expect((e as ContainerError).message).toBe(
        `${displayPath(join(dir, "config.toml"))}:3: container.memory: invalid memory size "1zb" (use a size such as 512M or 2G)`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
