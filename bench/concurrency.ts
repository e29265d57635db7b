// Ten `container run --rm demo true` at once, against the same ten one after
// another, in the same run: what running containers side by side costs or
// saves on this machine.
import type { TestEnv } from "../test/support/env.js";
import { pair, timeIt, type PairResult } from "./harness.js";

const N = 10;

async function runOne(env: TestEnv): Promise<void> {
  const r = await env.cli(["run", "--rm", "demo", "true"]);
  if (r.code !== 0) throw new Error(`container run exited ${r.code}: ${r.stderr}`);
}

export function concurrentStarts(env: TestEnv, iterations: number): Promise<PairResult> {
  return pair({
    name: `${N} concurrent \`run --rm demo true\`, total`,
    floorName: `${N} sequential`,
    iterations,
    ours: () => timeIt(async () => void (await Promise.all(Array.from({ length: N }, () => runOne(env))))),
    floor: () =>
      timeIt(async () => {
        for (let i = 0; i < N; i++) await runOne(env);
      }),
  });
}
