// --platform: an image of another architecture. By default ([emulation]
// mode "user") it runs in a guest of the host's own architecture, its
// binaries run by qemu-user registered with binfmt_misc (Rosetta plays that
// part on macOS); with mode "vm" in a whole guest of its own architecture,
// emulated: here an arm64 VM under qemu-system-aarch64's TCG, the Apple
// Silicon guest stack (kernel and vminitd) exercised on x86_64.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guestAssets } from "../../helpers/hypervisor/index.js";
import { createTestEnv, ROOT, type TestEnv } from "../support/env.js";

const ARCHIVE = join(ROOT, "build", "demo-arm64", "demo-arm64-docker.tar");
const arm = guestAssets("aarch64");
const onX86 = process.arch === "x64";
const missing = [ARCHIVE, arm.kernelPath, arm.initfsPath].find((p) => !existsSync(p));
const skip = !onX86 || missing !== undefined;
const why = !onX86 ? " (skipped: needs an x86_64 host)" : missing ? ` (skipped: ${missing} is missing)` : "";

/** Runs the two modes' shared checks on one installation. */
function platformTests(env: () => TestEnv): void {
  it("runs the arm64 image, isolated as any container", async () => {
    const t = env();
    const r = await t.cli(["run", "--rm", "--platform", "linux/arm64", "--cap-drop", "ALL", "demo-arm64", "sh", "-c", "uname -m; echo $$; grep CapEff /proc/self/status | cut -f2; exit 3"], { timeoutMs: 300_000 });
    expect(r).toMatchObject({ code: 3, stdout: "aarch64\n1\n0000000000000000\n", stderr: "" });
  });

  it("exec and logs work", async () => {
    const t = env();
    expect((await t.cli(["run", "-d", "--name", "arm", "--platform", "linux/arm64", "demo-arm64", "sh", "-c", "echo up; sleep 600"], { timeoutMs: 300_000 })).code).toBe(0);
    expect(await t.cli(["exec", "arm", "uname", "-m"], { timeoutMs: 120_000 })).toMatchObject({ code: 0, stdout: "aarch64\n" });
    expect((await t.cli(["logs", "arm"])).stdout).toBe("up\n");
    expect((await t.cli(["rm", "-f", "arm"])).code).toBe(0);
  });

  it("an image without that platform is one line and exit 125", async () => {
    const r = await env().cli(["run", "--rm", "--platform", "linux/arm64", "demo", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr.split("\n")[0]).toBe("Error: image demo:latest is not available for linux/arm64");
  });
}

async function installation(config?: string): Promise<TestEnv> {
  const t = await createTestEnv(config === undefined ? {} : { config });
  expect((await t.cli(["image", "load", "-i", ARCHIVE])).code).toBe(0);
  return t;
}

describe.skipIf(skip)(`--platform linux/arm64, emulation "user": qemu-user in an x86_64 guest${why}`, () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await installation();
  });
  afterAll(async () => {
    await t?.close();
  });

  platformTests(() => t);

  it("the guest is the host's architecture, with qemu-aarch64 registered", async () => {
    expect((await t.cli(["run", "--name", "where", "--platform", "linux/arm64", "demo-arm64", "true"])).code).toBe(0);
    const boot = (await t.cli(["logs", "--boot", "where"])).stdout;
    expect(boot).toMatch(/"msg":"binfmt_misc rule registered".*"interpreter":"\/usr\/libexec\/qemu-binfmt\/aarch64-binfmt-P"/);
    expect(boot).toContain('"msg":"vminitd starting","component":"vminitd","version"');
    expect(boot).toMatch(/"msg":"vminitd starting".*"arch":"amd64"/);
    await t.cli(["rm", "where"]);
  });
});

describe.skipIf(skip)(`--platform linux/arm64, emulation "vm": an emulated arm64 guest${why}`, () => {
  let t: TestEnv;
  beforeAll(async () => {
    t = await installation('[emulation]\nmode = "vm"\n');
  });
  afterAll(async () => {
    await t?.close();
  });

  platformTests(() => t);

  it("the guest is arm64, with no emulator", async () => {
    expect((await t.cli(["run", "--name", "where", "--platform", "linux/arm64", "demo-arm64", "true"], { timeoutMs: 300_000 })).code).toBe(0);
    const boot = (await t.cli(["logs", "--boot", "where"])).stdout;
    expect(boot).not.toContain("binfmt_misc rule registered");
    expect(boot).toMatch(/"msg":"vminitd starting".*"arch":"arm64"/);
    await t.cli(["rm", "where"]);
  });
});
