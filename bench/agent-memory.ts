// vminitd's own resident memory (VmRSS, asked of vminitd itself: Ping with
// memory) in the guest of an idle container, next to Apple
// containerization's cap for its guest agent (80 MiB) and our goal (under
// 10 MiB); and the guest's memory in use (MemTotal − MemAvailable of the
// guest's /proc/meminfo, read in the container) next to the guest's MemTotal.
// The helper's agent connection is opened with a Stats call (`container
// stats --no-stream`), the lightest agent call the CLI has, not an exec.
import type { TestEnv } from "../test/support/env.js";
import { connectBenchAgent } from "./agent.js";
import type { Cleanup } from "./cleanup.js";
import { constant, result, type PairResult } from "./harness.js";
import { MiB, parseMeminfo, usedBytes } from "./parse.js";

const APPLE_CAP_MIB = 80;
const GOAL_MIB = 10;
const SETTLE_MS = 5000;
const SAMPLE_INTERVAL_MS = 200;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function agentMemory(env: TestEnv, iterations: number, cleanup: Cleanup): Promise<PairResult[]> {
  const name = "bench-agent-mem";
  cleanup.add(`container ${name}`, () => env.cli(["rm", "-f", name]));
  const r = await env.cli(["run", "-d", "--name", name, "demo", "sleep", "3600"]);
  if (r.code !== 0) throw new Error(`run -d failed: ${r.stderr}`);
  const s = await env.cli(["stats", "--no-stream", name]);
  if (s.code !== 0) throw new Error(`stats failed: ${s.stderr}`);
  const agent = await connectBenchAgent(env, name);
  cleanup.add("the bench's agent channel", () => agent.close());
  await sleep(SETTLE_MS);

  const rss: number[] = [];
  for (let i = 0; i < iterations; i++) {
    rss.push(Number((await agent.ping(true)).agentRssBytes) / MiB);
    await sleep(SAMPLE_INTERVAL_MS);
  }
  // Then the guest as a whole (an exec each, after the idle samples: an exec
  // grows vminitd's own heap a little).
  const used: number[] = [];
  const total: number[] = [];
  for (let i = 0; i < Math.max(1, Math.round(iterations / 2)); i++) {
    const m = await env.cli(["exec", name, "cat", "/proc/meminfo"]);
    if (m.code !== 0) throw new Error(`exec cat /proc/meminfo exited ${m.code}: ${m.stderr}`);
    const info = parseMeminfo(m.stdout);
    used.push(usedBytes(info) / MiB);
    total.push(info.totalBytes / MiB);
  }
  const rssName = "vminitd resident memory (VmRSS), idle container";
  return [
    result({ name: rssName, floorName: "Apple containerization's agent cap (published, not measured)", unit: "MiB" }, rss, constant(APPLE_CAP_MIB)),
    result({ name: rssName, floorName: "our goal (a target, not measured)", unit: "MiB", goal: "ratio < 1" }, rss, constant(GOAL_MIB)),
    result({ name: "guest memory in use (MemTotal − MemAvailable), idle container", floorName: "guest MemTotal", unit: "MiB", note: "ratio: share of the guest's memory in use" }, used, total),
  ];
}
