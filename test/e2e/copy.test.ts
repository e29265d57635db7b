// `container cp` both ways and `container export`, against a running VM.
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, type TestEnv } from "../support/env.js";

let t: TestEnv;
let host: string;

beforeAll(async () => {
  t = await createTestEnv();
  host = await mkdtemp(join(t.dir, "host-"));
  expect((await t.cli(["run", "-d", "--name", "box", "demo", "sleep", "600"])).code).toBe(0);
});

afterAll(async () => {
  await t?.cli(["rm", "-f", "box"]);
  await t?.close();
});

describe("container cp", () => {
  it("copies a file out, under a new name", async () => {
    const r = await t.cli(["cp", "box:/etc/passwd", join(host, "passwd.copy")]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(await readFile(join(host, "passwd.copy"), "utf8")).toMatch(/^root:x:0:0:/);
  });

  it("copies a directory out into an existing directory", async () => {
    const dest = join(host, "out");
    await mkdir(dest);
    expect((await t.cli(["cp", "box:/etc", dest])).code).toBe(0);
    expect(await readdir(join(dest, "etc"))).toEqual(expect.arrayContaining(["passwd", "group"]));
  });

  it("copies a file in, and a directory's contents into a new directory", async () => {
    await writeFile(join(host, "hello.txt"), "hello from the host\n");
    expect((await t.cli(["cp", join(host, "hello.txt"), "box:/tmp/"])).code).toBe(0);
    expect(await t.cli(["exec", "box", "cat", "/tmp/hello.txt"])).toMatchObject({ code: 0, stdout: "hello from the host\n" });

    await mkdir(join(host, "tree", "sub"), { recursive: true });
    await writeFile(join(host, "tree", "sub", "f"), "deep\n");
    expect((await t.cli(["cp", `${join(host, "tree")}/.`, "box:/opt/tree"])).code).toBe(0);
    expect(await t.cli(["exec", "box", "cat", "/opt/tree/sub/f"])).toMatchObject({ code: 0, stdout: "deep\n" });
  });

  it("a missing path is one line and a non-zero exit", async () => {
    const r = await t.cli(["cp", "box:/no/such/file", join(host, "x")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe("Error: no such file or directory: /no/such/file\n");
  });

  it("needs exactly one container side", async () => {
    const r = await t.cli(["cp", join(host, "a"), join(host, "b")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^Error: exactly one of the two paths must be in a container/);
  });
});

describe("container export", () => {
  it("writes the root filesystem as a tar, without the contents of /proc", async () => {
    const file = join(host, "box.tar");
    expect((await t.cli(["exec", "box", "sh", "-c", "echo x > /tmp/exported"])).code).toBe(0);
    expect(await t.cli(["export", "-o", file, "box"])).toMatchObject({ code: 0, stderr: "" });
    const names = execFileSync("tar", ["-tf", file], { encoding: "utf8" }).split("\n");
    expect(names).toEqual(expect.arrayContaining(["bin/busybox", "etc/passwd", "tmp/exported"]));
    expect(names.some((n) => n.startsWith("proc/1"))).toBe(false);
  });

  it("refuses a stopped container with one line", async () => {
    await t.cli(["run", "--name", "gone", "demo", "true"]);
    const r = await t.cli(["export", "-o", join(host, "gone.tar"), "gone"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^Error: container gone is not running/);
    await t.cli(["rm", "gone"]);
  });
});
