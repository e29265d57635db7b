// Cold `container run --rm demo true` against its floor: the same QEMU, kernel,
// init filesystem and disks booting to vminitd and powering off
// (vminitd.poweroff=1), driven straight through the hypervisor backend with no
// apiserver, helper or gRPC in between.
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { createLogger } from "../lib/log/index.js";
import { cloneRootfs, rootfsDisk } from "../apiserver/containers/rootfs.js";
import { DEFAULT_CPUS, DEFAULT_MEMORY_MIB } from "../apiserver/containers/spec.js";
import { createHypervisor, guestAssets } from "../helpers/hypervisor/index.js";
import type { TestEnv } from "../test/support/env.js";
import { pair, timeIt, type PairResult } from "./harness.js";

export interface ColdStartOptions {
  env: TestEnv;
  accelerator: string;
  /** The demo image's flattened ext4 (the container's rootfs is a clone of it). */
  imageRootfs: string;
  iterations: number;
}

export interface BootFloor {
  /** Boots one VM to vminitd and powers it off; the wall time in ms. */
  boot(): Promise<number>;
  /** Removes the floor's scratch files. */
  close(): Promise<void>;
}

/** The cold-start floor: the same QEMU, kernel, init filesystem and rootfs clone booting to vminitd and powering off. */
export async function bootFloor(options: Omit<ColdStartOptions, "iterations">): Promise<BootFloor> {
  const logger = createLogger({ component: "bench", level: "warn" });
  const hypervisor = await createHypervisor({ accelerator: options.accelerator, logger });
  const assets = guestAssets();
  const scratch = await mkdtemp(join(options.env.dir, "floor-"));
  let n = 0;

  const boot = async (): Promise<number> => {
    const dir = join(scratch, String(n++));
    try {
      await mkdir(join(dir, "vm"), { recursive: true });
      const disk = rootfsDisk(dir);
      await cloneRootfs(options.imageRootfs, disk);
      const vm = await hypervisor.create({
        id: `floor${n}`,
        arch: assets.arch,
        cpus: DEFAULT_CPUS,
        memoryMiB: DEFAULT_MEMORY_MIB,
        kernelPath: assets.kernelPath,
        kernelArgs: ["vminitd.poweroff=1"],
        disks: [
          { path: assets.initfsPath, format: "raw", readOnly: true },
          { ...disk, readOnly: false },
        ],
        stateDir: join(dir, "vm"),
        consoleLogPath: join(dir, "boot.log"),
      });
      try {
        return await timeIt(async () => {
          await vm.start();
          const exit = await vm.waitForExit();
          if (exit.reason !== "guestShutdown") throw new Error(`floor VM ended: ${exit.reason}`);
        });
      } finally {
        await vm.kill();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  return { boot, close: () => rm(scratch, { recursive: true, force: true }) };
}

export async function coldStart(options: ColdStartOptions): Promise<PairResult> {
  const floor = await bootFloor(options);
  const ours = async (): Promise<number> => {
    let code = -1;
    const ms = await timeIt(async () => {
      code = (await options.env.cli(["run", "--rm", "demo", "true"])).code;
    });
    if (code !== 0) throw new Error(`container run exited ${code}`);
    return ms;
  };

  try {
    return await pair({
      name: "cold `container run --rm demo true`",
      floorName: "VM boot to vminitd + power-off",
      iterations: options.iterations,
      ours,
      floor: floor.boot,
      goal: "ratio ≤ 1.15",
    });
  } finally {
    await floor.close();
  }
}
