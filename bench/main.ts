// `npm run bench`: every benchmark with its floor, written to
// bench/results.json and bench/results.md.
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "../lib/paths/index.js";
import { createTestEnv } from "../test/support/env.js";
import { coldStart } from "./cold-start.js";
import { concurrentStarts } from "./concurrency.js";
import { idleMemory } from "./memory.js";
import { markdownTable, type PairResult } from "./harness.js";

const iterations = Number(process.env.BENCH_ITERATIONS ?? 10);

async function demoRootfs(dataDir: string): Promise<string> {
  const snapshots = join(dataDir, "snapshots");
  const [first] = (await readdir(snapshots)).filter((d) => !d.startsWith("tmp"));
  if (!first) throw new Error("the demo image has not been unpacked");
  return join(snapshots, first, "rootfs.ext4");
}

async function main(): Promise<void> {
  const env = await createTestEnv();
  const results: PairResult[] = [];
  try {
    // Warm-up: the first run unpacks the image; every later run is a cold VM.
    const warm = await env.cli(["run", "--rm", "demo", "true"]);
    if (warm.code !== 0) throw new Error(`warm-up run failed: ${warm.stderr}`);
    const status = await env.cli(["system", "status"]);
    const accelerator = /accelerator (\w+)/.exec(status.stdout)?.[1] ?? "tcg";
    const imageRootfs = await demoRootfs(join(env.dir, "data"));
    results.push(await coldStart({ env, accelerator, imageRootfs, iterations }));
    results.push(await concurrentStarts(env, Math.max(1, Math.round(iterations / 4))));
    results.push(...(await idleMemory(env, imageRootfs, accelerator)));
    const root = repoRoot();
    const meta = { date: new Date().toISOString(), iterations, accelerator, host: `${process.platform}/${process.arch}` };
    await writeFile(join(root, "bench", "results.json"), JSON.stringify({ ...meta, results }, null, 2) + "\n");
    const md = `# Benchmarks\n\n${meta.date}, ${meta.host}, accelerator ${accelerator}, ${iterations} iterations of the cold start, times in ms unless a row says otherwise.\n\n${markdownTable(results)}\n`;
    await writeFile(join(root, "bench", "results.md"), md);
    process.stdout.write(md);
  } finally {
    await env.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exit(1);
});
