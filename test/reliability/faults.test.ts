// Faults on purpose: `kill -9` of the apiserver, of a runtime helper and of
// QEMU in the middle of a start and of an exec, of the apiserver in the middle
// of a pull (the image service runs inside the apiserver: there is no other
// process to kill then); a full disk under a container's writes; junk on
// vminitd's port. After each: the CLI said one line, the states `ls -a` shows
// are true (running containers serve exec, a VM and a helper per live
// container and nothing more), and the bystander container still works.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdir, readdir, stat } from "node:fs/promises";
import http2 from "node:http2";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, createTestEnv, outputOf, waitFor, type RunResult, type TestEnv } from "../support/env.js";
import { processExists } from "../../lib/process/index.js";
import { startRegistry, type Registry } from "../support/registry.js";

const run = promisify(execFile);
const DEMO_OCI = join(ROOT, "build", "demo", "demo-oci.tar");
const AGENT_PORT = 1024;

let t: TestEnv;

beforeAll(async () => {
  t = await createTestEnv();
  // The bystander: every fault below must leave it working.
  expect((await t.cli(["run", "-d", "--name", "keep", "demo", "sleep", "3600"])).code).toBe(0);
});

afterAll(async () => {
  await t?.close();
});

interface Proc {
  pid: number;
  ppid: number;
  args: string;
}

/** This installation's processes. */
function procs(): Proc[] {
  return t.processes().flatMap((line) => {
    const pid = Number(line.split(/\s+/)[0]);
    try {
      // Field 4 of /proc/PID/stat, after the parenthesised command name.
      const ppid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      return [{ pid, ppid, args: line.slice(line.indexOf(" ") + 1) }];
    } catch {
      return [];
    }
  });
}

