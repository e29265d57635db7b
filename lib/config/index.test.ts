import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "smol-toml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContainerError } from "../errors/index.js";
import { expectContainerError } from "../errors/testing.js";
import {
  configDocument,
  configPath,
  defaultConfig,
  displayPath,
  formatMemory,
  loadConfig,
  parseConfig,
  parseMemoryMiB,
  type Config,
} from "./index.js";

const FILE = "/etc/test/config.toml";
const exists = new Set(["/boot/vmlinux", join(homedir(), "kernels/vmlinux")]);
const parseText = (text: string): Config => parseConfig(text, { file: FILE, isFile: (p) => exists.has(p) });
const invalid = (text: string): string => expectContainerError(() => parseText(text), "invalidArgument").message;
/** The config with one key set, as `[table]\nkey = value` (the key on line 2). */
const withKey = (table: string, key: string, value: string): Config => parseText(`[${table}]\n${key} = ${value}\n`);
const keyError = (table: string, key: string, value: string): string => invalid(`[${table}]\n${key} = ${value}\n`);

describe("configPath", () => {
  it("is $CONTAINER_CONFIG, else under $XDG_CONFIG_HOME, else under ~/.config", () => {
    expect(configPath({ CONTAINER_CONFIG: "/x/c.toml", XDG_CONFIG_HOME: "/xdg" })).toBe("/x/c.toml");
    expect(configPath({ XDG_CONFIG_HOME: "/xdg" })).toBe("/xdg/container/config.toml");
    expect(configPath({})).toBe(join(homedir(), ".config", "container", "config.toml"));
  });
});

describe("loadConfig", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "config-test-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("gives the defaults when there is no file at the default path", async () => {
    expect(await loadConfig({ XDG_CONFIG_HOME: join(dir, "empty") })).toEqual(defaultConfig());
  });

  it("reads the file under $XDG_CONFIG_HOME", async () => {
    await mkdir(join(dir, "xdg", "container"), { recursive: true });
    await writeFile(join(dir, "xdg", "container", "config.toml"), "[container]\ncpus = 3\n");
    expect((await loadConfig({ XDG_CONFIG_HOME: join(dir, "xdg") })).container.cpus).toBe(3);
  });

  it("reads $CONTAINER_CONFIG, and names it in errors", async () => {
    const file = join(dir, "named.toml");
    await writeFile(file, "[container]\nmemory = '2G'\n");
    expect((await loadConfig({ CONTAINER_CONFIG: file })).container.memoryMiB).toBe(2048);
    await writeFile(file, "\n[container]\nmemory = '1zb'\n");
    await expect(loadConfig({ CONTAINER_CONFIG: file })).rejects.toThrow(`${displayPath(file)}:3: container.memory:`);
  });

  it("fails when $CONTAINER_CONFIG names a missing file or a directory", async () => {
    const missing = join(dir, "missing.toml");
    const e = await loadConfig({ CONTAINER_CONFIG: missing }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ContainerError);
    expect((e as ContainerError).code).toBe("invalidArgument");
    expect((e as ContainerError).message).toBe(`${displayPath(missing)}: cannot read the config file: no such file (named by $CONTAINER_CONFIG)`);
    await expect(loadConfig({ CONTAINER_CONFIG: dir })).rejects.toThrow(`${displayPath(dir)}: cannot read the config file:`);
  });
});

describe("parseConfig: defaults and merging", () => {
  it("gives the built-in defaults for an empty document", () => {
    expect(parseText("")).toEqual({
      container: { cpus: 1, memoryMiB: 1024 },
      kernel: {},
      registry: { domain: "docker.io" },
      network: { subnet: "192.168.64.0/24" },
      vminit: { logLevel: "info" },
      emulation: { mode: "user" },
    });
    expect(parseText("# only a comment\n\n")).toEqual(defaultConfig());
    expect(parseText("[container]\n[vminit]\n")).toEqual(defaultConfig());
  });

  it("merges every key over the defaults", () => {
    const text = [
      "[container]",
      "cpus = 4",
      'memory = "2G"',
      "[kernel]",
      'path = "/boot/vmlinux"',
      "[registry]",
      'domain = "localhost:5000"',
      "[network]",
      'subnet = "10.88.0.0/16"',
      "[vminit]",
      'log_level = "debug"',
      "[emulation]",
      'mode = "vm"',
    ].join("\n");
    expect(parseText(text)).toEqual({
      container: { cpus: 4, memoryMiB: 2048 },
      kernel: { path: "/boot/vmlinux" },
      registry: { domain: "localhost:5000" },
      network: { subnet: "10.88.0.0/16" },
      vminit: { logLevel: "debug" },
      emulation: { mode: "vm" },
    });
  });

  it("keeps the defaults of keys the file leaves out", () => {
    expect(parseText("container.cpus = 2")).toEqual({ ...defaultConfig(), container: { cpus: 2, memoryMiB: 1024 } });
  });

  it("takes dotted keys and inline tables as well as [table] headers", () => {
    expect(parseText('container = { cpus = 2, memory = "512M" }').container).toEqual({ cpus: 2, memoryMiB: 512 });
    expect(parseText('container.memory = 536870912\nvminit.log_level = "debug"').container.memoryMiB).toBe(512);
  });

  it("does not share state between calls", () => {
    parseText("[container]\ncpus = 8");
    expect(parseText("").container.cpus).toBe(1);
  });
});

