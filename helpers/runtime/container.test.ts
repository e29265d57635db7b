import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../lib/log/index.js";
import { BootstrapRequest } from "../agent/gen/agent.js";
import type { Hypervisor, VirtualMachine, VmConfig, VmState } from "../hypervisor/types.js";
import { GUEST_ROOTFS, GUEST_ROSETTA, bootContainer, guestSetup } from "./container.js";
import { DEFAULT_ISOLATION, type RuntimeConfig } from "./config.js";

const rootfs = { source: "/dev/vdb", target: GUEST_ROOTFS, fstype: "ext4", options: [] };

describe("guestSetup (the bootstrap request's mounts and binfmt rules)", () => {
  it("mounts only the rootfs and registers nothing for an image of the guest's architecture", () => {
    expect(guestSetup(undefined)).toEqual({ mounts: [rootfs], binfmt: [] });
  });

  it("registers qemu-user from the init filesystem", () => {
    expect(guestSetup({ kind: "qemu-user", imageArch: "arm64", interpreter: "/usr/libexec/qemu-aarch64" })).toEqual({
      mounts: [rootfs],
      binfmt: [{ imageArch: "arm64", interpreter: "/usr/libexec/qemu-aarch64" }],
    });
  });

  it("mounts the Rosetta share read-only first, then registers Rosetta from it", () => {
    const setup = guestSetup({ kind: "rosetta" });
    expect(setup.mounts).toEqual([{ source: "rosetta", target: GUEST_ROSETTA, fstype: "virtiofs", options: ["ro"] }, rootfs]);
    expect(GUEST_ROSETTA.startsWith("/run/")).toBe(true); // the guest root is read-only; /run is a tmpfs
    expect(setup.binfmt).toEqual([{ rosetta: true, interpreter: "/run/rosetta/rosetta" }]);
    // On the wire the rule is the oneof's rosetta arm, with no image_arch.
    const wire = BootstrapRequest.decode(BootstrapRequest.encode(BootstrapRequest.fromPartial(setup)).finish());
    expect(wire.binfmt).toEqual([{ imageArch: undefined, rosetta: true, interpreter: "/run/rosetta/rosetta" }]);
    expect(wire.mounts[0]).toMatchObject({ source: "rosetta", fstype: "virtiofs" });
  });
});

/** A VM that boots nothing: no guest ever dials, and it ends when `end` is called. */
function vmThatEnds(): { hypervisor: Hypervisor; end(reason: "crashed" | "stopped"): void } {
  let ended!: (state: Extract<VmState, { kind: "stopped" }>) => void;
  const exit = new Promise<Extract<VmState, { kind: "stopped" }>>((resolve) => (ended = resolve));
  let state: VmState = { kind: "created" };
  const vm = (config: VmConfig): VirtualMachine => ({
    id: config.id,
    state: () => state,
    start: async () => void (state = { kind: "running", startedAt: Date.now() }),
    stop: async () => ended({ kind: "stopped", exitedAt: Date.now(), reason: "stopped" }),
    kill: async () => ended({ kind: "stopped", exitedAt: Date.now(), reason: "stopped" }),
    dial: () => Promise.reject(new Error("nobody listens")),
    listen: async () => ({
      connections: async function* (): AsyncGenerator<Duplex> {
        await exit;
      },
      close: async () => undefined,
    }),
    waitForExit: () => exit,
    pids: () => [],
  });
  return {
    hypervisor: { name: "fake", nativeArch: "x86_64", create: async (config) => vm(config) },
    end: (reason) => ended({ kind: "stopped", exitedAt: Date.now(), reason }),
  };
}

describe("bootContainer", () => {
  it("a start after the VM is gone says the VM ended before the container started, not that it exited", async () => {
    const dir = await mkdtemp(join(tmpdir(), "container-test-"));
    try {
      const config: RuntimeConfig = {
        id: "c1",
        bundleDir: dir,
        runDir: dir,
        accelerator: "tcg",
        autoRemove: false,
        vm: { id: "c1", arch: "x86_64", cpus: 1, memoryMiB: 256, kernelPath: "/k", kernelArgs: [], disks: [], stateDir: dir, consoleLogPath: join(dir, "boot.log") },
        process: { args: ["true"], env: [], cwd: "/", user: "", interactive: false, readOnly: false, terminal: false, isolation: DEFAULT_ISOLATION },
      };
      const fake = vmThatEnds();
      const container = await bootContainer(config, fake.hypervisor, createLogger({ component: "test", write: () => undefined }));
      fake.end("crashed");
      expect(await container.wait()).toMatchObject({ exitCode: 137, reason: "vmCrashed", message: "the VM crashed before the container started" });
      await expect(container.start()).rejects.toMatchObject({ code: "unavailable", message: "the VM crashed before the container started" });
      await container.done();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
