// Decides between KVM and TCG. /dev/kvm existing proves little (nested KVM
// can hang guest kernels), so KVM counts as working only when the real kernel
// and init filesystem boot and power off under it within a hard time limit.
// The verdict is cached per QEMU version, host kernel release and guest
// kernel image.
//
// CONTAINER_ACCEL=kvm|tcg skips the probe.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { arch as hostArch, release, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ContainerError } from "../../../lib/errors/index.js";
import { createLogger, type Logger } from "../../../lib/log/index.js";
import type { GuestArch } from "../types.js";
import { resolveVsockBackend } from "./binaries.js";
import type { Accelerator } from "./command-line.js";
import { QemuMachine } from "./machine.js";

export const ACCEL_ENV = "CONTAINER_ACCEL";
export const PROBE_CACHE_FILE = "kvm-probe.json";
const DEFAULT_TIMEOUT_MS = 4000;

export interface ProbeOptions {
  qemuBinary: string;
  kernelPath: string;
  initfsPath: string;
  /** Where the verdict is cached (the runtime dir). */
  cacheDir: string;
  /** Hard limit for the probe boot; the VM is SIGKILLed past it. */
  timeoutMs?: number;
  backendBinary?: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** The KVM device; a test seam. */
  kvmDevice?: string;
}

export interface ProbeResult {
  accel: Accelerator;
  /** Where the verdict came from. */
  source: "env" | "no-kvm" | "cache" | "probe";
  reason: string;
  /** Duration of the probe boot, when one ran. */
  probeMs?: number;
}

interface CacheEntry {
  key: string;
  accel: Accelerator;
  reason: string;
  probeMs?: number;
  checkedAt: string;
}

/** CONTAINER_ACCEL, validated; undefined when unset or "auto". */
export function accelFromEnv(env: NodeJS.ProcessEnv): Accelerator | undefined {
  const raw = env[ACCEL_ENV]?.trim().toLowerCase();
  if (!raw || raw === "auto") return undefined;
  if (raw === "kvm" || raw === "tcg") return raw;
  throw new ContainerError("invalidArgument", `${ACCEL_ENV}=${env[ACCEL_ENV]} is not one of kvm, tcg, auto`);
}

export interface CacheKeyParts {
  qemuVersion: string;
  hostKernel: string;
  kernelSha256: string;
}

export function probeCacheKey(parts: CacheKeyParts): string {
  const h = createHash("sha256");
  for (const p of [parts.qemuVersion.trim(), parts.hostKernel, parts.kernelSha256]) h.update(p).update("\0");
  return h.digest("hex");
}

/** The cached verdict for `key`, if the cache file holds one. */
export function parseCacheEntry(text: string, key: string): CacheEntry | undefined {
  try {
    const entry = JSON.parse(text) as Partial<CacheEntry>;
    if (entry.key !== key) return undefined;
    if (entry.accel !== "kvm" && entry.accel !== "tcg") return undefined;
    return entry as CacheEntry;
  } catch {
    return undefined;
  }
}

/** The guest architecture this host runs natively, as a GuestArch. */
export function nativeGuestArch(): GuestArch {
  return hostArch() === "arm64" ? "aarch64" : "x86_64";
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

async function qemuVersion(binary: string): Promise<string> {
  const { stdout } = await promisify(execFile)(binary, ["--version"], { timeout: 5000 });
  return stdout.split("\n")[0] ?? stdout;
}

async function writeCache(cacheDir: string, entry: CacheEntry): Promise<void> {
  await mkdir(cacheDir, { recursive: true });
  const file = join(cacheDir, PROBE_CACHE_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(entry, null, 2) + "\n");
  await rename(tmp, file);
}

/** Boots the guest once under KVM; true only for a clean power-off in time. */
async function bootUnderKvm(options: ProbeOptions, logger: Logger): Promise<{ ok: boolean; reason: string; ms: number }> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const dir = await mkdtemp(join(tmpdir(), "container-kvm-probe-"));
  const stateDir = join(dir, "state");
  await mkdir(stateDir);
  const vm = new QemuMachine({
    config: {
      id: "kvm-probe",
      arch: nativeGuestArch(),
      cpus: 1,
      memoryMiB: 256,
      kernelPath: options.kernelPath,
      kernelArgs: ["vminitd.poweroff=1"],
      disks: [{ path: options.initfsPath, format: "raw", readOnly: true }],
      stateDir,
      consoleLogPath: join(dir, "console.log"),
    },
    accel: "kvm",
    qemuBinary: options.qemuBinary,
    backendBinary: options.backendBinary ?? resolveVsockBackend(undefined, options.env),
    logger,
    stopGraceMs: 0,
    dialTimeoutMs: 1000,
    startTimeoutMs: timeoutMs,
  });
  const t0 = Date.now();
  const timer = setTimeout(() => void vm.kill(), timeoutMs);
  try {
    await vm.start();
    const exit = await vm.waitForExit();
    const ms = Date.now() - t0;
    if (exit.reason === "guestShutdown") return { ok: true, reason: `guest booted and powered off under KVM in ${ms} ms`, ms };
    if (exit.reason === "stopped") return { ok: false, reason: `guest did not power off under KVM within ${timeoutMs} ms`, ms };
    return { ok: false, reason: "guest crashed under KVM", ms };
  } catch (err) {
    return { ok: false, reason: `QEMU could not start with KVM: ${(err as Error).message}`, ms: Date.now() - t0 };
  } finally {
    clearTimeout(timer);
    await vm.kill().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

export async function probeAccelerator(options: ProbeOptions): Promise<ProbeResult> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? createLogger({ component: "kvm-probe" });
  const forced = accelFromEnv(env);
  if (forced) return { accel: forced, source: "env", reason: `${ACCEL_ENV}=${forced}` };

  const device = options.kvmDevice ?? "/dev/kvm";
  try {
    await (await open(device, "r+")).close();
  } catch (err) {
    return { accel: "tcg", source: "no-kvm", reason: `${device} is not usable: ${(err as Error).message}` };
  }

  const key = probeCacheKey({
    qemuVersion: await qemuVersion(options.qemuBinary),
    hostKernel: release(),
    kernelSha256: await sha256File(options.kernelPath),
  });
  const cached = parseCacheEntry(await readFile(join(options.cacheDir, PROBE_CACHE_FILE), "utf8").catch(() => ""), key);
  if (cached) return { accel: cached.accel, source: "cache", reason: cached.reason };

  const boot = await bootUnderKvm(options, logger);
  const accel: Accelerator = boot.ok ? "kvm" : "tcg";
  logger.info("kvm probe", { accel, reason: boot.reason, ms: boot.ms });
  await writeCache(options.cacheDir, { key, accel, reason: boot.reason, probeMs: boot.ms, checkedAt: new Date().toISOString() });
  return { accel, source: "probe", reason: boot.reason, probeMs: boot.ms };
}
