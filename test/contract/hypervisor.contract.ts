// The behaviour every hypervisor backend must show, against a real guest
// (kernel + init filesystem with vminitd). A backend proves itself by running
// this suite, not by hand-written cases of its own.
//
// Conventions the suite relies on beyond types.ts:
//  - pids()[0] is the hypervisor process itself; the rest are device backends.
//  - vminitd serves gRPC (HTTP/2) on vsock port 1024; with the kernel argument
//    `vminitd.poweroff=1` it powers the VM off as soon as it listens; with
//    `vminitd.log=<port>` it writes its log to that host vsock port.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isContainerError } from "../../lib/errors/index.js";
import { processExists } from "../../lib/process/index.js";
import type { GuestAssets, Hypervisor, VirtualMachine, VmConfig } from "../../helpers/hypervisor/types.js";
import { connectAgent } from "../../helpers/agent/client.js";
import { agentLogKernelArg, watchAgentLog } from "../../helpers/agent/ready.js";

export const AGENT_PORT = 1024;

export interface ContractOptions {
  /** How long a guest may take to boot far enough for the agent to answer. */
  bootTimeoutMs?: number;
  cpus?: number;
  memoryMiB?: number;
  /** Receives timing lines (not assertions). */
  report?: (line: string) => void;
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const FRAME_SETTINGS = 4;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Reads from `stream` until `enough(received)` holds (or it ends / times out). */
function readUntilEnough(stream: Duplex, enough: (got: Buffer) => boolean, what: string, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const done = (err?: Error): void => {
      clearTimeout(timer);
      stream.removeListener("data", onData);
      stream.removeListener("end", onEnd);
      stream.removeListener("error", done);
      stream.pause();
      if (err) reject(err);
      else resolve(got);
    };
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (enough(got)) done();
    };
    const onEnd = (): void => done(new Error(`stream ended after ${got.length} bytes, before ${what}`));
    const timer = setTimeout(() => done(new Error(`no ${what} within ${timeoutMs} ms (${got.length} bytes)`)), timeoutMs);
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("error", done);
  });
}

function readBytes(stream: Duplex, n: number, timeoutMs: number): Promise<Buffer> {
  return readUntilEnough(stream, (got) => got.length >= n, `${n} bytes`, timeoutMs);
}

async function readUntil(stream: Duplex, text: string, timeoutMs: number): Promise<string> {
  return (await readUntilEnough(stream, (got) => got.includes(text), JSON.stringify(text), timeoutMs)).toString("utf8");
}

/**
 * Starts a VM created with agentLogKernelArg() and resolves once vminitd says
 * it listens: the only safe moment to dial the agent (helpers/agent/ready.ts).
 */
export async function startWhenAgentListens(vm: VirtualMachine, timeoutMs: number): Promise<void> {
  const ready = watchAgentLog(vm);
  await vm.start();
  await Promise.race([
    ready,
    sleep(timeoutMs).then(() => {
      throw new Error(`vminitd did not report listening within ${timeoutMs} ms`);
    }),
  ]);
}

/** Dials `port` until it answers (call once the agent listens; retries transient failures). */
export async function dialUntilReady(vm: VirtualMachine, port: number, timeoutMs: number): Promise<Duplex> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (vm.state().kind === "stopped") throw new Error(`VM stopped while waiting for port ${port}`, { cause: last });
    try {
      return await vm.dial(port);
    } catch (err) {
      last = err;
      await sleep(20);
    }
  }
  throw new Error(`guest port ${port} did not answer within ${timeoutMs} ms`, { cause: last });
}

/** Speaks the start of HTTP/2 to the agent: our preface and SETTINGS, then expects the server's SETTINGS. */
export async function expectHttp2Server(stream: Duplex, timeoutMs = 10_000): Promise<void> {
  stream.write(Buffer.concat([HTTP2_PREFACE, EMPTY_SETTINGS]));
  const header = await readBytes(stream, 9, timeoutMs);
  expect(header[3], "first frame from the agent is SETTINGS").toBe(FRAME_SETTINGS);
  expect(header.readUInt32BE(5) & 0x7fffffff, "on stream 0").toBe(0);
}

