// `container run` end to end: real apiserver, helpers, QEMU VMs and vminitd.
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, waitFor, type TestEnv } from "../support/env.js";

let t: TestEnv;

beforeAll(async () => {
  t = await createTestEnv();
});

afterAll(async () => {
  await t?.close();
});

describe("container run", () => {
  it("prints the command's output and exits 0", async () => {
    const r = await t.cli(["run", "--rm", "demo", "echo", "hello"]);
    expect(r).toMatchObject({ code: 0, stdout: "hello\n", stderr: "" });
  });

  it("exits with the container's exit status", async () => {
    const r = await t.cli(["run", "--rm", "demo", "sh", "-c", "exit 7"]);
    expect(r.code).toBe(7);
  });

  it("keeps stdout and stderr apart", async () => {
    const r = await t.cli(["run", "--rm", "demo", "sh", "-c", "echo out; echo err >&2"]);
    expect(r).toMatchObject({ code: 0, stdout: "out\n", stderr: "err\n" });
  });

  it("pipes stdin with -i", async () => {
    const r = await t.cli(["run", "-i", "--rm", "demo", "cat"], { input: "hi\nthere\n" });
    expect(r).toMatchObject({ code: 0, stdout: "hi\nthere\n" });
  });

  it("gives the process no stdin without -i", async () => {
    const r = await t.cli(["run", "--rm", "demo", "cat"], { input: "ignored\n" });
    expect(r).toMatchObject({ code: 0, stdout: "" });
  });

  it("sets environment variables and the working directory", async () => {
    const r = await t.cli(["run", "--rm", "-e", "FOO=bar baz", "-w", "/tmp", "demo", "sh", "-c", 'echo "$FOO"; pwd']);
    expect(r).toMatchObject({ code: 0, stdout: "bar baz\n/tmp\n" });
  });

  it("reports death by signal as 128+N", async () => {
    // From outside: PID 1 of its pid namespace cannot kill itself.
    const child = t.spawnCli(["run", "--rm", "--name", "sig", "demo", "sh", "-c", "echo ready; sleep 60"]);
    let stdout = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    await waitFor(() => stdout.includes("ready"), 60_000, "the container to be ready");
    expect((await t.cli(["kill", "-s", "KILL", "sig"])).code).toBe(0);
    expect(await new Promise<number | null>((resolve) => child.on("close", resolve))).toBe(137);
    // With --init, the init reports its child's death the same way.
    expect((await t.cli(["run", "--rm", "--init", "demo", "sh", "-c", "kill -9 $$"])).code).toBe(137);
  });

  it("forwards SIGTERM to the container's process", async () => {
    const child = t.spawnCli(["run", "--rm", "demo", "sh", "-c", 'trap "echo got TERM; exit 3" TERM; echo ready; while true; do sleep 0.1; done']);
    let stdout = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    await waitFor(() => stdout.includes("ready"), 60_000, "the container to be ready");
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(stdout).toContain("got TERM");
    expect(code).toBe(3);
  });

  it("leaves nothing behind after --rm", async () => {
    const r = await t.cli(["ls", "-a", "-q"]);
    expect(r).toMatchObject({ code: 0, stdout: "" });
    expect(await readdir(join(t.dir, "data", "containers"))).toEqual([]);
  });

  it("keeps a stopped container without --rm, and removes it on rm", async () => {
    const r = await t.cli(["run", "--name", "kept", "demo", "true"]);
    expect(r.code).toBe(0);
    const ls = await t.cli(["ls", "-a", "--format", "json"]);
    expect(JSON.parse(ls.stdout)).toMatchObject([{ name: "kept", state: "stopped", exitCode: 0 }]);
    expect((await t.cli(["rm", "kept"])).code).toBe(0);
    expect((await t.cli(["ls", "-a", "-q"])).stdout).toBe("");
  });

  it("cleans up a VM whose QEMU is killed", async () => {
    const d = await t.cli(["run", "-d", "--name", "victim", "demo", "sleep", "1000"]);
    expect(d.code).toBe(0);
    const id = d.stdout.trim();
    const qemu = () => t.processes().filter((p) => p.includes("qemu-system") && p.includes(id));
    await waitFor(() => qemu().length === 1, 30_000, "QEMU to run");
    process.kill(Number(qemu()[0]!.split(/\s+/)[0]), "SIGKILL");
    await waitFor(async () => (await t.cli(["ls", "-a", "--format", "json"])).stdout.includes('"stopped"'), 30_000, "the container to stop");
    const [c] = JSON.parse((await t.cli(["ls", "-a", "--format", "json"])).stdout) as { exitCode: number }[];
    expect(c!.exitCode).toBe(137);
    const vmProcesses = () => t.processes().filter((p) => !p.includes("apiserver/main.js") && !p.includes("--standby"));
    await waitFor(() => vmProcesses().length === 0, 10_000, "VM processes to go");
    expect(existsSync(join(t.dir, "run", "c", id.slice(0, 12)))).toBe(false);
    expect((await t.cli(["rm", "victim"])).code).toBe(0);
    expect(existsSync(join(t.dir, "data", "containers", id))).toBe(false);
  });
});

describe("bad input", () => {
  const oneLineError = (stderr: string): void => {
    const lines = stderr.trim().split("\n");
    expect(lines[0]).toMatch(/^(Error|error): /);
    expect(lines.length).toBeLessThanOrEqual(2);
  };

  it("an unknown image", async () => {
    const r = await t.cli(["run", "--rm", "nosuchimage", "true"]);
    expect(r.code).toBe(125);
    oneLineError(r.stderr);
    expect(r.stderr).toContain("nosuchimage");
  });

  it("a bad flag", async () => {
    const r = await t.cli(["run", "--bogus", "demo", "true"]);
    expect(r.code).not.toBe(0);
    oneLineError(r.stderr);
  });

  it("a command missing from the image", async () => {
    const r = await t.cli(["run", "--rm", "demo", "nosuchcommand"]);
    expect(r.code).toBe(127);
    oneLineError(r.stderr);
    expect(r.stderr).toContain("nosuchcommand");
  });

  it("a malformed -e", async () => {
    const r = await t.cli(["run", "--rm", "-e", "=x", "demo", "true"]);
    expect(r.code).not.toBe(0);
    oneLineError(r.stderr);
  });

  it("leaves no container behind", async () => {
    expect((await t.cli(["ls", "-a", "-q"])).stdout).toBe("");
    expect(await readdir(join(t.dir, "data", "containers"))).toEqual([]);
  });

  it("the apiserver not running", async () => {
    const other = await createTestEnv({ start: false });
    try {
      const r = await other.cli(["run", "--rm", "demo", "true"]);
      expect(r.code).not.toBe(0);
      oneLineError(r.stderr);
      expect(r.stderr).toContain("not running");
    } finally {
      await other.close();
    }
  });
});
