import { describe, expect, it } from "vitest";
import type { ImageConfig } from "../../helpers/image/types.js";
import { ContainerError } from "../../lib/errors/index.js";
import {
  buildProcess,
  type CreateRequest,
  DEFAULT_CPUS,
  DEFAULT_MEMORY_MIB,
  mergeEnv,
  parsePlatform,
  resolveResources,
  validateEnv,
  validateIsolation,
  validateName,
} from "./spec.js";
import { expectContainerError } from "../../lib/errors/testing.js";

const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function request(overrides: Partial<CreateRequest> = {}): CreateRequest {
  return {
    name: "c1",
    image: "demo:latest",
    command: [],
    env: [],
    workdir: "",
    interactive: false,
    autoRemove: false,
    cpus: 1,
    memoryMiB: 1024,
    labels: {},
    user: "",
    readOnly: false,
    tty: false,
    kernel: "",
    isolation: { init: false, capAdd: [], capDrop: [], ulimits: [], tmpfs: [], shmSizeBytes: 0 },
    platform: "",
    ...overrides,
  };
}

function image(overrides: Partial<ImageConfig> = {}): ImageConfig {
  return { entrypoint: [], cmd: [], env: [], workingDir: "", user: "", ...overrides };
}

const invalid = (fn: () => unknown): ContainerError => expectContainerError(fn, "invalidArgument");

describe("buildProcess: args", () => {
  it("replaces the image Cmd with the command but keeps the Entrypoint", () => {
    const p = buildProcess(request({ command: ["-c", "echo hi"] }), image({ entrypoint: ["/bin/sh"], cmd: ["-l"] }));
    expect(p.args).toEqual(["/bin/sh", "-c", "echo hi"]);
  });

  it("--entrypoint replaces the image's Entrypoint and drops its Cmd", () => {
    const img = image({ entrypoint: ["/entry"], cmd: ["serve"] });
    expect(buildProcess(request({ entrypoint: "/bin/echo" }), img).args).toEqual(["/bin/echo"]);
    expect(buildProcess(request({ entrypoint: "/bin/echo", command: ["hi"] }), img).args).toEqual(["/bin/echo", "hi"]);
    expect(buildProcess(request({ entrypoint: "", command: ["ls"] }), img).args).toEqual(["ls"]);
  });

  it("uses the command alone when the image has no Entrypoint", () => {
    expect(buildProcess(request({ command: ["ls", "/"] }), image({ cmd: ["sh"] })).args).toEqual(["ls", "/"]);
  });

  it("uses Entrypoint + Cmd when the command is empty", () => {
    expect(buildProcess(request(), image({ entrypoint: ["/entry"], cmd: ["serve", "--port=80"] })).args).toEqual([
      "/entry",
      "serve",
      "--port=80",
    ]);
    expect(buildProcess(request(), image({ cmd: ["sh"] })).args).toEqual(["sh"]);
    expect(buildProcess(request(), image({ entrypoint: ["/only"] })).args).toEqual(["/only"]);
  });

  it("fails with invalidArgument when there is no command at all", () => {
    const e = invalid(() => buildProcess(request(), image()));
    expect(e.message).toContain("demo:latest");
    expect(e.hint).toBeDefined();
  });

  it("does not alias the image's arrays", () => {
    const img = image({ entrypoint: ["/e"], cmd: ["c"] });
    const p = buildProcess(request(), img);
    p.args.push("mutated");
    expect(img.entrypoint).toEqual(["/e"]);
    expect(img.cmd).toEqual(["c"]);
  });
});

describe("buildProcess: env", () => {
  it("merges by key, the request winning, and keeps PATH from the image", () => {
    const p = buildProcess(
      request({ command: ["x"], env: ["B=override", "C=new"] }),
      image({ env: ["PATH=/custom/bin", "A=1", "B=image"] }),
    );
    expect(p.env).toEqual(["PATH=/custom/bin", "A=1", "B=override", "C=new"]);
  });

  it("defaults PATH when neither image nor request sets it", () => {
    const p = buildProcess(request({ command: ["x"], env: ["A=1"] }), image({ env: ["HOME=/root"] }));
    expect(p.env).toEqual(["HOME=/root", "A=1", DEFAULT_PATH]);
  });

  it("lets the request set PATH", () => {
    const p = buildProcess(request({ command: ["x"], env: ["PATH=/mine"] }), image());
    expect(p.env).toEqual(["PATH=/mine"]);
  });

  it("keys on the first '=' only", () => {
    expect(mergeEnv(["A=x=y"], ["A=z=w"])).toEqual(["A=z=w", DEFAULT_PATH]);
  });

  it("rejects request variables without '=' or with a bad key", () => {
    for (const bad of ["NOEQUALS", "=v", "A B=1"]) {
      expect(invalid(() => buildProcess(request({ command: ["x"], env: [bad] }), image())).hint).toBe("use -e KEY=VALUE");
    }
    expect(() => validateEnv(["A=1", "B="])).not.toThrow();
  });
});

