// Lifecycle logic of QemuMachine against stand-ins for QEMU and the vsock
// backend (testdata/): exit reasons, clean-up, errors. Real guests are the
// contract suite's business (test/contract).
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { createLogger } from "../../../lib/log/index.js";
import type { VmConfig } from "../types.js";
import { processExists } from "../../../lib/process/index.js";
import { QemuMachine } from "./machine.js";

const testdata = fileURLToPath(new URL("./testdata/", import.meta.url));
const FAKE_QEMU = join(testdata, "fake-qemu.mjs");
const FAKE_BACKEND = join(testdata, "fake-vsock-backend.mjs");

describe("QemuMachine (with fake QEMU and backend)", () => {
  let dir: string;
  let machines: QemuMachine[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "qm-"));
    await mkdir(join(dir, "state"));
  });
  afterEach(async () => {
    await Promise.all(machines.map((m) => m.kill()));
    machines = [];
    await rm(dir, { recursive: true, force: true });
  });

  function machine(mode: string, overrides: Partial<{ qemu: string; backend: string; stopGraceMs: number; stateDir: string }> = {}): QemuMachine {
    const config: VmConfig = {
      id: "t",
      arch: "x86_64",
      cpus: 1,
      memoryMiB: 128,
      kernelPath: "/k",
      kernelArgs: [`fake.mode=${mode}`],
      disks: [{ path: "/d", format: "raw", readOnly: true }],
      stateDir: overrides.stateDir ?? join(dir, "state"),
      consoleLogPath: join(dir, "console.log"),
    };
    const m = new QemuMachine({
      config,
      accel: "tcg",
      qemuBinary: overrides.qemu ?? FAKE_QEMU,
      backendBinary: overrides.backend ?? FAKE_BACKEND,
      logger: createLogger({ component: "test", level: "error", write: () => {} }),
      stopGraceMs: overrides.stopGraceMs ?? 2000,
      dialTimeoutMs: 2000,
      startTimeoutMs: 10_000,
    });
    machines.push(m);
    return m;
  }

  async function expectClean(pids: number[]): Promise<void> {
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(processExists(pid)).toBe(false);
    expect(await readdir(join(dir, "state"))).toEqual([]);
  }

  it("starts, dials through the backend, and stops with reason stopped", async () => {
    const m = machine("run");
    await m.start();
    expect(m.state().kind).toBe("running");
    const pids = m.pids();
    expect((await readdir(join(dir, "state"))).sort()).toEqual(["qemu.pid", "vhost-vsock.sock", "vsock-backend.pid", "vsock.sock"]);
    const s = await m.dial(1024);
    s.end("hi");
    const echoed = await new Promise<string>((resolve) => {
      let out = "";
      s.on("data", (d: Buffer) => (out += d.toString()));
      s.on("end", () => resolve(out));
    });
    expect(echoed).toBe("hi");
    await expect(m.dial(7)).rejects.toMatchObject({ code: "unavailable" });
    await m.stop();
    expect(m.state()).toMatchObject({ kind: "stopped", reason: "stopped" });
    await expectClean(pids);
    await m.stop();
  });

  it("reports a guest power-off as guestShutdown", async () => {
    const m = machine("poweroff");
    await m.start();
    const pids = m.pids();
    expect((await m.waitForExit()).reason).toBe("guestShutdown");
    await expectClean(pids);
  });

  it("reports a panicking guest as crashed", async () => {
    const m = machine("panic");
    await m.start();
    expect((await m.waitForExit()).reason).toBe("crashed");
  });

  it("looks only at this boot's console output for a panic", async () => {
    await writeFile(join(dir, "console.log"), "Kernel panic - not syncing: an earlier boot\n");
    const m = machine("poweroff");
    await m.start();
    expect((await m.waitForExit()).reason).toBe("guestShutdown");
  });

  it("reports QEMU killed from outside as crashed, and a SIGTERM from outside as stopped", async () => {
    const a = machine("run");
    await a.start();
    const pids = a.pids();
    process.kill(pids[0]!, "SIGKILL");
    expect((await a.waitForExit()).reason).toBe("crashed");
    await expectClean(pids);

    const b = machine("run");
    await b.start();
    process.kill(b.pids()[0]!, "SIGTERM");
    expect((await b.waitForExit()).reason).toBe("stopped");
  });

  it("ends the VM as crashed when the vsock backend dies", async () => {
    const m = machine("run");
    await m.start();
    const pids = m.pids();
    process.kill(pids[1]!, "SIGKILL");
    expect((await m.waitForExit()).reason).toBe("crashed");
    await expectClean(pids);
  });

  it("SIGKILLs a QEMU that ignores SIGTERM after the grace period", async () => {
    const m = machine("hang", { stopGraceMs: 200 });
    await m.start();
    const t0 = Date.now();
    await m.stop();
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(m.state()).toMatchObject({ kind: "stopped", reason: "stopped" });
  });

  it("fails start with QEMU's own error message and cleans up", async () => {
    const m = machine("fail");
    const err = await m.start().catch((e: unknown) => e);
    expect(isContainerError(err, "unavailable")).toBe(true);
    expect((err as Error).message).toContain("could not load kernel");
    expect(m.state()).toMatchObject({ kind: "stopped", reason: "crashed" });
    expect(await readdir(join(dir, "state"))).toEqual([]);
  });

  it("fails start when the backend cannot run", async () => {
    const m = machine("run", { backend: "/bin/false" });
    const err = await m.start().catch((e: unknown) => e);
    expect(isContainerError(err, "unavailable")).toBe(true);
    expect(m.state().kind).toBe("stopped");
  });

  it("accepts listeners before start and closes them when the VM ends", async () => {
    const m = machine("poweroff");
    const l = await m.listen(5000);
    await expect(m.listen(5000)).rejects.toMatchObject({ code: "exists" });
    const it = l.connections()[Symbol.asyncIterator]();
    await m.start();
    expect(await readdir(join(dir, "state"))).toContain("vsock.sock_5000");
    await m.waitForExit();
    expect((await it.next()).done).toBe(true);
    expect(await readdir(join(dir, "state"))).toEqual([]);
    await expect(m.listen(5001)).rejects.toMatchObject({ code: "invalidState" });
  });

  it("works with a state dir too deep for unix socket paths", async () => {
    const deep = join(dir, "d".repeat(60), "e".repeat(60));
    await mkdir(deep, { recursive: true });
    const m = machine("run", { stateDir: deep });
    const l = await m.listen(4000);
    await m.start();
    const s = await m.dial(1024);
    s.destroy();
    // The backend reaches listeners by the relative path, from the state dir.
    const { execFile } = await import("node:child_process");
    execFile(process.execPath, ["-e", "require('net').connect('vsock.sock_4000', function () { this.end('x'); })"], { cwd: deep });
    const got = await l.connections()[Symbol.asyncIterator]().next();
    expect(got.done).toBe(false);
    await m.stop();
    expect(await readdir(deep)).toEqual([]);
  });

  it("refuses to start twice and to dial before start", async () => {
    const m = machine("run");
    await expect(m.dial(1024)).rejects.toMatchObject({ code: "invalidState" });
    await m.start();
    await expect(m.start()).rejects.toMatchObject({ code: "invalidState" });
  });
});
