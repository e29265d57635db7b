// `container exec C true` on a running container against a bare gRPC round
// trip (Ping) to the same container's vminitd, through the helper's agent
// splice socket (bench/agent.ts), interleaved. The exec is the whole
// command: the CLI starting, apiserver → helper → the agent's CreateProcess,
// StartProcess and WaitProcess, stdio over vsock, the CLI exiting. The Ping
// is the least any host → guest request costs on this path.
import type { TestEnv } from "../test/support/env.js";
import { connectBenchAgent } from "./agent.js";
import type { Cleanup } from "./cleanup.js";
import { pair, timeIt, type PairResult } from "./harness.js";

export async function execLatency(env: TestEnv, iterations: number, cleanup: Cleanup): Promise<PairResult> {
  const name = "bench-exec";
  cleanup.add(`container ${name}`, () => env.cli(["rm", "-f", name]));
  const r = await env.cli(["run", "-d", "--name", name, "demo", "sleep", "3600"]);
  if (r.code !== 0) throw new Error(`run -d failed: ${r.stderr}`);
  const exec = async (): Promise<void> => {
    const e = await env.cli(["exec", name, "true"]);
    if (e.code !== 0) throw new Error(`exec exited ${e.code}: ${e.stderr}`);
  };
  // Warm-up: the first exec also makes the helper dial the agent.
  await exec();
  const agent = await connectBenchAgent(env, name);
  cleanup.add("the bench's agent channel", () => agent.close());
  await agent.ping();
  return pair({
    name: "`container exec C true`, running container",
    floorName: "gRPC Ping to C's vminitd via the helper's agent socket",
    iterations,
    floor: () => timeIt(async () => void (await agent.ping())),
    ours: () => timeIt(exec),
  });
}