describe("buildProcess: workdir", () => {
  it("prefers the request's workdir", () => {
    expect(buildProcess(request({ command: ["x"], workdir: "/req" }), image({ workingDir: "/img" })).cwd).toBe("/req");
  });

  it("falls back to the image's workdir", () => {
    expect(buildProcess(request({ command: ["x"] }), image({ workingDir: "/img" })).cwd).toBe("/img");
  });

  it("falls back to /", () => {
    expect(buildProcess(request({ command: ["x"] }), image()).cwd).toBe("/");
  });

  it("rejects a relative workdir from the request or the image", () => {
    expect(invalid(() => buildProcess(request({ command: ["x"], workdir: "rel/dir" }), image())).message).toContain("rel/dir");
    invalid(() => buildProcess(request({ command: ["x"] }), image({ workingDir: "app" })));
  });
});

describe("validateName", () => {
  it.each(["web-1", "a.b_c", "a", "0", "A-Z.0_9", "x".repeat(128)])("accepts %j", (name) => {
    expect(validateName(name)).toBe(name);
  });

  it.each(["-x", "a b", "", ".a", "_a", "a/b", "a:b", "é", "x".repeat(129), "web-1\n"])("rejects %j", (name) => {
    expect(invalid(() => validateName(name)).hint).toMatch(/128/);
  });
});

describe("resolveResources", () => {
  const configured = { cpus: 4, memoryMiB: 2048 };

  it("takes the configured defaults for what the request leaves at 0", () => {
    expect(resolveResources({ cpus: 0, memoryMiB: 0 }, configured)).toEqual({ cpus: 4, memoryMiB: 2048 });
    expect(resolveResources({ cpus: 0, memoryMiB: 0 }, { cpus: DEFAULT_CPUS, memoryMiB: DEFAULT_MEMORY_MIB })).toEqual({
      cpus: 1,
      memoryMiB: 1024,
    });
  });

  it("lets the request win", () => {
    expect(resolveResources({ cpus: 2, memoryMiB: 0 }, configured)).toEqual({ cpus: 2, memoryMiB: 2048 });
    expect(resolveResources({ cpus: 0, memoryMiB: 256 }, configured)).toEqual({ cpus: 4, memoryMiB: 256 });
  });

  it("rejects more than 64 CPUs and less than 64 MiB", () => {
    expect(invalid(() => resolveResources({ cpus: 65, memoryMiB: 0 }, configured)).message).toBe("at most 64 CPUs, not 65");
    expect(invalid(() => resolveResources({ cpus: 0, memoryMiB: 63 }, configured)).message).toBe("at least 64 MiB of memory, not 63 MiB");
  });
});

describe("validateIsolation", () => {
  const base = request().isolation;

  it("accepts Docker's forms", () => {
    expect(() =>
      validateIsolation({
        ...base,
        capAdd: ["NET_ADMIN", "cap_sys_time", "ALL"],
        capDrop: ["CHOWN"],
        ulimits: [{ type: "nofile", soft: 1024, hard: 2048 }, { type: "core", soft: -1, hard: -1 }, { type: "nproc", soft: 10, hard: -1 }],
        tmpfs: [{ path: "/run", options: ["size=64m"] }, { path: "/dev/shm", options: [] }],
      }),
    ).not.toThrow();
  });

  it.each([
    [{ capAdd: ["NET ADMIN"] }, 'invalid capability "NET ADMIN"'],
    [{ capDrop: ["../x"] }, 'invalid capability "../x"'],
    [{ ulimits: [{ type: "files", soft: 1, hard: 1 }] }, 'unknown ulimit type "files"'],
    [{ ulimits: [{ type: "nofile", soft: 10, hard: 5 }] }, "ulimit nofile: the soft limit 10 is above the hard limit 5"],
    [{ ulimits: [{ type: "nofile", soft: -1, hard: 5 }] }, "ulimit nofile: the soft limit -1 is above the hard limit 5"],
    [{ tmpfs: [{ path: "run", options: [] }] }, 'tmpfs path "run" must be absolute'],
    [{ tmpfs: [{ path: "/a/../proc", options: [] }] }, 'tmpfs path "/a/../proc" must be absolute'],
    [{ tmpfs: [{ path: "/", options: [] }] }, "tmpfs cannot be mounted on /"],
    [{ tmpfs: [{ path: "/proc/sys", options: [] }] }, "tmpfs cannot be mounted on /proc/sys"],
    [{ tmpfs: [{ path: "/dev/", options: [] }] }, "tmpfs cannot be mounted on /dev/"],
  ])("rejects %j", (overrides, message) => {
    expect(invalid(() => validateIsolation({ ...base, ...overrides })).message).toBe(message);
  });
});

describe("parsePlatform", () => {
  it.each([
    ["", "x86_64"],
    ["linux/amd64", "x86_64"],
    ["linux/arm64", "aarch64"],
    ["linux/arm64/v8", "aarch64"],
    ["arm64", "aarch64"],
    ["LINUX/AMD64", "x86_64"],
  ])("%j", (platform, want) => {
    expect(parsePlatform(platform, "x86_64")).toBe(want);
  });

  it.each(["windows/amd64", "linux/s390x", "linux/arm/v7", "linux/amd64/v3", "linux/", "/arm64"])("rejects %j", (platform) => {
    expect(invalid(() => parsePlatform(platform, "x86_64")).message).toBe(`unsupported platform "${platform}"`);
  });
});
