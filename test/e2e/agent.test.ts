// The guest agent's filesystem, system, network and relay RPCs, end to end:
// one real VM (QEMU, x86_64) booted with a busybox rootfs disk whose first
// process (started over the bootstrap channel, as the runtime does) keeps
// the container's cgroup busy; everything else goes through the host's
// AgentClient. Each family also gets bad requests: a typed error, and the
// agent keeps serving.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, copyFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isContainerError } from "../../lib/errors/index.js";
import { assetsDir } from "../../lib/paths/index.js";
import type { GuestAssets, VirtualMachine } from "../../helpers/hypervisor/types.js";
import { createQemuHypervisor, probeAccelerator } from "../../helpers/hypervisor/qemu/index.js";
import { resolveQemuBinary } from "../../helpers/hypervisor/qemu/binaries.js";
import { acceptOne } from "../../helpers/hypervisor/accept.js";
import { connectAgent } from "../../helpers/agent/client.js";
import { agentLogKernelArg } from "../../helpers/agent/ready.js";
import { bootstrapKernelArg, listenBootstrap, type BootstrapChannel } from "../../helpers/agent/bootstrap.js";
import { BootstrapRequest, FileType, ProcessSpec, RelayDirection } from "../../helpers/agent/gen/agent.js";
import type { AgentClient } from "../../helpers/agent/types.js";
import { AGENT_PORT, dialUntilReady, missingAsset, startWhenAgentListens } from "../contract/hypervisor.contract.js";

const ASSETS = assetsDir();
const x86: GuestAssets = {
  arch: "x86_64",
  kernelPath: join(ASSETS, "kernel", "x86_64", "vmlinux"),
  initfsPath: join(ASSETS, "initfs", "x86_64", "initfs.ext4"),
};
// A static busybox is the whole rootfs.
const BUSYBOX = "/usr/bin/busybox";
const missing = missingAsset(x86) ?? (existsSync(BUSYBOX) ? undefined : BUSYBOX);
const BOOT_TIMEOUT_MS = 120_000;
const ROOTFS = "/run/container/rootfs";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Reads a stream to its end. */
function readAll(stream: Duplex, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`stream did not end within ${timeoutMs} ms`)), timeoutMs);
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
  });
}

/** Reads until `text` has arrived. */
function readUntil(stream: Duplex, text: string, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const done = (err?: Error): void => {
      clearTimeout(timer);
      stream.removeListener("data", onData);
      if (err) reject(err);
      else resolve(got);
    };
    const onData = (c: Buffer): void => {
      got += c.toString("utf8");
      if (got.includes(text)) done();
    };
    const timer = setTimeout(() => done(new Error(`no ${JSON.stringify(text)} within ${timeoutMs} ms (got ${JSON.stringify(got)})`)), timeoutMs);
    stream.on("data", onData);
  });
}

/** The call fails with `code`, and the agent answers a ping afterwards. */
async function refused(agent: AgentClient, code: string, call: Promise<unknown>): Promise<void> {
  const err = await call.then(
    () => new Error("succeeded"),
    (e: unknown) => e,
  );
  expect(isContainerError(err, code as never), `${String(err)} (want ${code})`).toBe(true);
  expect((await agent.ping()).apiVersion).toBe("v1");
}

/** A fake aarch64 executable: just the ELF header fields binfmt rules match on. */
function aarch64Header(): Buffer {
  const b = Buffer.alloc(64);
  Buffer.from("\x7fELF", "latin1").copy(b);
  b[4] = 2; // ELFCLASS64
  b[5] = 1; // little-endian
  b[6] = 1; // EV_CURRENT
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(183, 18); // EM_AARCH64
  return b;
}

