// --platform: an image of another architecture runs in a guest of that
// architecture, emulated (here an arm64 VM under qemu-system-aarch64's TCG:
// the Apple Silicon guest stack, kernel and vminitd, exercised on x86_64).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guestAssets } from "../../helpers/hypervisor/index.js";
import { createTestEnv, ROOT, type TestEnv } from "../support/env.js";

const foreign = process.arch === "arm64" ? { platform: "linux/amd64", uname: "x86_64", arch: "x86_64" as const } : { platform: "linux/arm64", uname: "aarch64", arch: "aarch64" as const };
const ARCHIVE = join(ROOT, "build", "demo-arm64", "demo-arm64-docker.tar");
const assets = guestAssets(foreign.arch);
const missing = [ARCHIVE, assets.kernelPath, assets.initfsPath].find((p) => !existsSync(p));

let t: TestEnv;

describe.skipIf(process.arch === "arm64" || missing !== undefined)(`--platform ${foreign.platform}${missing ? ` (skipped: ${missing} is missing)` : ""}`, () => {
  beforeAll(async () => {
    t = await createTestEnv();
    expect((await t.cli(["image", "load", "-i", ARCHIVE])).code).toBe(0);
  });

  afterAll(async () => {
    await t?.close();
  });

  it("runs the arm64 image in an arm64 guest, isolated as on the host's own", async () => {
    const r = await t.cli(["run", "--rm", "--platform", foreign.platform, "--cap-drop", "ALL", "demo-arm64", "sh", "-c", "uname -m; echo $$; grep CapEff /proc/self/status | cut -f2; exit 3"], { timeoutMs: 300_000 });
    expect(r).toMatchObject({ code: 3, stdout: `${foreign.uname}\n1\n0000000000000000\n`, stderr: "" });
  });

  it("exec and logs work on the emulated guest", async () => {
    expect((await t.cli(["run", "-d", "--name", "arm", "--platform", foreign.platform, "demo-arm64", "sh", "-c", "echo up; sleep 600"], { timeoutMs: 300_000 })).code).toBe(0);
    const e = await t.cli(["exec", "arm", "uname", "-m"], { timeoutMs: 120_000 });
    expect(e).toMatchObject({ code: 0, stdout: `${foreign.uname}\n` });
    expect((await t.cli(["logs", "arm"])).stdout).toBe("up\n");
    expect((await t.cli(["rm", "-f", "arm"])).code).toBe(0);
  });

  it("an image without that platform is one line and exit 125", async () => {
    const r = await t.cli(["run", "--rm", "--platform", foreign.platform, "demo", "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr.split("\n")[0]).toBe(`Error: image demo:latest is not available for ${foreign.platform}`);
  });
});
