// The container lifecycle end to end: create/start, stop, logs, inspect,
// prune, rm, and the create flags that need a real VM to show.
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, ROOT, waitFor, type TestEnv } from "../support/env.js";

let t: TestEnv;

beforeAll(async () => {
  t = await createTestEnv();
});

afterAll(async () => {
  await t?.close();
});

interface Detail {
  summary: { id: string; name: string; state: string; exitCode: number };
  labels: Record<string, string>;
  readOnly: boolean;
}

async function inspect(ref: string): Promise<Detail> {
  const r = await t.cli(["inspect", ref]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as Detail[])[0]!;
}

async function state(ref: string): Promise<string> {
  return (await inspect(ref)).summary.state;
}

describe("create and start", () => {
  it("creates without running, then start -a runs and exits with the status", async () => {
    const created = await t.cli(["create", "--name", "cs1", "demo", "sh", "-c", "echo started; exit 3"]);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    expect(await state("cs1")).toBe("created");
    const started = await t.cli(["start", "-a", "cs1"]);
    expect(started).toMatchObject({ code: 3, stdout: "started\n" });
    expect(await inspect("cs1")).toMatchObject({ summary: { state: "stopped", exitCode: 3 } });
    expect((await t.cli(["rm", "cs1"])).code).toBe(0);
  });

  it("start without -a returns at once; the container runs on", async () => {
    await t.cli(["create", "--name", "cs2", "demo", "sleep", "30"]);
    expect((await t.cli(["start", "cs2"])).code).toBe(0);
    expect(await state("cs2")).toBe("running");
    expect((await t.cli(["rm", "-f", "cs2"])).code).toBe(0);
  });

  it("writes --cidfile, and refuses one that exists before creating anything", async () => {
    const dir = await mkdtemp(join(t.dir, "cid-"));
    const cid = join(dir, "cid");
    const r = await t.cli(["run", "--rm", "--cidfile", cid, "demo", "true"]);
    expect(r.code).toBe(0);
    expect(await readFile(cid, "utf8")).toMatch(/^[0-9a-f]{64}$/);
    const before = (await t.cli(["ls", "-aq"])).stdout;
    const again = await t.cli(["create", "--cidfile", cid, "demo", "true"]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already exists/);
    expect((await t.cli(["ls", "-aq"])).stdout).toBe(before);
    await rm(dir, { recursive: true });
  });
});