export function hypervisorContract(
  name: string,
  makeHypervisor: () => Hypervisor | Promise<Hypervisor>,
  assets: GuestAssets,
  options: ContractOptions = {},
): void {
  const bootTimeoutMs = options.bootTimeoutMs ?? 60_000;
  const report = options.report ?? ((line: string) => process.stderr.write(`[contract ${name} ${assets.arch}] ${line}\n`));

  describe(`hypervisor contract: ${name} (${assets.arch})`, () => {
    let hv: Hypervisor;
    let root: string;
    let counter = 0;
    const live: VirtualMachine[] = [];

    beforeAll(async () => {
      hv = await makeHypervisor();
      // Short: unix socket paths in the state dirs must stay under 108 bytes.
      root = await mkdtemp(join(tmpdir(), "hvc-"));
    });

    afterEach(async () => {
      await Promise.all(live.splice(0).map((vm) => vm.stop().catch(() => {})));
    });

    afterAll(async () => {
      if (root) await rm(root, { recursive: true, force: true });
    });

    interface Made {
      vm: VirtualMachine;
      config: VmConfig;
    }

    async function configFor(kernelArgs: string[] = [], overrides: Partial<VmConfig> = {}): Promise<VmConfig> {
      const id = `vm${++counter}`;
      const dir = join(root, id);
      await mkdir(join(dir, "state"), { recursive: true });
      return {
        id,
        arch: assets.arch,
        cpus: options.cpus ?? 1,
        memoryMiB: options.memoryMiB ?? 256,
        kernelPath: assets.kernelPath,
        kernelArgs,
        disks: [{ path: assets.initfsPath, format: "raw", readOnly: true }],
        stateDir: join(dir, "state"),
        consoleLogPath: join(dir, "console.log"),
        ...overrides,
      };
    }

    async function make(kernelArgs: string[] = [], overrides: Partial<VmConfig> = {}): Promise<Made> {
      const config = await configFor(kernelArgs, overrides);
      const vm = await hv.create(config);
      live.push(vm);
      return { vm, config };
    }

    /** Everything the VM consisted of is gone: processes and files in its state dir. */
    async function expectReleased(pids: number[], stateDir: string): Promise<void> {
      expect(pids.length).toBeGreaterThan(0);
      for (const pid of pids) expect(processExists(pid), `process ${pid} is gone`).toBe(false);
      expect(await readdir(stateDir), "state dir is empty").toEqual([]);
    }

    it("rejects a missing kernel with notFound", async () => {
      const config = await configFor([], { kernelPath: join(root, "no-such-kernel") });
      const err = await hv.create(config).catch((e: unknown) => e);
      expect(isContainerError(err, "notFound"), String(err)).toBe(true);
    });

    it("rejects a missing init filesystem with notFound", async () => {
      const config = await configFor([], { disks: [{ path: join(root, "no-such.ext4"), format: "raw", readOnly: true }] });
      const err = await hv.create(config).catch((e: unknown) => e);
      expect(isContainerError(err, "notFound"), String(err)).toBe(true);
    });

    it("stops a VM that was never started, and refuses to start it after", async () => {
      const { vm, config } = await make();
      expect(vm.state().kind).toBe("created");
      await vm.stop();
      expect(vm.state()).toMatchObject({ kind: "stopped", reason: "stopped" });
      await expect(vm.start()).rejects.toMatchObject({ code: "invalidState" });
      expect(await readdir(config.stateDir)).toEqual([]);
    });

    describe("a running VM", () => {
      const LOG_PORT = 2000;
      let vm: VirtualMachine;
      let config: VmConfig;
      let logConnection: Promise<IteratorResult<Duplex>>;
      let pids: number[] = [];
      let logText = "";

      beforeAll(async () => {
        config = await configFor([`vminitd.log=${LOG_PORT}`]);
        vm = await hv.create(config);
        // The guest dials this port early in boot: listen before starting.
        const listener = await vm.listen(LOG_PORT);
        logConnection = listener.connections()[Symbol.asyncIterator]().next();
        logConnection.catch(() => {});
        const t0 = Date.now();
        await vm.start();
        const tStarted = Date.now();
        expect(vm.state().kind).toBe("running");
        pids = vm.pids();
        const log = await Promise.race([
          logConnection,
          sleep(bootTimeoutMs).then(() => {
            throw new Error(`no guest connection to host port ${LOG_PORT}`);
          }),
        ]);
        expect(log.done).toBe(false);
        logText = await readUntil(log.value as Duplex, '"msg":"listening"', bootTimeoutMs);
        const agent = await dialUntilReady(vm, AGENT_PORT, bootTimeoutMs);
        const tAgent = Date.now();
        report(`start() took ${tStarted - t0} ms; start() -> agent dial OK ${tAgent - t0} ms`);
        agent.destroy();
      });

      afterAll(async () => {
        await vm?.stop();
      });

      it("runs the hypervisor and its device backends as host processes", () => {
        expect(pids.length).toBeGreaterThanOrEqual(1);
        for (const pid of pids) expect(processExists(pid)).toBe(true);
      });

      it("connects to the agent on vsock port 1024 (HTTP/2 answers)", async () => {
        const stream = await vm.dial(AGENT_PORT);
        try {
          await expectHttp2Server(stream);
        } finally {
          stream.destroy();
        }
      });

      it("opens several agent connections at once", async () => {
        const streams = await Promise.all([1, 2, 3].map(() => vm.dial(AGENT_PORT)));
        try {
          await Promise.all(streams.map((s) => expectHttp2Server(s)));
        } finally {
          for (const s of streams) s.destroy();
        }
      });

      it("fails to dial a guest port nobody listens on, without hanging", async () => {
        const t0 = Date.now();
        const err = await vm.dial(4242).catch((e: unknown) => e);
        expect(isContainerError(err), String(err)).toBe(true);
        report(`dial of a closed guest port failed after ${Date.now() - t0} ms (${(err as Error).message})`);
      });

      it("receives a connection the guest makes to a host port it listens on", () => {
        // beforeAll read vminitd's log from that connection up to "listening".
        expect(logText).toContain('"msg":"listening"');
      });

      it("refuses a second listener on the same port", async () => {
        const a = await vm.listen(3000);
        await expect(vm.listen(3000)).rejects.toMatchObject({ code: "exists" });
        await a.close();
      });

      it("stops: reason stopped, every process and state file gone, idempotent", async () => {
        await vm.stop();
        const exit = await vm.waitForExit();
        expect(exit.reason).toBe("stopped");
        expect(vm.state()).toEqual(exit);
        await expectReleased(pids, config.stateDir);
        expect(vm.pids()).toEqual([]);
        await vm.stop();
        await expect(vm.dial(AGENT_PORT)).rejects.toMatchObject({ code: "invalidState" });
      });
    });

    it("kills a running VM at once: reason stopped, everything released", async () => {
      const { vm, config } = await make();
      await vm.start();
      const pids = vm.pids();
      const t0 = Date.now();
      await vm.kill();
      report(`kill(): ${Date.now() - t0} ms`);
      expect((await vm.waitForExit()).reason).toBe("stopped");
      await expectReleased(pids, config.stateDir);
      await vm.kill();
    });

    it("reports a guest power-off as guestShutdown, has written the console log, and releases everything", async () => {
      const { vm, config } = await make(["vminitd.poweroff=1"]);
      const t0 = Date.now();
      await vm.start();
      const pids = vm.pids();
      const exit = await Promise.race([
        vm.waitForExit(),
        sleep(bootTimeoutMs).then(() => {
          throw new Error(`the guest did not power off within ${bootTimeoutMs} ms`);
        }),
      ]);
      report(`boot floor (vminitd.poweroff=1): start() -> hypervisor exit ${Date.now() - t0} ms`);
      expect(exit.reason).toBe("guestShutdown");
      await expectReleased(pids, config.stateDir);
      expect(await readFile(config.consoleLogPath, "utf8")).not.toBe("");
    });

    it("attaches disks in order (a writable second disk is vdb) and ends with guestShutdown after the agent's Shutdown", async () => {
      const base = await configFor([agentLogKernelArg()]);
      const disk = join(root, `${base.id}-data.ext4`);
      await promisify(execFile)("mkfs.ext4", ["-q", "-F", "-L", "contract", disk, "16M"]);
      const config: VmConfig = { ...base, disks: [...base.disks, { path: disk, format: "raw", readOnly: false }] };
      const vm = await hv.create(config);
      live.push(vm);
      await startWhenAgentListens(vm, bootTimeoutMs);
      const agent = await Promise.race([
        connectAgent({
          dial: () => vm.dial(AGENT_PORT),
          socketPath: join(root, `${base.id}-agent.sock`),
          readyTimeoutMs: bootTimeoutMs,
        }),
        vm.waitForExit().then((exit) => {
          throw new Error(`the VM ended (${exit.reason}) before its agent answered; see ${config.consoleLogPath}`);
        }),
      ]);
      try {
        // Read-write: fails on a read-only device, and on anything but our ext4 disk.
        await agent.mount({ source: "/dev/vdb", target: "/run/contract-data", fstype: "ext4", options: [] });
        await expect(agent.mount({ source: "/dev/vdc", target: "/run/none", fstype: "ext4", options: [] })).rejects.toBeDefined();
        await agent.shutdown();
      } finally {
        agent.close();
      }
      const exit = await vm.waitForExit();
      expect(exit.reason).toBe("guestShutdown");
      expect(await readdir(config.stateDir)).toEqual([]);
    });

    it("reports a hypervisor killed from outside as crashed and releases everything", async () => {
      const { vm, config } = await make();
      await vm.start();
      const pids = vm.pids();
      process.kill(pids[0]!, "SIGKILL");
      const exit = await vm.waitForExit();
      expect(exit.reason).toBe("crashed");
      await expectReleased(pids, config.stateDir);
      await expect(vm.dial(AGENT_PORT)).rejects.toMatchObject({ code: "invalidState" });
    });

    it("runs two VMs side by side, each with its own agent", async () => {
      const [a, b] = await Promise.all([make([agentLogKernelArg()]), make([agentLogKernelArg()])]);
      await Promise.all([startWhenAgentListens(a.vm, bootTimeoutMs), startWhenAgentListens(b.vm, bootTimeoutMs)]);
      const streams = await Promise.all([dialUntilReady(a.vm, AGENT_PORT, bootTimeoutMs), dialUntilReady(b.vm, AGENT_PORT, bootTimeoutMs)]);
      try {
        await Promise.all(streams.map((s) => expectHttp2Server(s)));
      } finally {
        for (const s of streams) s.destroy();
      }
      const pids = [...a.vm.pids(), ...b.vm.pids()];
      expect(new Set(pids).size).toBe(pids.length);
      await Promise.all([a.vm.stop(), b.vm.stop()]);
      await expectReleased(pids, a.config.stateDir);
      expect(await readdir(b.config.stateDir)).toEqual([]);
    });
  });
}

/** Whether every asset file exists, and if not, which one is missing. */
export function missingAsset(assets: GuestAssets): string | undefined {
  return [assets.kernelPath, assets.initfsPath].find((p) => !existsSync(p));
}
