// VzMachine against a stand-in VM host (testdata/fake-vz-host.mjs) that speaks
// the real IPC protocol and hands over real sockets.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectContainerRejection } from "../../../lib/errors/testing.js";
import { createLogger } from "../../../lib/log/index.js";
import type { AddonMachineOptions } from "./addon.js";
import { VzMachine } from "./machine.js";

const FAKE_HOST = new URL("./testdata/fake-vz-host.mjs", import.meta.url).pathname;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vzm-"));
  process.env.FAKE_VZ_DIR = dir;
  await writeFile(join(dir, "boot.log"), "");
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

function machine(kernelArgs: string[] = [], id = "vm1"): VzMachine {
  const options: AddonMachineOptions = {
    id,
    arch: "aarch64",
    cpus: 1,
    memoryMib: 256,
    kernelPath: "/k",
    kernelArgs,
    disks: [{ path: "/initfs", format: "raw", readOnly: true }],
    consoleLogPath: join(dir, "boot.log"),
    network: "none",
    shares: [],
    rosetta: false,
  };
  return new VzMachine({
    options,
    node: process.execPath,
    hostMain: FAKE_HOST,
    logger: createLogger({ component: "test", level: "error" }),
    startTimeoutMs: 5000,
    dialTimeoutMs: 2000,
    stopGraceMs: 1000,
  });
}

async function echoes(stream: Duplex): Promise<void> {
  const got = new Promise<string>((resolve) => stream.once("data", (d: Buffer) => resolve(d.toString())));
  stream.write("ping");
  expect(await got).toBe("ping");
  stream.destroy();
}

describe("VzMachine", () => {
  it("starts a host process, dials through it, and stops: reason stopped, host gone", async () => {
    const vm = machine();
    await vm.start();
    expect(vm.state().kind).toBe("running");
    const [pid] = vm.pids();
    expect(pid).toBeGreaterThan(0);
    await echoes(await vm.dial(1024));
    await expectContainerRejection(vm.dial(4242), "unavailable", /nothing listens/);
    await vm.stop();
    expect(vm.state()).toMatchObject({ kind: "stopped", reason: "stopped" });
    expect(vm.pids()).toEqual([]);
    await vm.stop();
    await expectContainerRejection(vm.dial(1024), "invalidState");
  });

  it("hands over connections the guest makes to a port it listens on before start", async () => {
    const vm = machine(["fake.dial=2000"]);
    const listener = await vm.listen(2000);
    await expectContainerRejection(vm.listen(2000), "exists");
    await vm.start();
    const first = await listener.connections()[Symbol.asyncIterator]().next();
    expect(first.done).toBe(false);
    await echoes(first.value as Duplex);
    await listener.close();
    await vm.kill();
    expect((await vm.waitForExit()).reason).toBe("stopped");
  });

  it("reports a guest power-off as guestShutdown, or crashed when the console shows a panic", async () => {
    const vm = machine(["fake.poweroff"]);
    await vm.start();
    expect((await vm.waitForExit()).reason).toBe("guestShutdown");
    const panicking = machine(["fake.poweroff"]);
    await panicking.start();
    await writeFile(join(dir, "boot.log"), "Kernel panic - not syncing: oops\n", { flag: "a" });
    expect((await panicking.waitForExit()).reason).toBe("crashed");
  });

  it("reports a host killed from outside as crashed and ends its listeners", async () => {
    const vm = machine();
    const listener = await vm.listen(3000);
    await vm.start();
    process.kill(vm.pids()[0]!, "SIGKILL");
    expect((await vm.waitForExit()).reason).toBe("crashed");
    expect((await listener.connections()[Symbol.asyncIterator]().next()).done).toBe(true);
  });

  it("stops a VM never started, refuses to start it after, and passes on a failed create", async () => {
    const vm = machine();
    await vm.stop();
    expect(vm.state()).toMatchObject({ kind: "stopped", reason: "stopped" });
    await expectContainerRejection(vm.start(), "invalidState");
    const bad = machine([], "fail-create");
    const err = await expectContainerRejection(bad.start(), "invalidArgument", /bad config/);
    expect(err.hint).toBe("fix it");
    expect(bad.state()).toMatchObject({ kind: "stopped", reason: "crashed" });
  });
});