/** Whether the process has a container's runtime log open: a helper that owns a container, not the spare. */
function ownsContainer(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`).endsWith("/runtime.log");
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

const vms = (): Proc[] => procs().filter((p) => p.args.includes("qemu-system"));
const backends = (): Proc[] => procs().filter((p) => p.args.includes("vhost-device-vsock"));
const helpers = (): Proc[] => procs().filter((p) => p.args.includes("helpers/runtime/main.js") && ownsContainer(p.pid));


/** Starts the CLI with `args` and waits for a VM that was not there before. */
async function whileStarting(args: string[]): Promise<{ done: Promise<RunResult>; vm: Proc }> {
  const before = new Set(vms().map((p) => p.pid));
  const child = t.spawnCli(args);
  child.stdin!.end();
  const done = outputOf(child);
  let vm: Proc | undefined;
  await waitFor(() => (vm = vms().find((p) => !before.has(p.pid))) !== undefined, 60_000, "the container's VM to appear");
  return { done, vm: vm! };
}

/** Runs an exec that stays busy, and resolves once it is (`done`: the exec's end). */
async function whileExecuting(name: string): Promise<{ done: Promise<RunResult> }> {
  const child = t.spawnCli(["exec", name, "sh", "-c", "echo busy; sleep 60"]);
  child.stdin!.end();
  const done = outputOf(child);
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  await waitFor(() => out.includes("busy"), 60_000, "the exec to start");
  return { done };
}

async function killApiserver(): Promise<void> {
  const pid = await t.apiserverPid();
  process.kill(pid, "SIGKILL");
  await waitFor(() => !processExists(pid), 10_000, "the apiserver to die");
}

function expectOneLine(r: RunResult, message: RegExp): void {
  expect(r.code, r.stderr).not.toBe(0);
  const lines = r.stderr.split("\n").filter((l) => l && !l.startsWith("Hint:"));
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(message);
}

interface Detail {
  summary: { id: string; state: string; exitCode: number };
  helperPid: number;
}

/** `inspect` of one container in `env`; undefined when there is none. */
async function inspect(name: string, env: TestEnv = t): Promise<Detail | undefined> {
  const r = await env.cli(["inspect", name]);
  return r.code === 0 ? (JSON.parse(r.stdout) as Detail[])[0] : undefined;
}

async function state(name: string): Promise<Detail["summary"] | undefined> {
  return (await inspect(name))?.summary;
}

/**
 * What `ls -a` says is true: each created or running container has its
 * helper, its VM and its runtime directory, and nothing else has any; each
 * running one serves exec. Then the listed containers other than the
 * bystander are removed, and that leaves nothing behind either.
 */
async function expectConsistent(): Promise<void> {
  const listed = JSON.parse((await t.cli(["ls", "-a", "--format", "json"])).stdout) as { name: string; state: string }[];
  const live = listed.filter((c) => c.state === "running" || c.state === "created");
  const each = (n: number): boolean => vms().length === n && backends().length === n && helpers().length === n;
  await waitFor(() => each(live.length), 20_000, `${live.length} VMs, vsock backends and helpers (${JSON.stringify(listed)})`);
  expect(await readdir(join(t.env.CONTAINER_RUNTIME_DIR!, "c"))).toHaveLength(live.length);
  for (const c of listed.filter((c) => c.state === "running")) {
    expect(await t.cli(["exec", c.name, "echo", "ok"]), c.name).toMatchObject({ code: 0, stdout: "ok\n" });
  }
  for (const c of listed.filter((c) => c.name !== "keep")) expect((await t.cli(["rm", "-f", c.name])).code).toBe(0);
  await waitFor(() => each(1), 20_000, "only the bystander's VM, vsock backend and helper");
  expect(await readdir(join(t.env.CONTAINER_RUNTIME_DIR!, "c"))).toHaveLength(1);
  expect((await t.cli(["ls", "-aq"])).stdout.trim().split("\n")).toHaveLength(1);
}

describe("kill -9 during a start", () => {
  it("of QEMU: the run fails with one line, and the container says it did not run", async () => {
    const { done, vm } = await whileStarting(["run", "--name", "s-qemu", "demo", "echo", "never"]);
    process.kill(vm.pid, "SIGKILL");
    const r = await done;
    // Before, during or after the create; the last either while its helper
    // still serves the start or once the container is recorded as stopped.
    expectOneLine(r, /^Error: (the container's VM did not start|the guest never connected|(container s-qemu is stopped \()?the VM (crashed|stopped))/);
    expect(r.code).toBe(125);
    expect((await state("s-qemu"))?.state ?? "gone").toMatch(/^(stopped|gone)$/);
    await expectConsistent();
  });

  it("of QEMU between create and start: the start says the VM crashed before the container started, then and later", async () => {
    const before = new Set(vms().map((p) => p.pid));
    expect((await t.cli(["create", "--name", "s-between", "demo", "echo", "never"])).code).toBe(0);
    const vm = vms().find((p) => !before.has(p.pid))!;
    process.kill(vm.pid, "SIGKILL");
    // Its helper still answering, gone, or the record already stopped: the same reason.
    expectOneLine(await t.cli(["start", "-a", "s-between"]), /the VM crashed before the container started/);
    await waitFor(async () => (await state("s-between"))?.state === "stopped", 20_000, "the container to be stopped");
    const again = await t.cli(["start", "s-between"]);
    expectOneLine(again, /^Error: container s-between is stopped \(the VM crashed before the container started\); only a created container can start$/);
    await expectConsistent();
  });

  it("of its runtime helper: the run fails with one line naming the helper, the VM goes with it", async () => {
    const { done, vm } = await whileStarting(["run", "--name", "s-helper", "demo", "echo", "never"]);
    process.kill(vm.ppid, "SIGKILL");
    const r = await done;
    expectOneLine(r, /^Error: (the runtime helper (of container s-helper )?died|container s-helper is stopped \(its runtime helper died\))/);
    expect(r.code).toBe(125);
    // Stopped by the helper's death, or never recorded when it died inside the create.
    const after = await state("s-helper");
    if (after) expect(after).toMatchObject({ state: "stopped", exitCode: 137 });
    await expectConsistent();
  });

  it("of the apiserver: the CLI says so; after a restart the container is found in a true state", async () => {
    const { done } = await whileStarting(["run", "-d", "--name", "s-api", "demo", "sleep", "600"]);
    await killApiserver();
    expectOneLine(await done, /^Error: the apiserver went away during /);
    expect((await t.cli(["system", "start"])).code).toBe(0);
    // The helper went on without it: the container runs, or never got a record.
    expect((await state("s-api"))?.state ?? "gone").toMatch(/^(running|created|gone)$/);
    await expectConsistent();
  });
});

describe("kill -9 during an exec", () => {
  it("of the apiserver: the exec says so; the container still runs and serves exec", async () => {
    expect((await t.cli(["run", "-d", "--name", "e-api", "demo", "sleep", "600"])).code).toBe(0);
    const { done } = await whileExecuting("e-api");
    await killApiserver();
    expectOneLine(await done, /^Error: the apiserver went away during Exec/);
    expect((await t.cli(["system", "start"])).code).toBe(0);
    expect(await state("e-api")).toMatchObject({ state: "running" });
    await expectConsistent();
  });

  it("of the container's runtime helper: the exec fails with one line, the container stopped with 137", async () => {
    expect((await t.cli(["run", "-d", "--name", "e-helper", "demo", "sleep", "600"])).code).toBe(0);
    const { helperPid } = (await inspect("e-helper"))!;
    const { done } = await whileExecuting("e-helper");
    process.kill(helperPid, "SIGKILL");
    const r = await done;
    expectOneLine(r, /^Error: the runtime helper of container e-helper died$/);
    await waitFor(async () => (await state("e-helper"))?.state === "stopped", 20_000, "the container to stop");
    expect((await state("e-helper"))?.exitCode).toBe(137);
    await expectConsistent();
  });

  it("of the container's QEMU: the exec ends with 137 like the container", async () => {
    expect((await t.cli(["run", "-d", "--name", "e-qemu", "demo", "sleep", "600"])).code).toBe(0);
    const { helperPid } = (await inspect("e-qemu"))!;
    const { done } = await whileExecuting("e-qemu");
    process.kill(vms().find((p) => p.ppid === helperPid)!.pid, "SIGKILL");
    expect((await done).code).toBe(137);
    await waitFor(async () => (await state("e-qemu"))?.state === "stopped", 20_000, "the container to stop");
    expect((await state("e-qemu"))?.exitCode).toBe(137);
    await expectConsistent();
  });
});

/**
 * A loopback proxy to `port` that sends the answers at `bytesPerSecond`, so
 * that a pull lasts long enough to be cut.
 */
async function slowProxy(port: number, bytesPerSecond: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const piece = 8192;
  const server: Server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream);
    const throttled = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
      for await (const chunk of source) {
        for (let i = 0; i < chunk.length; i += piece) {
          yield chunk.subarray(i, i + piece);
          await new Promise((r) => setTimeout(r, (piece / bytesPerSecond) * 1000));
        }
      }
    };
    pipeline(upstream, throttled, client).catch(() => {
      client.destroy();
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("kill -9 of the apiserver during a pull", () => {
  let registry: Registry;
  let proxy: Awaited<ReturnType<typeof slowProxy>>;

  beforeAll(async () => {
    registry = await startRegistry();
    await registry.push(`oci-archive:${DEMO_OCI}`, "slow/demo:latest");
    proxy = await slowProxy(Number(registry.host.split(":")[1]), 256 * 1024);
  });

  afterAll(async () => {
    await proxy?.close();
    await registry?.close();
  });

  it("says so in one line; the next pull resumes the cut blob and the image runs", async () => {
    const ref = `127.0.0.1:${proxy.port}/slow/demo:latest`;
    const ingest = join(t.env.CONTAINER_DATA_DIR!, "content", "ingest");
    const partials = async (): Promise<string[]> => (existsSync(ingest) ? (await readdir(ingest)).filter((f) => f.endsWith(".partial")) : []);
    const child = t.spawnCli(["image", "pull", ref]);
    child.stdin!.end();
    const done = outputOf(child);
    // Well into the layer: some of it is on disk.
    await waitFor(async () => {
      const [p] = await partials();
      return p !== undefined && (await stat(join(ingest, p))).size > 100 * 1024;
    }, 60_000, "the layer's download to be under way");
    await killApiserver();
    expectOneLine(await done, /^Error: the apiserver went away during Pull/);
    const [cut] = await partials();
    expect(cut).toBeDefined();

    expect((await t.cli(["system", "start"])).code).toBe(0);
    expect((await t.cli(["image", "list"])).stdout).not.toContain("slow/demo");
    const again = await t.cli(["image", "pull", ref]);
    expect(again.code, again.stderr).toBe(0);
    expect(await partials()).toEqual([]);
    expect(await t.cli(["run", "--rm", ref, "echo", "pulled"])).toMatchObject({ code: 0, stdout: "pulled\n" });
    await expectConsistent();
  });
});

describe("junk on vminitd's port", () => {
  /** A connection to the bystander's guest agent through its VM's vsock backend. */
  async function agentConnection(): Promise<Socket> {
    const { id } = (await inspect("keep"))!.summary;
    const socket = connect(join(t.env.CONTAINER_RUNTIME_DIR!, "c", id.slice(0, 12), "vm", "vsock.sock"));
    socket.on("error", () => undefined);
    socket.write(`CONNECT ${AGENT_PORT}\n`);
    const line = await new Promise<string>((resolve, reject) => {
      let got = "";
      const onData = (d: Buffer): void => {
        got += d.toString("latin1");
        if (!got.includes("\n")) return;
        socket.removeListener("data", onData);
        resolve(got.slice(0, got.indexOf("\n")));
      };
      socket.on("data", onData);
      socket.once("close", () => reject(new Error(`vsock backend closed: ${got}`)));
    });
    expect(line).toMatch(/^OK \d+$/);
    return socket;
  }

  /** One gRPC call by hand: the 5-byte prefix says `declared` bytes, `body` follows. */
  async function rawCall(method: string, declared: number, body: Buffer): Promise<string | undefined> {
    const socket = await agentConnection();
    const session = http2.connect("http://vminitd", { createConnection: () => socket });
    session.on("error", () => undefined);
    try {
      const stream = session.request({ ":method": "POST", ":path": `/container.agent.v1.Agent/${method}`, "content-type": "application/grpc", te: "trailers" });
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(declared, 1);
      stream.on("error", () => undefined);
      stream.end(Buffer.concat([prefix, body]));
      return await new Promise<string | undefined>((resolve) => {
        let status: string | undefined;
        stream.on("response", (h) => (status ??= h["grpc-status"] as string | undefined));
        stream.on("trailers", (h) => (status = h["grpc-status"] as string | undefined));
        stream.resume();
        stream.on("close", () => resolve(status));
      });
    } finally {
      session.destroy();
    }
  }

  it("garbage, a half-open connection, a message past the limit and a malformed one are refused; the agent keeps serving", async () => {
    const garbage = await agentConnection();
    garbage.write(Buffer.from("GET / HTTP/1.1\r\n\r\n\x00\xff\xfe garbage"));
    const idle = await agentConnection();
    // grpc-go's default receive limit is 4 MiB: RESOURCE_EXHAUSTED (8).
    expect(await rawCall("Ping", 64 << 20, Buffer.alloc(1024))).toBe("8");
    // Not protobuf: INTERNAL (13), grpc-go's status for a message it cannot decode.
    expect(await rawCall("Ping", 16, Buffer.from("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "latin1"))).toBe("13");
    expect(await rawCall("NoSuchMethod", 0, Buffer.alloc(0))).toBe("12");
    garbage.destroy();
    idle.destroy();
    expect(await t.cli(["exec", "keep", "echo", "still serving"])).toMatchObject({ code: 0, stdout: "still serving\n" });
    await expectConsistent();
  });
});

describe.skipIf(process.getuid?.() !== 0)("a full disk under a container's writes", () => {
  let d: TestEnv;
  let mounted = false;

  beforeAll(async () => {
    d = await createTestEnv({ start: false });
    const data = d.env.CONTAINER_DATA_DIR!;
    await mkdir(data, { recursive: true });
    // Room for the image and the container's rootfs overlay (38 MiB free), not for 60 MiB more.
    await run("mount", ["-t", "tmpfs", "-o", "size=40m", "tmpfs", data]);
    mounted = true;
    expect((await d.cli(["system", "start"])).code).toBe(0);
    expect((await d.cli(["image", "load", "-i", join(ROOT, "build", "demo", "demo-docker.tar")])).code).toBe(0);
  });

  afterAll(async () => {
    await d?.cli(["system", "stop"]);
    if (mounted) await run("umount", [d.env.CONTAINER_DATA_DIR!]);
    await d?.close();
  });

  it("fails the writes with an I/O error, the run still ends with its status, and with room again all works", async () => {
    // 60 MiB of random bytes: less than the rootfs has free (64 MiB), more
    // than the host has; zeros would cost the host nothing (detect-zeroes).
    const r = await d.cli(["run", "--name", "filler", "demo", "sh", "-c", "dd if=/dev/urandom of=/fill bs=1M count=60 conv=fsync 2>&1; echo dd=$?"], { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    // The host's disk is what ran out (an I/O error in the guest), not the guest's filesystem.
    expect(r.stdout).toMatch(/Input\/output error|I\/O error/);
    expect(r.stdout).toMatch(/dd=[1-9]/);
    // The status the apiserver keeps is the process's, not 137 for a lost exit.json.
    expect((await inspect("filler", d))?.summary).toMatchObject({ state: "stopped", exitCode: 0 });
    expect((await d.cli(["rm", "filler"])).code).toBe(0);
    expect(await d.cli(["run", "--rm", "demo", "echo", "after"])).toMatchObject({ code: 0, stdout: "after\n" });
    expect((await d.cli(["ls", "-aq"])).stdout).toBe("");
  });
});
