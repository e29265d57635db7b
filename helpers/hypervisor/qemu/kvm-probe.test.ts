import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../../lib/log/index.js";
import { accelFromEnv, parseCacheEntry, probeAccelerator, probeCacheKey, PROBE_CACHE_FILE } from "./kvm-probe.js";

const quiet = createLogger({ component: "test", level: "error", write: () => {} });

describe("accelFromEnv", () => {
  it("reads CONTAINER_ACCEL", () => {
    expect(accelFromEnv({})).toBeUndefined();
    expect(accelFromEnv({ CONTAINER_ACCEL: "auto" })).toBeUndefined();
    expect(accelFromEnv({ CONTAINER_ACCEL: "tcg" })).toBe("tcg");
    expect(accelFromEnv({ CONTAINER_ACCEL: " KVM " })).toBe("kvm");
    expect(() => accelFromEnv({ CONTAINER_ACCEL: "hvf" })).toThrow(/CONTAINER_ACCEL/);
  });
});

describe("probe cache", () => {
  const parts = { qemuVersion: "QEMU emulator version 7.2.22", hostKernel: "6.1.0", kernelSha256: "aa" };

  it("keys on QEMU version, host kernel and guest kernel", () => {
    const key = probeCacheKey(parts);
    expect(probeCacheKey({ ...parts })).toBe(key);
    expect(probeCacheKey({ ...parts, qemuVersion: "QEMU emulator version 8.0" })).not.toBe(key);
    expect(probeCacheKey({ ...parts, hostKernel: "6.2.0" })).not.toBe(key);
    expect(probeCacheKey({ ...parts, kernelSha256: "bb" })).not.toBe(key);
  });

  it("accepts only an entry for the same key with a known accelerator", () => {
    const entry = { key: "k", accel: "tcg", reason: "r", checkedAt: "now" };
    expect(parseCacheEntry(JSON.stringify(entry), "k")).toMatchObject({ accel: "tcg" });
    expect(parseCacheEntry(JSON.stringify(entry), "other")).toBeUndefined();
    expect(parseCacheEntry(JSON.stringify({ ...entry, accel: "hvf" }), "k")).toBeUndefined();
    expect(parseCacheEntry("not json", "k")).toBeUndefined();
    expect(parseCacheEntry("", "k")).toBeUndefined();
  });
});

describe("probeAccelerator without booting", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "probe-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("takes CONTAINER_ACCEL as given", async () => {
    const r = await probeAccelerator({ qemuBinary: "/none", kernelPath: "/none", initfsPath: "/none", cacheDir: dir, env: { CONTAINER_ACCEL: "kvm" }, logger: quiet });
    expect(r).toMatchObject({ accel: "kvm", source: "env" });
  });

  it("chooses tcg when the KVM device cannot be opened", async () => {
    const r = await probeAccelerator({
      qemuBinary: "/none",
      kernelPath: "/none",
      initfsPath: "/none",
      cacheDir: dir,
      env: {},
      kvmDevice: join(dir, "no-kvm"),
      logger: quiet,
    });
    expect(r).toMatchObject({ accel: "tcg", source: "no-kvm" });
  });

  it("answers from the cache for the same QEMU and kernel", async () => {
    const qemu = join(dir, "qemu");
    await writeFile(qemu, "#!/bin/sh\necho 'QEMU emulator version 1.0'\n", { mode: 0o755 });
    const kernel = join(dir, "vmlinux");
    await writeFile(kernel, "kernel bytes");
    const device = join(dir, "kvm");
    await writeFile(device, "");
    const { createHash } = await import("node:crypto");
    const { release } = await import("node:os");
    const key = probeCacheKey({
      qemuVersion: "QEMU emulator version 1.0",
      hostKernel: release(),
      kernelSha256: createHash("sha256").update("kernel bytes").digest("hex"),
    });
    await writeFile(join(dir, PROBE_CACHE_FILE), JSON.stringify({ key, accel: "kvm", reason: "cached", checkedAt: "x" }));
    const r = await probeAccelerator({ qemuBinary: qemu, kernelPath: kernel, initfsPath: "/none", cacheDir: dir, env: {}, kvmDevice: device, logger: quiet });
    expect(r).toMatchObject({ accel: "kvm", source: "cache", reason: "cached" });
    expect(JSON.parse(await readFile(join(dir, PROBE_CACHE_FILE), "utf8"))).toMatchObject({ key });
  });
});
