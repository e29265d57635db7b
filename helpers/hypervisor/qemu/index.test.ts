import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../../lib/log/index.js";
import type { VmConfig } from "../types.js";
import { createQemuHypervisor, validateConfig } from "./index.js";

const quiet = createLogger({ component: "test", level: "error", write: () => {} });

describe("createQemuHypervisor().create", () => {
  let dir: string;
  let config: VmConfig;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "qh-"));
    await mkdir(join(dir, "state"));
    await writeFile(join(dir, "vmlinux"), "k");
    await writeFile(join(dir, "initfs.ext4"), "i");
    config = {
      id: "c1",
      arch: "x86_64",
      cpus: 1,
      memoryMiB: 128,
      kernelPath: join(dir, "vmlinux"),
      kernelArgs: [],
      disks: [{ path: join(dir, "initfs.ext4"), format: "raw", readOnly: true }],
      stateDir: join(dir, "state"),
      consoleLogPath: join(dir, "console.log"),
    };
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("names the backend and the host's architecture", () => {
    const hv = createQemuHypervisor({ logger: quiet });
    expect(hv.name).toBe("qemu");
    expect(hv.nativeArch).toBe(process.arch === "arm64" ? "aarch64" : "x86_64");
  });

  it("fails with notFound and a set-up hint when the kernel or init filesystem is missing", async () => {
    const hv = createQemuHypervisor({ logger: quiet, accel: "tcg" });
    await expect(hv.create({ ...config, kernelPath: join(dir, "nope") })).rejects.toMatchObject({ code: "notFound", hint: expect.stringContaining("setup") });
    await expect(hv.create({ ...config, disks: [{ path: join(dir, "nope"), format: "raw", readOnly: true }] })).rejects.toMatchObject({ code: "notFound" });
    await expect(hv.create({ ...config, stateDir: join(dir, "nope") })).rejects.toMatchObject({ code: "notFound" });
  });

  it("fails with unavailable and an install hint when QEMU or the vsock backend is missing", async () => {
    const noQemu = createQemuHypervisor({ logger: quiet, accel: "tcg", qemuBinaries: { x86_64: "/nonexistent/qemu-system-x86_64", aarch64: "/nonexistent/qemu-system-aarch64" } });
    await expect(noQemu.create(config)).rejects.toMatchObject({ code: "unavailable", hint: expect.stringContaining("QEMU") });
    const noBackend = createQemuHypervisor({ logger: quiet, accel: "tcg", vsockBackendBinary: "/nonexistent/vhost-device-vsock" });
    await expect(noBackend.create(config)).rejects.toMatchObject({ code: "unavailable", hint: expect.stringContaining("vhost-device-vsock") });
  });

  it("rejects invalid settings with invalidArgument", async () => {
    for (const bad of [{ cpus: 0 }, { cpus: 1.5 }, { memoryMiB: 16 }, { id: "../x" }, { disks: [] }, { kernelArgs: ["a b"] }]) {
      await expect(validateConfig({ ...config, ...bad }), JSON.stringify(bad)).rejects.toMatchObject({ code: "invalidArgument" });
    }
  });

  it("refuses Rosetta with unsupported: only the macOS backend shares it", async () => {
    await expect(validateConfig({ ...config, arch: "aarch64", rosetta: true })).rejects.toMatchObject({ code: "unsupported", message: expect.stringContaining("Rosetta") });
    await expect(validateConfig({ ...config, rosetta: false })).resolves.toMatchObject({ id: "c1" });
  });

  it("makes paths absolute", async () => {
    const rel = (p: string): string => relative(process.cwd(), p);
    const v = await validateConfig({ ...config, kernelPath: rel(config.kernelPath), stateDir: rel(config.stateDir), consoleLogPath: rel(config.consoleLogPath) });
    expect(v.kernelPath).toBe(join(dir, "vmlinux"));
    expect(v.stateDir).toBe(join(dir, "state"));
    expect(v.consoleLogPath).toBe(join(dir, "console.log"));
  });
});
