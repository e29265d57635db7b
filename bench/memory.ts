// Host memory of idle containers, as proportional set size (shared pages
// split between the processes sharing them): with ten containers running
// `sleep`, the apiserver, each runtime helper, and each VM (QEMU plus its
// vsock backend), each next to its floor measured in the same run: a bare
// idle Node process for the Node daemons, and a bare VM (same QEMU, kernel
// and init filesystem, vminitd idle, no container) for the VMs.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { DEFAULT_CPUS, DEFAULT_MEMORY_MIB } from "../apiserver/containers/spec.js";
import { createHypervisor, guestAssets } from "../helpers/hypervisor/index.js";
import { createLogger } from "../lib/log/index.js";
import { cloneRootfs, rootfsDisk } from "../apiserver/containers/rootfs.js";
import { waitFor, type TestEnv } from "../test/support/env.js";
import { result as row, type PairResult } from "./harness.js";

const N = 10;

/** Proportional set size of a process, in MiB. */
export async function pssMiB(pid: number): Promise<number> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1]);
  if (!Number.isFinite(kib)) throw new Error(`no Pss for pid ${pid}`);
  return kib / 1024;
}

const children = async (pid: number): Promise<number[]> =>
  (await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "")).split(/\s+/).filter(Boolean).map(Number);

const result = (name: string, floorName: string, ours: number[], floor: number[]): PairResult => row({ name, floorName, unit: "MiB" }, ours, floor);

export async function idleMemory(env: TestEnv, imageRootfs: string, accelerator: string): Promise<PairResult[]> {
  const names = Array.from({ length: N }, (_, i) => `mem${i}`);
  for (const name of names) {
    const r = await env.cli(["run", "-d", "--name", name, "demo", "sleep", "3600"]);
    if (r.code !== 0) throw new Error(`run -d failed: ${r.stderr}`);
  }
  // Bare peers: idle Node processes and one idle VM.
  const bareNodes = Array.from({ length: 3 }, () => spawn(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)"], { stdio: "ignore" }));
  const logger = createLogger({ component: "bench", level: "warn" });
  const hypervisor = await createHypervisor({ accelerator, logger });
  const assets = guestAssets();
  const scratch = await mkdtemp(join(env.dir, "bare-vm-"));
  await mkdir(join(scratch, "vm"));
  const disk = rootfsDisk(scratch);
  await cloneRootfs(imageRootfs, disk);
  const bareVm = await hypervisor.create({
    id: "barevm",
    arch: assets.arch,
    cpus: DEFAULT_CPUS,
    memoryMiB: DEFAULT_MEMORY_MIB,
    kernelPath: assets.kernelPath,
    kernelArgs: [],
    disks: [
      { path: assets.initfsPath, format: "raw", readOnly: true },
      { ...disk, readOnly: false },
    ],
    stateDir: join(scratch, "vm"),
    consoleLogPath: join(scratch, "boot.log"),
  });
  await bareVm.start();
  try {
    // Idle: every container's process runs and the guests have settled.
    const details = async (): Promise<{ summary: { state: string }; helperPid: number }[]> =>
      JSON.parse((await env.cli(["inspect", ...names])).stdout) as { summary: { state: string }; helperPid: number }[];
    await waitFor(async () => (await details()).every((d) => d.summary.state === "running"), 120_000, "the containers to run");
    await waitFor(async () => (await readFile(join(scratch, "boot.log"), "utf8").catch(() => "")).length > 0, 60_000, "the bare VM to boot");
    await new Promise((r) => setTimeout(r, 5000));

    const apiserverPid = await env.apiserverPid();
    const helperPids = (await details()).map((d) => d.helperPid);
    const helperPss = await Promise.all(helperPids.map(pssMiB));
    const vmPss = await Promise.all(helperPids.map(async (pid) => (await Promise.all((await children(pid)).map(pssMiB))).reduce((a, b) => a + b, 0)));
    const nodePss = await Promise.all(bareNodes.map((c) => pssMiB(c.pid!)));
    const bareVmPss = (await Promise.all(bareVm.pids().map(pssMiB))).reduce((a, b) => a + b, 0);
    return [
      result("apiserver, idle with 10 containers", "bare idle Node", [await pssMiB(apiserverPid)], nodePss),
      result("runtime helper per idle container", "bare idle Node", helperPss, nodePss),
      result("VM per idle container (QEMU + vsock backend)", "bare VM, vminitd idle", vmPss, [bareVmPss]),
    ];
  } finally {
    for (const c of bareNodes) c.kill("SIGKILL");
    await bareVm.kill();
    await rm(scratch, { recursive: true, force: true });
    await env.cli(["rm", "-f", ...names]);
  }
}