describe("parseConfig: [container]", () => {
  it.each([
    ["1", 1],
    ["2", 2],
    ["64", 64],
    ["+8", 8],
  ])("cpus = %s", (value, n) => {
    expect(withKey("container", "cpus", value).container.cpus).toBe(n);
  });

  it.each([
    ["0", "0 is not a CPU count (use a whole number from 1 to 64)"],
    ["65", "65 is not a CPU count"],
    ["-1", "-1 is not a CPU count"],
    ["99999999999999999999", "99999999999999999999 is not a CPU count"],
    ["2.0", "must be an integer, not a float (2)"],
    ['"2"', 'must be an integer, not a string ("2")'],
    ["true", "must be an integer, not a boolean (true)"],
  ])("rejects cpus = %s", (value, why) => {
    expect(keyError("container", "cpus", value)).toContain(`${FILE}:2: container.cpus: ${why}`);
  });

  it.each([
    ['"1G"', 1024],
    ['"512M"', 512],
    ['"1024MiB"', 1024],
    ['"1.5g"', 1536],
    ['"64m"', 64],
    ["1073741824", 1024],
    ["67_108_864", 64],
  ])("memory = %s", (value, mib) => {
    expect(withKey("container", "memory", value).container.memoryMiB).toBe(mib);
  });

  it.each([
    ['"1zb"', 'invalid memory size "1zb" (use a size such as 512M or 2G)'],
    ['""', 'invalid memory size ""'],
    ['"63M"', "memory 63M is below the minimum of 64M"],
    ["1024", "memory 1024 is below the minimum of 64M"],
    ["-1", 'invalid memory size "-1"'],
    ['"99999999999999999999T"', "memory size 99999999999999999999T is too large"],
    ["1.5", 'must be a size such as "2G" or a number of bytes, not a float (1.5)'],
    ["false", "not a boolean (false)"],
    ['["1G"]', "not an array"],
  ])("rejects memory = %s", (value, why) => {
    const message = keyError("container", "memory", value);
    expect(message.startsWith(`${FILE}:2: container.memory: `)).toBe(true);
    expect(message).toContain(why);
  });
});

