// Soak: SOAK_CYCLES (default 100) cycles of 4 parallel `run --rm`, then
// nothing may be left: no QEMU, helper or backend process, no runtime socket
// or directory, no container directory, and the apiserver holds no more file
// descriptors than it did after the first cycle.
//
// Known bug, kept visible rather than hidden: about one run in 300 under this
// load dies with its VM: the guest resets soon after mounting the rootfs, its
// vsock connections gone quiet (see the session note on issue 7), and the run
// ends with 125 and one line (before the process started) or 137 (after).
// Such a run must still end cleanly and leave nothing behind; the report
// lists every one, and more than 1% of them fails the test.
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, type TestEnv } from "../support/env.js";

const CYCLES = Number(process.env.SOAK_CYCLES ?? 100);
const PARALLEL = 4;

let t: TestEnv;

beforeAll(async () => {
  t = await createTestEnv();
});

afterAll(async () => {
  // close() fails on any process or runtime file left behind.
  await t?.close();
});

const list = async (dir: string): Promise<string[]> => (existsSync(dir) ? await readdir(dir) : []);

async function apiserverFds(): Promise<number> {
  const pid = await t.apiserverPid();
  return (await readdir(`/proc/${pid}/fd`)).length;
}

describe("soak", () => {
  it(`runs ${CYCLES} cycles of ${PARALLEL} parallel \`run --rm\` and leaks nothing`, async () => {
    let fdsAfterFirst = 0;
    const failures: { cycle: number; run: number; code: number; stdout: string; stderr: string }[] = [];
    const started = Date.now();
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const runs = await Promise.all(
        Array.from({ length: PARALLEL }, (_, i) => t.cli(["run", "--rm", "demo", "sh", "-c", `echo ${cycle}-${i}`])),
      );
      runs.forEach((r, i) => {
        if (r.code === 0 && r.stdout === `${cycle}-${i}\n`) return;
        failures.push({ cycle, run: i, code: r.code, stdout: r.stdout, stderr: r.stderr });
      });
      if (cycle === 0) fdsAfterFirst = await apiserverFds();
    }
    const fds = await apiserverFds();
    // Only the processes of this installation count: the spare helper is one.
    const processes = t.processes().filter((p) => !p.includes("--standby") && !p.includes("apiserver/main.js"));
    const report = {
      cycles: CYCLES,
      runs: CYCLES * PARALLEL,
      failed: failures,
      seconds: Math.round((Date.now() - started) / 1000),
      apiserverFds: { afterFirstCycle: fdsAfterFirst, atEnd: fds },
      leftoverProcesses: processes,
      leftoverRuntimeDirs: await list(join(t.dir, "run", "c")),
      leftoverContainers: await list(join(t.dir, "data", "containers")),
    };
    process.stdout.write(`soak: ${JSON.stringify(report)}\n`);
    for (const f of failures) {
      // A VM that died: 125 with one line before the process ran, 137 after.
      expect([125, 137], JSON.stringify(f)).toContain(f.code);
      if (f.code === 125) expect(f.stderr, JSON.stringify(f)).toMatch(/^Error: [^\n]+\n(Hint: [^\n]+\n)?$/);
    }
    expect(failures.length).toBeLessThanOrEqual(Math.floor((CYCLES * PARALLEL) / 100));
    expect(report.leftoverProcesses).toEqual([]);
    expect(report.leftoverRuntimeDirs).toEqual([]);
    expect(report.leftoverContainers).toEqual([]);
    expect(fds).toBeLessThanOrEqual(fdsAfterFirst + 2);
    expect((await t.cli(["ls", "-aq"])).stdout).toBe("");
  });
});
