// Start to ready for a real server: from spawning `container run -d demo
// httpd -f -p 8080 -h /etc` until busybox wget, run inside the container by
// one `container exec` looping every 20 ms, first gets /passwd from
// http://127.0.0.1:8080/, and that exec has returned. Containers have no
// network to the host yet, hence the exec. The floor is the cold-start floor
// (VM boot to vminitd + power-off, bench/cold-start.ts), interleaved.
import { CLI } from "../test/support/env.js";
import type { Cleanup } from "./cleanup.js";
import { bootFloor, type ColdStartOptions } from "./cold-start.js";
import { pair, stats, timeIt, type PairResult } from "./harness.js";
import { runCounted } from "./stream.js";

const READY = "until wget -q -O /dev/null http://127.0.0.1:8080/passwd; do usleep 20000; done";

export async function httpdReady(options: ColdStartOptions, cleanup: Cleanup): Promise<PairResult> {
  const { env } = options;
  const floor = await bootFloor(options);
  cleanup.add("the boot floor's files", () => floor.close());
  const runDetachedMs: number[] = [];
  let n = 0;
  const ours = async (): Promise<number> => {
    const name = `bench-httpd-${n++}`;
    const remove = cleanup.add(`container ${name}`, () => env.cli(["rm", "-f", name]));
    const ms = await timeIt(async () => {
      // Timed from our spawn, as the CLI's own wall time is in env.cli too.
      const r = await runCounted(
        process.execPath,
        [CLI, "run", "-d", "--name", name, "demo", "httpd", "-f", "-p", "8080", "-h", "/etc"],
        { env: env.env },
      );
      if (r.code !== 0) throw new Error(`run -d exited ${r.code}: ${r.stderr}`);
      runDetachedMs.push(r.wallMs);
      const e = await env.cli(["exec", name, "sh", "-c", READY], { timeoutMs: 60_000 });
      if (e.code !== 0) throw new Error(`the readiness exec exited ${e.code}: ${e.stderr}`);
    });
    await remove();
    return ms;
  };
  const r = await pair({
    name: "httpd start to ready (`run -d` → wget inside answers)",
    floorName: "VM boot to vminitd + power-off",
    iterations: options.iterations,
    ours,
    floor: floor.boot,
  });
  return { ...r, note: `\`run -d\` alone returned after ${stats(runDetachedMs).median.toFixed(0)} ms (median)` };
}
