import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectContainerRejection } from "../../../lib/errors/testing.js";
import type { VmConfig } from "../types.js";
import { createVzHypervisor, machineOptions } from "./index.js";

let dir: string;
let config: VmConfig;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vzi-"));
  await mkdir(join(dir, "state"));
  await writeFile(join(dir, "Image"), "k");
  await writeFile(join(dir, "initfs.ext4"), "i");
  config = {
    id: "c1",
    arch: "aarch64",
    cpus: 2,
    memoryMiB: 512,
    kernelPath: join(dir, "Image"),
    kernelArgs: ["vminitd.log=2000"],
    disks: [{ path: join(dir, "initfs.ext4"), format: "raw", readOnly: true }],
    stateDir: join(dir, "state"),
    consoleLogPath: join(dir, "boot.log"),
  };
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe("vz machine options", () => {
  it("carries the config over, with the VZ defaults: no network, no shares, no Rosetta", async () => {
    expect(await machineOptions(config)).toEqual({
      id: "c1",
      arch: "aarch64",
      cpus: 2,
      memoryMib: 512,
      kernelPath: join(dir, "Image"),
      kernelArgs: ["vminitd.log=2000"],
      disks: [{ path: join(dir, "initfs.ext4"), format: "raw", readOnly: true }],
      consoleLogPath: join(dir, "boot.log"),
      network: "none",
      shares: [],
      rosetta: false,
    });
    const extras = await machineOptions({ ...config, network: "nat", shares: [{ tag: "m0", path: dir, readOnly: true }] });
    expect(extras).toMatchObject({ network: "nat", rosetta: false, shares: [{ tag: "m0", path: dir, readOnly: true }] });
  });

  it("passes the seam's rosetta through to the addon, which adds the share", async () => {
    const seam: VmConfig = { ...config, rosetta: true };
    expect(await machineOptions(seam)).toMatchObject({ rosetta: true, shares: [] });
  });

  it("says notFound for a missing kernel, init filesystem or share, before any process starts", async () => {
    await expectContainerRejection(machineOptions({ ...config, kernelPath: join(dir, "nope") }), "notFound", /guest kernel/);
    await expectContainerRejection(machineOptions({ ...config, disks: [{ path: join(dir, "nope.ext4"), format: "raw", readOnly: true }] }), "notFound", /init filesystem/);
    await expectContainerRejection(machineOptions({ ...config, shares: [{ tag: "m", path: join(dir, "nodir"), readOnly: false }] } as VmConfig), "notFound");
    await expectContainerRejection(machineOptions({ ...config, id: "../x" }), "invalidArgument");
    await expectContainerRejection(machineOptions({ ...config, disks: [] }), "invalidArgument");
  });

  it("is unavailable until the signed Node is built", async () => {
    const hv = createVzHypervisor({ env: { CONTAINER_VZ_DIR: join(dir, "none") } });
    expect(hv.name).toBe("vz");
    const err = await expectContainerRejection(hv.create(config), "unavailable", /signed Node/);
    expect(err.hint).toContain("build.mjs");
  });
});