describe("create flags", () => {
  it("--env-file, with -e winning", async () => {
    const file = join(t.dir, "vars.env");
    await writeFile(file, "# comment\nA=from-file\nB=file-b\n");
    const r = await t.cli(["run", "--rm", "--env-file", file, "-e", "B=flag-b", "demo", "sh", "-c", 'echo "$A $B"']);
    expect(r).toMatchObject({ code: 0, stdout: "from-file flag-b\n" });
  });

  it("--entrypoint replaces the image's entrypoint", async () => {
    const r = await t.cli(["run", "--rm", "--entrypoint", "/bin/echo", "demo", "via", "entrypoint"]);
    expect(r).toMatchObject({ code: 0, stdout: "via entrypoint\n" });
  });

  it("--read-only: a write to the root filesystem fails, /dev/shm still works", async () => {
    const r = await t.cli(["run", "--rm", "--read-only", "demo", "sh", "-c", "touch /x 2>/dev/null && echo wrote || echo refused; touch /dev/shm/ok && echo shm"]);
    expect(r).toMatchObject({ code: 0, stdout: "refused\nshm\n" });
  });

  it("-u runs as a user of the image, with its HOME", async () => {
    const r = await t.cli(["run", "--rm", "-u", "nobody", "demo", "sh", "-c", 'id; echo "$HOME"; touch /root/x 2>/dev/null || echo denied']);
    expect(r).toMatchObject({ code: 0, stdout: "uid=65534(nobody) gid=65534(nogroup)\n/nonexistent\ndenied\n" });
  });

  it("--uid and --gid take numbers the image need not know", async () => {
    expect(await t.cli(["run", "--rm", "--uid", "1000", "--gid", "100", "demo", "id"])).toMatchObject({ code: 0, stdout: "uid=1000 gid=100\n" });
  });

  it("an unknown user is one line and exit status 125 (the command is not at fault)", async () => {
    const r = await t.cli(["run", "--rm", "-u", "bob", "demo", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^Error: user "bob" not found in \/etc\/passwd\n/);
  });

  it("--cpus 2 shows as nproc and cpu.max; --memory 512M as the guest's memory and memory.max", async () => {
    const r = await t.cli(["run", "--rm", "--cpus", "2", "-m", "512M", "demo", "sh", "-c", "nproc; cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max; grep MemTotal /proc/meminfo"]);
    expect(r.code).toBe(0);
    const [nproc, cpuMax, memMax, memTotal] = r.stdout.trim().split("\n");
    expect(nproc).toBe("2");
    expect(cpuMax).toBe("200000 100000");
    expect(memMax).toBe(String(512 * 1024 * 1024));
    const kib = Number(/MemTotal:\s+(\d+) kB/.exec(memTotal ?? "")?.[1]);
    expect(kib).toBeGreaterThan(400 * 1024);
    expect(kib).toBeLessThanOrEqual(512 * 1024);
  });

  it("-k boots another kernel; a missing one is one line", async () => {
    const kernel = join(t.dir, "kernel-copy");
    await copyFile(join(ROOT, "build", "kernel", process.arch === "arm64" ? "arm64" : "x86_64", process.arch === "arm64" ? "Image" : "vmlinux"), kernel);
    expect(await t.cli(["run", "--rm", "-k", kernel, "demo", "echo", "own kernel"])).toMatchObject({ code: 0, stdout: "own kernel\n" });
    const r = await t.cli(["run", "--rm", "-k", join(t.dir, "nope"), "demo", "true"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^Error: no kernel at /);
  });

  it("-l labels show in inspect", async () => {
    await t.cli(["create", "--name", "lab", "-l", "team=core", "-l", "flag", "demo", "true"]);
    expect((await inspect("lab")).labels).toEqual({ team: "core", flag: "" });
    await t.cli(["rm", "lab"]);
  });
});

describe("names", () => {
  it("refuses a duplicate name and allows it again after rm", async () => {
    expect((await t.cli(["create", "--name", "dup", "demo", "true"])).code).toBe(0);
    const again = await t.cli(["create", "--name", "dup", "demo", "true"]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already in use/);
    expect((await t.cli(["rm", "dup"])).code).toBe(0);
    expect((await t.cli(["create", "--name", "dup", "demo", "true"])).code).toBe(0);
    expect((await t.cli(["rm", "dup"])).code).toBe(0);
  });

  it("finds a container by a unique id prefix", async () => {
    const id = (await t.cli(["create", "demo", "true"])).stdout.trim();
    expect((await inspect(id.slice(0, 8))).summary.id).toBe(id);
    expect((await t.cli(["rm", id.slice(0, 8)])).code).toBe(0);
  });
});

describe("the rest of the verbs", () => {
  it("start -a -i feeds stdin to a container created with -i", async () => {
    expect((await t.cli(["create", "-i", "--name", "si", "demo", "sh", "-c", "read x; echo got:$x"])).code).toBe(0);
    expect(await t.cli(["start", "-a", "-i", "si"], { input: "hello\n" })).toMatchObject({ code: 0, stdout: "got:hello\n" });
    expect((await t.cli(["delete", "si"])).code).toBe(0);
  });

  it("stop -s sends the signal given", async () => {
    await t.cli(["run", "-d", "--name", "sg", "demo", "sh", "-c", 'trap "exit 42" USR1; echo ready; while :; do sleep 1; done']);
    await waitFor(async () => (await t.cli(["logs", "sg"])).stdout.includes("ready"), 60_000, "the trap to be set");
    expect((await t.cli(["stop", "-s", "USR1", "sg"])).code).toBe(0);
    expect(await inspect("sg")).toMatchObject({ summary: { state: "stopped", exitCode: 42 } });
    const { id } = (await inspect("sg")).summary;
    expect((await t.cli(["list", "-a", "-q"])).stdout).toContain(id);
    expect((await t.cli(["delete", "sg"])).code).toBe(0);
    expect((await t.cli(["list", "-a", "-q"])).stdout).not.toContain(id);
  });
});

describe("stop, kill and rm", () => {
  it("stop sends SIGTERM, and a PID 1 that handles it exits 143", async () => {
    // PID 1 of a pid namespace gets no signal it has no handler for (see --init).
    await t.cli(["run", "-d", "--name", "st1", "demo", "sh", "-c", 'trap "exit 143" TERM; echo ready; while :; do sleep 1; done']);
    await waitFor(async () => (await t.cli(["logs", "st1"])).stdout.includes("ready"), 60_000, "the trap to be set");
    const r = await t.cli(["stop", "st1"]);
    expect(r).toMatchObject({ code: 0, stdout: "st1\n" });
    expect(await inspect("st1")).toMatchObject({ summary: { state: "stopped", exitCode: 143 } });
    await t.cli(["rm", "st1"]);
  });

  it("stop escalates to SIGKILL after the timeout", async () => {
    await t.cli(["run", "-d", "--name", "st2", "demo", "sh", "-c", 'trap "" TERM; echo ready; while :; do sleep 1; done']);
    await waitFor(async () => (await t.cli(["logs", "st2"])).stdout.includes("ready"), 60_000, "the trap to be set");
    const started = Date.now();
    expect((await t.cli(["stop", "-t", "2", "st2"])).code).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(await inspect("st2")).toMatchObject({ summary: { state: "stopped", exitCode: 137 } });
    await t.cli(["rm", "st2"]);
  });

  it("rm refuses a running container without -f, and -f removes it", async () => {
    await t.cli(["run", "-d", "--name", "rf", "demo", "sleep", "60"]);
    const refused = await t.cli(["rm", "rf"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Error: container rf is running/);
    expect(await state("rf")).toBe("running");
    expect((await t.cli(["rm", "-f", "rf"])).code).toBe(0);
    expect((await t.cli(["inspect", "rf"])).code).not.toBe(0);
  });

  it("kill -a, prune and rm --all", async () => {
    await t.cli(["run", "-d", "--name", "ka1", "demo", "sleep", "60"]);
    await t.cli(["run", "-d", "--name", "ka2", "demo", "sleep", "60"]);
    expect((await t.cli(["kill", "-a"])).code).toBe(0);
    await waitFor(async () => (await t.cli(["ls", "-q"])).stdout === "", 30_000, "every container to stop");
    const pruned = await t.cli(["prune"]);
    expect(pruned.stdout.split("\n").filter(Boolean)).toHaveLength(2);
    await t.cli(["create", "--name", "left", "demo", "true"]);
    expect((await t.cli(["rm", "--all"])).code).toBe(0);
    expect((await t.cli(["ls", "-aq"])).stdout).toBe("");
  });
});

describe("logs", () => {
  it("keeps the output after exit; -n takes the last lines across both streams", async () => {
    await t.cli(["run", "--name", "lg", "demo", "sh", "-c", "echo one; echo two; echo three >&2"]);
    expect(await t.cli(["logs", "lg"])).toMatchObject({ code: 0, stdout: "one\ntwo\n", stderr: "three\n" });
    expect(await t.cli(["logs", "-n", "2", "lg"])).toMatchObject({ stdout: "two\n", stderr: "three\n" });
    const boot = await t.cli(["logs", "--boot", "lg"]);
    expect(boot.stdout).toMatch(/reboot: (Restarting|Power down)/);
    expect(boot.stdout).toMatch(/"msg":"powering off"/);
    await t.cli(["rm", "lg"]);
  });

  it("-f follows until the container stops", async () => {
    await t.cli(["run", "-d", "--name", "lf", "demo", "sh", "-c", "echo a; sleep 2; echo b"]);
    const r = await t.cli(["logs", "-f", "lf"]);
    expect(r).toMatchObject({ code: 0, stdout: "a\nb\n" });
    await t.cli(["rm", "lf"]);
  });

  it("a missing container is one line and a non-zero exit", async () => {
    const r = await t.cli(["logs", "nosuch"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^Error: no such container: nosuch\n/);
  });
});

describe("exec", () => {
  beforeAll(async () => {
    expect((await t.cli(["run", "-d", "--name", "ex", "-e", "FOO=bar", "-w", "/tmp", "demo", "sleep", "600"])).code).toBe(0);
  });

  afterAll(async () => {
    await t.cli(["rm", "-f", "ex"]);
  });

  it("runs in the container's environment and cwd, keeps streams apart, and exits with the status", async () => {
    const r = await t.cli(["exec", "ex", "sh", "-c", 'echo "$FOO $(pwd)"; echo err >&2; exit 5']);
    expect(r).toMatchObject({ code: 5, stdout: "bar /tmp\n", stderr: "err\n" });
  });

  it("-e and -w override the container's", async () => {
    const r = await t.cli(["exec", "-e", "FOO=baz", "-w", "/", "ex", "sh", "-c", 'echo "$FOO $(pwd)"']);
    expect(r).toMatchObject({ code: 0, stdout: "baz /\n" });
  });

  it("-i pipes stdin", async () => {
    expect(await t.cli(["exec", "-i", "ex", "cat"], { input: "in\n" })).toMatchObject({ code: 0, stdout: "in\n" });
  });

  it("-d returns at once and the process runs on", async () => {
    expect((await t.cli(["exec", "-d", "ex", "sh", "-c", "echo detached > /tmp/d"])).code).toBe(0);
    await waitFor(async () => (await t.cli(["exec", "ex", "cat", "/tmp/d"])).stdout === "detached\n", 30_000, "the detached process");
  });

  it("-u runs the process as another user", async () => {
    expect(await t.cli(["exec", "-u", "nobody", "ex", "id", "-u"])).toMatchObject({ code: 0, stdout: "65534\n" });
  });

  it("sees the container's own process", async () => {
    expect((await t.cli(["exec", "ex", "ps"])).stdout).toMatch(/sleep 600/);
  });

  it("a missing command is 127 with one line", async () => {
    const r = await t.cli(["exec", "ex", "nosuch"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toBe('Error: executable "nosuch" not found in $PATH\n');
  });

  it("a stopped container is refused", async () => {
    await t.cli(["run", "--name", "exdone", "demo", "true"]);
    const r = await t.cli(["exec", "exdone", "true"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^Error: container exdone is not running/);
    await t.cli(["rm", "exdone"]);
  });
});

describe("system", () => {
  it("version reports the CLI and the running apiserver", async () => {
    const r = await t.cli(["system", "version", "--format", "json"]);
    const v = JSON.parse(r.stdout) as { client: { version: string }; apiserver: { version: string; pid: number } | null };
    expect(v.apiserver?.version).toBe(v.client.version);
    expect(v.apiserver?.pid).toBeGreaterThan(0);
  });

  it("status says what runs, and logs -f follows the apiserver's log", async () => {
    expect((await t.cli(["system", "status"])).stdout).toMatch(/^apiserver is running \(pid \d+, version [\d.]+, accelerator (kvm|tcg)\)\n$/);
    const follow = t.spawnCli(["system", "logs", "-f", "-n", "1"]);
    let out = "";
    follow.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 500));
    await t.cli(["run", "--rm", "--name", "logged", "demo", "true"]);
    await waitFor(() => out.includes('"container ended"'), 30_000, "the new log line");
    follow.kill("SIGINT");
  });

  it("logs -n prints the last lines of the apiserver's log", async () => {
    const r = await t.cli(["system", "logs", "-n", "1"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ component: "apiserver" });
  });
});

describe("stats", () => {
  it("--no-stream --format json shows a busy container's CPU, memory limit and processes", async () => {
    expect((await t.cli(["run", "-d", "--name", "busy", "-m", "768M", "demo", "sh", "-c", "while :; do :; done"])).code).toBe(0);
    const r = await t.cli(["stats", "--no-stream", "--format", "json", "busy"]);
    expect(r.code, r.stderr).toBe(0);
    const [row] = JSON.parse(r.stdout) as { name: string; cpuPercent: number; memoryBytes: number; memoryLimitBytes: number; pids: number; blockReadBytes: number }[];
    expect(row?.name).toBe("busy");
    expect(row?.cpuPercent).toBeGreaterThan(50);
    expect(row?.memoryLimitBytes).toBe(768 * 1024 * 1024);
    expect(row?.memoryBytes).toBeGreaterThan(0);
    expect(row?.pids).toBeGreaterThanOrEqual(1);
    // Starting the shell read its binary from the rootfs disk.
    expect(row?.blockReadBytes).toBeGreaterThan(0);
    const table = await t.cli(["stats", "--no-stream"]);
    expect(table.stdout).toMatch(/^ID\s+NAME\s+CPU %/);
    expect(table.stdout).toContain("busy");
    await t.cli(["rm", "-f", "busy"]);
  });

  it("a stopped container is refused with one line", async () => {
    await t.cli(["run", "--name", "idle", "demo", "true"]);
    const r = await t.cli(["stats", "--no-stream", "idle"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^Error: container idle is not running\n/);
    await t.cli(["rm", "idle"]);
  });
});