describe.skipIf(missing !== undefined)(`agent RPCs in a real VM${missing ? ` (skipped: ${missing} is missing)` : ""}`, () => {
  let dir: string;
  let vm: VirtualMachine;
  let agent: AgentClient;
  let boot: BootstrapChannel;
  let nextPort = 3000;
  let exec = 0;

  /** Runs a process in the container and returns its exit code and output. */
  async function run(args: string[]): Promise<{ code: number; stdout: string }> {
    const port = nextPort;
    nextPort += 2;
    const out = await acceptOne(vm, port, "stdout");
    const id = `exec${++exec}`;
    try {
      await agent.createProcess({
        id,
        spec: ProcessSpec.fromPartial({ args, env: ["PATH=/bin"], rootfs: ROOTFS }),
        stdinPort: 0,
        stdoutPort: port,
        stderrPort: 0,
      });
      const stdout = readAll(await out.conn);
      try {
        await agent.startProcess(id);
        const exit = await agent.waitProcess(id);
        return { code: exit.exitCode, stdout: await stdout };
      } finally {
        await agent.deleteProcess(id);
      }
    } finally {
      await out.close();
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agent-e2e-"));
    const tree = join(dir, "tree");
    for (const d of ["bin", "data", "tmp", "etc", "proc", "dev", "sys"]) await mkdir(join(tree, d), { recursive: true });
    await copyFile(BUSYBOX, join(tree, "bin", "busybox"));
    await chmod(join(tree, "bin", "busybox"), 0o755);
    for (const applet of ["sh", "cat", "echo", "date", "usleep"]) await symlink("busybox", join(tree, "bin", applet));
    // Leaves the rootfs: every lookup through it must be refused.
    await symlink("/", join(tree, "escape"));
    await writeFile(join(tree, "etc", "passwd"), "root:x:0:0:root:/:/bin/sh\n");
    const disk = join(dir, "rootfs.ext4");
    await promisify(execFile)("mkfs.ext4", ["-q", "-F", "-d", tree, "-L", "agent-e2e", disk, "64M"]);

    const cacheDir = join(dir, "probe");
    await mkdir(cacheDir);
    const { accel } = await probeAccelerator({
      qemuBinary: resolveQemuBinary("x86_64"),
      kernelPath: x86.kernelPath,
      initfsPath: x86.initfsPath,
      cacheDir,
      timeoutMs: 4000,
    });
    const hv = createQemuHypervisor({ accel });
    await mkdir(join(dir, "state"));
    vm = await hv.create({
      id: "agent-e2e",
      arch: "x86_64",
      cpus: 1,
      memoryMiB: 256,
      kernelPath: x86.kernelPath,
      kernelArgs: [agentLogKernelArg(), bootstrapKernelArg()],
      disks: [
        { path: x86.initfsPath, format: "raw", readOnly: true },
        { path: disk, format: "raw", readOnly: false },
      ],
      stateDir: join(dir, "state"),
      consoleLogPath: join(dir, "console.log"),
    });
    boot = await listenBootstrap(vm);
    await startWhenAgentListens(vm, BOOT_TIMEOUT_MS);
    // The container's first process ticks a counter into /tick every 0.1 s,
    // for as long as the test runs: the freeze test watches it stop.
    await boot.start(
      BootstrapRequest.fromPartial({
        mounts: [{ source: "/dev/vdb", target: ROOTFS, fstype: "ext4", options: [] }],
        process: {
          id: "main",
          spec: ProcessSpec.fromPartial({
            args: ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tick; usleep 100000; done"],
            env: ["PATH=/bin"],
            rootfs: ROOTFS,
          }),
        },
      }),
    );
    agent = await connectAgent({
      dial: () => vm.dial(AGENT_PORT),
      socketPath: join(dir, "agent.sock"),
      readyTimeoutMs: BOOT_TIMEOUT_MS,
    });
  });

  afterAll(async () => {
    if (agent) {
      await agent.killProcess("main", 9).catch(() => undefined);
      await boot.exited().catch(() => undefined);
      agent.close();
    }
    if (vm) {
      await Promise.race([vm.waitForExit(), sleep(20_000)]);
      await vm.stop();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe("filesystem", () => {
    it("makes directories, writes and describes files inside the rootfs", async () => {
      await agent.mkdir({ rootfs: ROOTFS, path: "/data/sub/deep", mode: 0o750, parents: true });
      await agent.writeFile({ rootfs: ROOTFS, path: "/data/sub/deep/hello.txt", data: Buffer.from("hello\n") });
      await agent.writeFile({ rootfs: ROOTFS, path: "/data/sub/deep/hello.txt", data: Buffer.from("again\n"), append: true });
      const file = await agent.stat({ rootfs: ROOTFS, path: "/data/sub/deep/hello.txt" });
      expect(file).toMatchObject({ type: FileType.FILE_TYPE_REGULAR, mode: 0o644, size: 12n, uid: 0, gid: 0, linkTarget: "" });
      expect(file.mtimeNs).toBeGreaterThan(0n);
      expect(await agent.stat({ rootfs: ROOTFS, path: "/data/sub/deep" })).toMatchObject({ type: FileType.FILE_TYPE_DIRECTORY, mode: 0o750 });
      expect(await agent.stat({ rootfs: ROOTFS, path: "/bin/sh" })).toMatchObject({ type: FileType.FILE_TYPE_SYMLINK, linkTarget: "busybox" });
      // The container sees what was written.
      expect(await run(["cat", "/data/sub/deep/hello.txt"])).toEqual({ code: 0, stdout: "hello\nagain\n" });
      // Guest paths without a rootfs.
      expect(await agent.stat({ path: `${ROOTFS}/data/sub` })).toMatchObject({ type: FileType.FILE_TYPE_DIRECTORY, mode: 0o755 });
    });

    it("unmounts", async () => {
      await agent.mount({ source: "tmpfs", target: "/run/scratch", fstype: "tmpfs", options: [] });
      await agent.writeFile({ path: "/run/scratch/on-tmpfs", data: Buffer.from("x") });
      await refused(agent, "exists", agent.mkdir({ path: "/run/scratch" }));
      await agent.unmount({ path: "/run/scratch" });
      await refused(agent, "notFound", agent.stat({ path: "/run/scratch/on-tmpfs" }));
      await refused(agent, "invalidArgument", agent.unmount({ path: "/run/scratch" }));
    });

    it("refuses paths that leave the rootfs, and keeps serving", async () => {
      await refused(agent, "invalidArgument", agent.writeFile({ rootfs: ROOTFS, path: "/escape/run/pwned", data: Buffer.from("x") }));
      await refused(agent, "invalidArgument", agent.mkdir({ rootfs: ROOTFS, path: "/escape/run/pwned", parents: true }));
      await refused(agent, "invalidArgument", agent.stat({ rootfs: ROOTFS, path: "/../../etc/passwd" }));
      await refused(agent, "invalidArgument", agent.stat({ rootfs: ROOTFS, path: "/escape/etc" }));
      await refused(agent, "notFound", agent.stat({ path: "/run/pwned" }));
      await refused(agent, "invalidArgument", agent.stat({ path: "relative" }));
      await refused(agent, "notFound", agent.writeFile({ rootfs: ROOTFS, path: "/no/such/dir/file", data: Buffer.from("x") }));
      await refused(agent, "exists", agent.mkdir({ rootfs: ROOTFS, path: "/data" }));
    });
  });

  describe("system", () => {
    it("sets and reads sysctls, which the container sees", async () => {
      expect(await agent.sysctl("net.ipv4.ip_forward", "1")).toBe("1");
      expect(await agent.sysctl("net/ipv4/ip_forward")).toBe("1");
      expect(await run(["cat", "/proc/sys/net/ipv4/ip_forward"])).toEqual({ code: 0, stdout: "1\n" });
      await refused(agent, "invalidArgument", agent.sysctl("../../etc/passwd"));
      await refused(agent, "notFound", agent.sysctl("vm.no_such_setting"));
      await refused(agent, "invalidArgument", agent.sysctl("net.ipv4.ip_forward", "not a number"));
    });

    it("sets the clock", async () => {
      const future = BigInt(Date.UTC(2031, 0, 2, 3, 4, 5)) * 1_000_000n;
      await agent.setTime(future);
      try {
        await agent.writeFile({ rootfs: ROOTFS, path: "/data/clock", data: Buffer.from("t") });
        const { mtimeNs } = await agent.stat({ rootfs: ROOTFS, path: "/data/clock" });
        expect(mtimeNs >= future && mtimeNs < future + 60_000_000_000n, String(mtimeNs)).toBe(true);
        expect(await run(["date", "-u", "+%Y"])).toEqual({ code: 0, stdout: "2031\n" });
      } finally {
        await agent.setTime(BigInt(Date.now()) * 1_000_000n);
      }
      await refused(agent, "invalidArgument", agent.setTime(0n));
    });

    it("gets and sets vminitd's own environment", async () => {
      expect(await agent.getenv("AGENT_E2E")).toBeUndefined();
      await agent.setenv("AGENT_E2E", "a=b c");
      expect(await agent.getenv("AGENT_E2E")).toBe("a=b c");
      await refused(agent, "invalidArgument", agent.setenv("A=B", "x"));
      await refused(agent, "invalidArgument", agent.getenv(""));
    });

    it("freezes and thaws the container", async () => {
      const tick = async (): Promise<bigint> => (await agent.stat({ rootfs: ROOTFS, path: "/tick" })).mtimeNs;
      const before = await tick();
      await sleep(500);
      // Changed, not later: the settime test may have moved the clock back.
      expect(await tick(), "the container runs").not.toBe(before);
      await agent.freeze();
      try {
        const frozen = await tick();
        await sleep(1000);
        expect(await tick(), "nothing runs while frozen").toBe(frozen);
        expect((await agent.stats()).pidsCurrent).toBeGreaterThan(0n);
      } finally {
        await agent.thaw();
      }
      const thawed = await tick();
      await sleep(1000);
      expect(await tick(), "runs again once thawed").not.toBe(thawed);
    });

    it("trims the rootfs filesystem", async () => {
      const trimmed = await agent.trim(ROOTFS);
      expect(trimmed).toBeGreaterThan(0n);
      await refused(agent, "unsupported", agent.trim("/run"));
      await refused(agent, "notFound", agent.trim("/no/such/mount"));
    });

    it("registers a binfmt_misc rule the kernel runs binaries through", async () => {
      // The "emulator" is busybox: run as `busybox /data/echo ARGV0 ARGS`
      // (P: the program's own argv[0] is passed on), it runs its echo
      // applet, so an aarch64 file named echo prints its argv[0] and arguments.
      await agent.writeFile({ rootfs: ROOTFS, path: "/data/echo", data: aarch64Header(), mode: 0o755 });
      // No rule yet: exec format error.
      await expect(run(["/data/echo", "x"])).rejects.toMatchObject({ code: "invalidArgument" });
      const res = await agent.registerBinfmt({ imageArch: "arm64", interpreter: `${ROOTFS}/bin/busybox` });
      expect(res).toMatchObject({ registered: true, name: "qemu-aarch64" });
      expect(res.entry).toContain(`interpreter ${ROOTFS}/bin/busybox`);
      expect(res.entry).toMatch(/^flags: PF$/m);
      expect(await agent.stat({ path: "/proc/sys/fs/binfmt_misc/qemu-aarch64" })).toMatchObject({ type: FileType.FILE_TYPE_REGULAR });
      expect(await run(["/data/echo", "through", "the", "emulator"])).toEqual({ code: 0, stdout: "/data/echo through the emulator\n" });
      // Same architecture as the guest: nothing to register.
      expect(await agent.registerBinfmt({ imageArch: "amd64", interpreter: "/x" })).toMatchObject({ registered: false });
      await refused(agent, "notFound", agent.registerBinfmt({ imageArch: "arm64", interpreter: "/no/such/qemu" }));
      await refused(agent, "unsupported", agent.registerBinfmt({ imageArch: "mips", interpreter: "/x" }));
      await refused(agent, "invalidArgument", agent.registerBinfmt({ interpreter: "/x" }));
    });
  });

  describe("network", () => {
    it("configures lo: link, address, routes", async () => {
      await agent.linkUp("lo");
      await agent.addAddress("lo", "10.99.0.1/32");
      await agent.addRoute({ destination: "10.98.0.0/24", link: "lo" });
      await agent.addRoute({ destination: "10.97.0.0/16", gateway: "10.98.0.5" });
      const routes = await run(["cat", "/proc/net/route"]);
      expect(routes.stdout).toMatch(/^lo\t0000620A\t00000000\t/m);
      expect(routes.stdout).toMatch(/^lo\t0000610A\t0500620A\t/m);
      expect((await run(["cat", "/proc/net/fib_trie"])).stdout).toContain("10.99.0.1");

      await refused(agent, "exists", agent.addAddress("lo", "10.99.0.1/32"));
      await refused(agent, "notFound", agent.linkUp("eth9"));
      await refused(agent, "notFound", agent.addAddress("eth9", "10.99.0.2/32"));
      await refused(agent, "invalidArgument", agent.addAddress("lo", "10.99.0.2"));
      await refused(agent, "invalidArgument", agent.addRoute({ destination: "10.96.0.5/16", link: "lo" }));
      await refused(agent, "invalidArgument", agent.addRoute({ destination: "default" }));
    });

    it("writes resolv.conf and hosts into the rootfs", async () => {
      await agent.writeResolvConf({ rootfs: ROOTFS, nameservers: ["10.99.0.1"], search: ["example.test"], options: ["ndots:1"] });
      expect(await run(["cat", "/etc/resolv.conf"])).toEqual({
        code: 0,
        stdout: "nameserver 10.99.0.1\nsearch example.test\noptions ndots:1\n",
      });
      await agent.writeHosts(ROOTFS, [
        { ip: "127.0.0.1", hostnames: ["localhost"] },
        { ip: "10.99.0.1", hostnames: ["gateway", "gateway.example.test"] },
      ]);
      expect(await run(["cat", "/etc/hosts"])).toEqual({ code: 0, stdout: "127.0.0.1\tlocalhost\n10.99.0.1\tgateway gateway.example.test\n" });
      await refused(agent, "invalidArgument", agent.writeResolvConf({ rootfs: ROOTFS, nameservers: ["not-an-ip"] }));
      await refused(agent, "invalidArgument", agent.writeHosts(ROOTFS, [{ ip: "10.0.0.1", hostnames: ["a b"] }]));
      await refused(agent, "invalidArgument", agent.writeResolvConf({ rootfs: "" }));
    });
  });

  describe("relay", () => {
    it("relays a host connection to a guest socket and that socket's connections to the host", async () => {
      // guest-dial (host -> vsock 6000 -> /tmp/agent.sock) into guest-listen
      // (/tmp/agent.sock -> host vsock 5000): both directions in one trip.
      const hostSide = await acceptOne(vm, 5000, "the relayed connection");
      try {
        await agent.relayUnix({ id: "ssh", rootfs: ROOTFS, path: "/tmp/agent.sock", port: 5000, direction: RelayDirection.RELAY_DIRECTION_GUEST_LISTEN });
        await agent.relayUnix({ id: "docker", rootfs: ROOTFS, path: "/tmp/agent.sock", port: 6000, direction: RelayDirection.RELAY_DIRECTION_GUEST_DIAL });
        expect(await agent.stat({ rootfs: ROOTFS, path: "/tmp/agent.sock" })).toMatchObject({ type: FileType.FILE_TYPE_SOCKET, mode: 0o600 });

        const client = await dialUntilReady(vm, 6000, 30_000);
        client.write("ping from the host\n");
        const guestDialed = await hostSide.conn;
        expect(await readUntil(guestDialed, "ping from the host\n")).toBe("ping from the host\n");
        guestDialed.write("pong through the guest\n");
        expect(await readUntil(client, "pong through the guest\n")).toBe("pong through the guest\n");
        // Half-closes are passed on (CloseWrite), but the guest's shutdown of
        // its sending side does not reach the host through vhost-device-vsock:
        // the host closes both of its ends, and StopRelay below must not hang.
        client.destroy();
        guestDialed.destroy();

        await refused(agent, "exists", agent.relayUnix({ id: "ssh", path: "/run/x.sock", port: 5001, direction: RelayDirection.RELAY_DIRECTION_GUEST_LISTEN }));
        await refused(agent, "exists", agent.relayUnix({ id: "other", rootfs: ROOTFS, path: "/tmp/agent.sock", port: 5001, direction: RelayDirection.RELAY_DIRECTION_GUEST_LISTEN }));
      } finally {
        await hostSide.close();
      }
      await agent.stopRelay("ssh");
      await agent.stopRelay("docker");
      await refused(agent, "notFound", agent.stat({ rootfs: ROOTFS, path: "/tmp/agent.sock" }));
      await expect(vm.dial(6000)).rejects.toBeDefined();
      await refused(agent, "notFound", agent.stopRelay("ssh"));
      await refused(agent, "invalidArgument", agent.relayUnix({ id: "x", rootfs: ROOTFS, path: "/escape/run/x.sock", port: 5002, direction: RelayDirection.RELAY_DIRECTION_GUEST_LISTEN }));
      await refused(agent, "invalidArgument", agent.relayUnix({ id: "x", path: "/run/x.sock", port: 5002, direction: RelayDirection.RELAY_DIRECTION_UNSPECIFIED }));
    });
  });
});