describe("parseConfig: [kernel]", () => {
  it("takes an absolute path to an existing file, expanding ~/", () => {
    expect(withKey("kernel", "path", '"/boot/vmlinux"').kernel.path).toBe("/boot/vmlinux");
    expect(withKey("kernel", "path", '"~/kernels/vmlinux"').kernel.path).toBe(join(homedir(), "kernels/vmlinux"));
  });

  it("checks the file for real by default", async () => {
    const dir = await mkdtemp(join(tmpdir(), "config-kernel-"));
    try {
      await writeFile(join(dir, "vmlinux"), "");
      expect(parseConfig(`kernel.path = "${dir}/vmlinux"`, { file: FILE }).kernel.path).toBe(join(dir, "vmlinux"));
      const e = expectContainerError(() => parseConfig(`kernel.path = "${dir}"`, { file: FILE }), "invalidArgument");
      expect(e.message).toBe(`${FILE}:1: kernel.path: ${dir} does not exist or is not a file`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['"/boot/missing"', "/boot/missing does not exist or is not a file"],
    ['"vmlinux"', '"vmlinux" is not an absolute path'],
    ['""', "must not be empty"],
    ["1", "must be a string, not an integer (1)"],
  ])("rejects path = %s", (value, why) => {
    expect(keyError("kernel", "path", value)).toBe(`${FILE}:2: kernel.path: ${why}`);
  });
});

describe("parseConfig: [registry]", () => {
  it.each(["docker.io", "ghcr.io", "localhost", "localhost:5000", "registry-1.example.com:443", "10.0.0.1:5000", "Reg.Example.COM"])(
    "domain = %j",
    (domain) => {
      expect(withKey("registry", "domain", JSON.stringify(domain)).registry.domain).toBe(domain);
    },
  );

  it.each(["https://ghcr.io", "ghcr.io/org", "-bad.io", "bad-.io", "a..b", "a:0", "a:70000", "a:", "a b", "ünïcode.io"])(
    "rejects domain = %j",
    (domain) => {
      expect(keyError("registry", "domain", JSON.stringify(domain))).toBe(
        `${FILE}:2: registry.domain: "${domain}" is not a registry host (use host or host:port, e.g. docker.io or localhost:5000)`,
      );
    },
  );

  it("rejects a domain that is not a string", () => {
    expect(keyError("registry", "domain", "5000")).toBe(`${FILE}:2: registry.domain: must be a string, not an integer (5000)`);
  });
});

describe("parseConfig: [network]", () => {
  it.each(["192.168.64.0/24", "10.0.0.0/8", "172.16.0.0/12", "10.1.2.4/30", "0.0.0.0/0"])("subnet = %j", (subnet) => {
    expect(withKey("network", "subnet", JSON.stringify(subnet)).network.subnet).toBe(subnet);
  });

  it.each([
    ["192.168.64.0", "is not an IPv4 subnet (use CIDR form, e.g. 192.168.64.0/24)"],
    ["256.0.0.0/8", "is not an IPv4 subnet"],
    ["010.0.0.0/8", "is not an IPv4 subnet"],
    ["10.0.0/8", "is not an IPv4 subnet"],
    ["10.0.0.0/33", "is not an IPv4 subnet"],
    ["10.0.0.0/-1", "is not an IPv4 subnet"],
    ["fd00::/64", "is not an IPv4 subnet"],
    ["10.0.0.0/31", "is too small for a gateway and a container (use at most /30, e.g. /24)"],
    ["10.0.0.1/32", "is too small"],
    ["192.168.64.1/24", "has host bits set (the network is 192.168.64.0/24)"],
    ["10.255.1.0/12", "has host bits set (the network is 10.240.0.0/12)"],
  ])("rejects subnet = %j", (subnet, why) => {
    expect(keyError("network", "subnet", JSON.stringify(subnet))).toContain(`${FILE}:2: network.subnet: "${subnet}" ${why}`);
  });
});

describe("parseConfig: [vminit]", () => {
  it.each(["info", "debug"] as const)("log_level = %j", (level) => {
    expect(withKey("vminit", "log_level", JSON.stringify(level)).vminit.logLevel).toBe(level);
  });

  it.each([
    ['"trace"', '"trace" is not a log level (use info or debug)'],
    ['"DEBUG"', '"DEBUG" is not a log level'],
    ["1", "must be a string, not an integer (1)"],
  ])("rejects log_level = %s", (value, why) => {
    expect(keyError("vminit", "log_level", value)).toContain(`${FILE}:2: vminit.log_level: ${why}`);
  });
});

describe("parseConfig: [emulation]", () => {
  it.each(["user", "vm"] as const)("mode = %j", (mode) => {
    expect(withKey("emulation", "mode", JSON.stringify(mode)).emulation.mode).toBe(mode);
  });

  it("rejects another mode", () => {
    expect(keyError("emulation", "mode", '"full"')).toContain(`${FILE}:2: emulation.mode: "full" is not an emulation mode (use user or vm)`);
  });
});

describe("parseConfig: unknown keys and tables", () => {
  it("rejects an unknown table, naming the known ones", () => {
    expect(invalid("\n[kernal]\npath = '/k'")).toBe(
      `${FILE}:2: kernal: unknown table (the tables are container, kernel, registry, network, vminit, emulation)`,
    );
  });

  it("rejects an unknown key in a known table, naming the table's keys", () => {
    expect(invalid("[container]\ncpus = 2\ncpu = 2")).toBe(`${FILE}:3: container.cpu: unknown key (container takes cpus, memory)`);
    expect(invalid("[vminit]\nlog-level = 'debug'")).toBe(`${FILE}:2: vminit.log-level: unknown key (vminit takes log_level)`);
  });

  it("rejects a key outside any table", () => {
    expect(invalid("cpus = 2")).toBe(`${FILE}:1: cpus: unknown key (the tables are container, kernel, registry, network, vminit, emulation)`);
  });

  it("rejects a table given as a plain value, and a nested table where a value belongs", () => {
    expect(invalid("container = 2")).toBe(`${FILE}:1: container: must be a table, not an integer (2)`);
    expect(invalid("[container.cpus]\nx = 1")).toBe(`${FILE}:1: container.cpus: must be an integer, not a table`);
  });

  it("quotes key segments that are not bare keys", () => {
    expect(invalid('[container]\n"my key" = 1')).toBe(`${FILE}:2: container."my key": unknown key (container takes cpus, memory)`);
  });

  it("is not fooled by keys named like Object's own properties", () => {
    expect(invalid("[constructor]\nx = 1")).toContain(`${FILE}:1: constructor: unknown table`);
    expect(invalid("[container]\ntoString = 1")).toContain(`${FILE}:2: container.toString: unknown key`);
    expect(invalid('["__proto__"]\nx = 1')).toContain(`${FILE}:1: __proto__: unknown table`);
  });
});

describe("parseConfig: line numbers", () => {
  it("names the line of the key, wherever and however it is written", () => {
    const cases: [string, string][] = [
      ["# settings\n\n[network]\n\n\n\n[container]\nmemory = '1zb'", ":8: container.memory:"],
      ["[registry]\ndomain = 'docker.io'\n\ncontainer.cpus = 0", ":4: registry.container: unknown key (registry takes domain)"],
      ["container.cpus = 2\n\ncontainer.memory = '1zb'", ":3: container.memory:"],
      ["container = {\n  cpus = 2,\n  memory = true,\n}", ":3: container.memory:"],
      ["vminit = { log_level = 'x' }", ":1: vminit.log_level:"],
      ['note = """\n[container]\ncpus = 0\n"""', ":1: note: unknown key"],
      ['[container]\ncpus = 2\n[ "network" ]\n  "subnet" = "1.2.3.4/8"', ':4: network.subnet: "1.2.3.4/8" has host bits set'],
    ];
    for (const [text, where] of cases) expect(invalid(text)).toContain(`${FILE}${where}`);
  });
});

describe("parseConfig: TOML syntax errors", () => {
  it.each([
    ["[container]\ncpus = ", ":2:8: invalid TOML: "],
    ["[container]\ncpus = 1\n[container]", ":3:2: invalid TOML: trying to redefine an already defined table or value"],
    ["[container\n", ":1:"],
    ['memory = "1G', ":1:"],
  ])("reports %j with its line and column", (text, where) => {
    const message = invalid(text);
    expect(message.startsWith(`${FILE}${where}`)).toBe(true);
    expect(message).not.toContain("\n");
  });
});

describe("configDocument", () => {
  it("has the file's shape and key names", () => {
    expect(configDocument(defaultConfig())).toEqual({
      container: { cpus: 1, memory: "1G" },
      kernel: {},
      registry: { domain: "docker.io" },
      network: { subnet: "192.168.64.0/24" },
      vminit: { log_level: "info" },
      emulation: { mode: "user" },
    });
  });

  it("reads back as the same config", () => {
    const config = parseText(
      "[container]\ncpus = 3\nmemory = '1536M'\n[kernel]\npath = '/boot/vmlinux'\n[registry]\ndomain = 'ghcr.io'\n[vminit]\nlog_level = 'debug'",
    );
    expect(parseText(stringify(configDocument(config)))).toEqual(config);
    expect(parseText(stringify(configDocument(defaultConfig())))).toEqual(defaultConfig());
  });
});

describe("sizes", () => {
  it("formats memory so that it parses back", () => {
    for (const mib of [64, 512, 1024, 1536, 2048, 1024 * 1024]) expect(parseMemoryMiB(formatMemory(mib))).toBe(mib);
    expect(formatMemory(2048)).toBe("2G");
    expect(formatMemory(1536)).toBe("1536M");
  });
});

describe("displayPath", () => {
  it("writes the home directory as ~", () => {
    expect(displayPath("/home/me/.config/container/config.toml", "/home/me")).toBe("~/.config/container/config.toml");
    expect(displayPath("/home/meme/config.toml", "/home/me")).toBe("/home/meme/config.toml");
    expect(displayPath("/etc/config.toml", "/")).toBe("/etc/config.toml");
  });
});
