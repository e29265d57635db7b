// The hypervisor contract against the QEMU backend: x86_64 always (the assets
// must be built), aarch64 (emulated) when its kernel and init filesystem exist.
// Also the KVM probe, for real: it must decide, and not hang, on this host.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { assetsDir } from "../../lib/paths/index.js";
import type { GuestAssets } from "../../helpers/hypervisor/types.js";
import { createQemuHypervisor, probeAccelerator, type Accelerator } from "../../helpers/hypervisor/qemu/index.js";
import { resolveQemuBinary } from "../../helpers/hypervisor/qemu/binaries.js";
import { hypervisorContract, missingAsset } from "./hypervisor.contract.js";

const ASSETS = assetsDir();
const x86: GuestAssets = {
  arch: "x86_64",
  kernelPath: join(ASSETS, "kernel", "x86_64", "vmlinux"),
  initfsPath: join(ASSETS, "initfs", "x86_64", "initfs.ext4"),
};
const arm: GuestAssets = {
  arch: "aarch64",
  kernelPath: join(ASSETS, "kernel", "arm64", "Image"),
  initfsPath: join(ASSETS, "initfs", "aarch64", "initfs.ext4"),
};

const x86Missing = missingAsset(x86);
const armMissing = missingAsset(arm);

function report(line: string): void {
  process.stderr.write(`[qemu] ${line}\n`);
}

// One probe per run; the contract then uses what it decided.
let accel: Promise<Accelerator> | undefined;
function probedAccel(): Promise<Accelerator> {
  accel ??= (async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), "kvm-probe-cache-"));
    try {
      const t0 = Date.now();
      const result = await probeAccelerator({
        qemuBinary: resolveQemuBinary("x86_64"),
        kernelPath: x86.kernelPath,
        initfsPath: x86.initfsPath,
        cacheDir,
        timeoutMs: 4000,
      });
      report(`KVM probe: ${result.accel} (${result.source}) in ${Date.now() - t0} ms: ${result.reason}`);
      return result.accel;
    } finally {
      await rm(cacheDir, { recursive: true, force: true });
    }
  })();
  return accel;
}

describe("guest assets", () => {
  it("x86_64 kernel and init filesystem are built", () => {
    expect(x86Missing, `${x86Missing} is missing: run \`npm run setup\``).toBeUndefined();
  });
});

describe.skipIf(x86Missing !== undefined)("KVM probe", () => {
  it("decides kvm or tcg within its time limit and leaves nothing behind", async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), "kvm-probe-cache-"));
    try {
      const t0 = Date.now();
      const first = await probeAccelerator({
        qemuBinary: resolveQemuBinary("x86_64"),
        kernelPath: x86.kernelPath,
        initfsPath: x86.initfsPath,
        cacheDir,
        timeoutMs: 4000,
        env: { ...process.env, CONTAINER_ACCEL: "" },
      });
      const ms = Date.now() - t0;
      report(`KVM probe (uncached): ${first.accel} via ${first.source} in ${ms} ms: ${first.reason}`);
      // 4 s boot limit, plus start-up and teardown.
      expect(ms).toBeLessThan(12_000);
      expect(["kvm", "tcg"]).toContain(first.accel);

      const again = await probeAccelerator({
        qemuBinary: resolveQemuBinary("x86_64"),
        kernelPath: x86.kernelPath,
        initfsPath: x86.initfsPath,
        cacheDir,
        env: { ...process.env, CONTAINER_ACCEL: "" },
      });
      if (first.source === "probe") {
        expect(again).toMatchObject({ accel: first.accel, source: "cache" });
        expect(await readdir(cacheDir)).toEqual(["kvm-probe.json"]);
      }
      const forced = await probeAccelerator({
        qemuBinary: "/nonexistent/qemu",
        kernelPath: "/nonexistent",
        initfsPath: "/nonexistent",
        cacheDir,
        env: { CONTAINER_ACCEL: "tcg" },
      });
      expect(forced).toMatchObject({ accel: "tcg", source: "env" });
    } finally {
      await rm(cacheDir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(x86Missing !== undefined)("qemu x86_64", () => {
  hypervisorContract("qemu", async () => createQemuHypervisor({ accel: await probedAccel() }), x86, { report });
});

describe.skipIf(armMissing !== undefined)(`qemu aarch64${armMissing ? ` (skipped: ${armMissing} is missing)` : ""}`, () => {
  // Emulated on this host; TCG boots take longer.
  hypervisorContract("qemu", () => createQemuHypervisor({ accel: "tcg" }), arm, { report, bootTimeoutMs: 120_000 });
});
