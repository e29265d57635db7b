import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readRuntimeConfig, RUNTIME_CONFIG_FILE } from "./config.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "rtc-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const base = {
  id: "c1",
  runDir: "/tmp/run/c1",
  accelerator: "kvm",
  autoRemove: false,
  vm: { id: "c1", arch: "aarch64", cpus: 1, memoryMiB: 256, kernelPath: "/k", kernelArgs: [], disks: [], stateDir: "/s", consoleLogPath: "/b" },
  process: { args: ["true"], env: [], cwd: "/", user: "", interactive: false, readOnly: false, terminal: false },
};

async function load(processExtra: object): Promise<unknown> {
  await writeFile(join(dir, RUNTIME_CONFIG_FILE), JSON.stringify({ ...base, process: { ...base.process, ...processExtra } }));
  return (await readRuntimeConfig(dir)).process.emulator;
}

describe("readRuntimeConfig's emulator", () => {
  it("reads a config written before Rosetta (no kind) as qemu-user", async () => {
    expect(await load({ emulator: { imageArch: "amd64", interpreter: "/usr/bin/qemu-x86_64" } })).toEqual({
      kind: "qemu-user",
      imageArch: "amd64",
      interpreter: "/usr/bin/qemu-x86_64",
    });
  });

  it("keeps the kinds as written, and no emulator as none", async () => {
    expect(await load({ emulator: { kind: "rosetta" } })).toEqual({ kind: "rosetta" });
    expect(await load({ emulator: { kind: "qemu-user", imageArch: "arm64", interpreter: "/q" } })).toEqual({ kind: "qemu-user", imageArch: "arm64", interpreter: "/q" });
    expect(await load({})).toBeUndefined();
  });
});
