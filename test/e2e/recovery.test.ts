// Crashes on purpose: the apiserver killed with SIGKILL while containers run
// must find every container again on restart, with output logged meanwhile;
// one runtime helper killed must stop only its own container.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, waitFor, type TestEnv } from "../support/env.js";
import { processExists } from "../../lib/process/index.js";

let t: TestEnv;

beforeAll(async () => {
  t = await createTestEnv();
});

afterAll(async () => {
  await t?.close();
});

interface Detail {
  summary: { name: string; state: string; exitCode: number };
  helperPid: number;
}

async function inspect(ref: string): Promise<Detail> {
  const r = await t.cli(["inspect", ref]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Detail[])[0]!;
}

/** The apiservers serving this test's runtime dir. */
const apiservers = (): string[] => t.processes().filter((p) => p.includes("apiserver/main.js"));

const ticks = async (): Promise<number> => ((await t.cli(["logs", "ticker"])).stdout.match(/tick/g) ?? []).length;

describe("the apiserver killed with SIGKILL", () => {
  it("finds every container again, running ones still serve exec, and output logged meanwhile is kept", async () => {
    expect((await t.cli(["run", "-d", "--name", "ticker", "demo", "sh", "-c", "while :; do echo tick; sleep 0.2; done"])).code).toBe(0);
    expect((await t.cli(["run", "-d", "--name", "sleeper", "demo", "sleep", "600"])).code).toBe(0);
    expect((await t.cli(["run", "--name", "finished", "demo", "sh", "-c", "exit 4"])).code).toBe(4);
    expect((await t.cli(["create", "--name", "fresh", "demo", "true"])).code).toBe(0);
    await waitFor(async () => (await ticks()) > 0, 60_000, "the ticker's output");

    // One that ends while nobody serves the API.
    expect((await t.cli(["run", "-d", "--name", "brief", "demo", "sh", "-c", "sleep 2; exit 5"])).code).toBe(0);

    const pid = await t.apiserverPid();
    process.kill(pid, "SIGKILL");
    await waitFor(() => !processExists(pid), 10_000, "the apiserver to die");
    // The ticker keeps writing, and brief ends, while nobody serves the API.
    await new Promise((r) => setTimeout(r, 4000));
    expect((await t.cli(["ls"])).code).not.toBe(0);

    // Two at once, as from two shells, while it recovers: one apiserver, and both say it runs.
    const starts = await Promise.all([t.cli(["system", "start"]), t.cli(["system", "start"])]);
    for (const r of starts) expect(r.code, r.stderr).toBe(0);
    expect(new Set(starts.map((r) => /pid (\d+)/.exec(r.stdout)?.[1])), starts.map((r) => r.stdout).join("")).toHaveLength(1);
    expect(apiservers()).toHaveLength(1);
    const listed = (await t.cli(["ls", "-a", "--format", "json"])).stdout;
    const states = Object.fromEntries((JSON.parse(listed) as { name: string; state: string }[]).map((c) => [c.name, c.state]));
    expect(states).toEqual({ ticker: "running", sleeper: "running", finished: "stopped", fresh: "created", brief: "stopped" });
    expect((await inspect("finished")).summary.exitCode).toBe(4);
    expect((await inspect("brief")).summary.exitCode).toBe(5);

    expect(await t.cli(["exec", "sleeper", "echo", "still here"])).toMatchObject({ code: 0, stdout: "still here\n" });
    // At 5 ticks a second, 4 s without an apiserver left many lines.
    const n = await ticks();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await ticks()).toBeGreaterThan(n);
    expect(await t.cli(["start", "-a", "fresh"])).toMatchObject({ code: 0 });
  });
});

describe("one runtime helper killed with SIGKILL", () => {
  it("stops only its own container, and its state says so", async () => {
    const victim = await inspect("sleeper");
    expect(victim.helperPid).toBeGreaterThan(0);
    process.kill(victim.helperPid, "SIGKILL");
    await waitFor(async () => (await inspect("sleeper")).summary.state === "stopped", 30_000, "the container to stop");
    expect((await inspect("sleeper")).summary.exitCode).toBe(137);
    expect((await inspect("ticker")).summary.state).toBe("running");
    expect(await t.cli(["exec", "ticker", "echo", "ok"])).toMatchObject({ code: 0, stdout: "ok\n" });
    expect((await t.cli(["rm", "-f", "--all"])).code).toBe(0);
  });
});
