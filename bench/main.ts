// `npm run bench`: every benchmark with its floor, written to
// bench/results.json and bench/results.md. BENCH_ITERATIONS (default 10) and
// BENCH_ONLY (comma-separated keys of bench/options.ts) choose what runs.
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "../lib/paths/index.js";
import { createTestEnv, type TestEnv } from "../test/support/env.js";
import { agentMemory } from "./agent-memory.js";
import { cleanUpActive, withCleanup } from "./cleanup.js";
import { coldStart } from "./cold-start.js";
import { concurrentStarts } from "./concurrency.js";
import { density } from "./density.js";
import { execLatency } from "./exec.js";
import { httpdReady } from "./httpd.js";
import { idleMemory } from "./memory.js";
import { imagePull } from "./pull.js";
import { stdoutThroughput } from "./throughput.js";
import { failedRow, markdownTable, type PairResult } from "./harness.js";
import { parseIterations, parseOnly, scaled } from "./options.js";

const iterations = parseIterations(process.env.BENCH_ITERATIONS);
const only = parseOnly(process.env.BENCH_ONLY);

async function demoRootfs(dataDir: string): Promise<string> {
  const snapshots = join(dataDir, "snapshots");
  const [first] = (await readdir(snapshots)).filter((d) => !d.startsWith("tmp"));
  if (!first) throw new Error("the demo image has not been unpacked");
  return join(snapshots, first, "rootfs.ext4");
}

let env: TestEnv | undefined;
let closing: Promise<void> | undefined;
const closeEnv = (): Promise<void> => (closing ??= env ? env.close() : Promise.resolve());

// Interrupted: undo what the running row made (registry, temp files), then
// stop the installation (its apiserver stops every container, and the leak
// check kills whatever is left) before exiting.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, cleaning up\n`);
    void cleanUpActive()
      .then((failures) => failures.forEach((f) => process.stderr.write(`bench: ${f.message}\n`)))
      .then(closeEnv)
      .catch((err: unknown) => process.stderr.write(`bench: ${(err as Error).message}\n`))
      .finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  env = await createTestEnv();
  const results: PairResult[] = [];
  const failed: string[] = [];
  try {
    // Warm-up: the first run unpacks the image; every later run is a cold VM.
    const warm = await env.cli(["run", "--rm", "demo", "true"]);
    if (warm.code !== 0) throw new Error(`warm-up run failed: ${warm.stderr}`);
    const status = await env.cli(["system", "status"]);
    const accelerator = /accelerator (\w+)/.exec(status.stdout)?.[1] ?? "tcg";
    const imageRootfs = await demoRootfs(join(env.dir, "data"));
    const e = env;
    const rows: [key: Parameters<typeof only.has>[0], run: () => Promise<PairResult | PairResult[]>][] = [
      ["cold", () => coldStart({ env: e, accelerator, imageRootfs, iterations })],
      ["concurrency", () => concurrentStarts(e, scaled(iterations, 4))],
      ["memory", () => idleMemory(e, imageRootfs, accelerator)],
      ["exec", () => withCleanup((c) => execLatency(e, iterations, c))],
      ["agent-memory", () => withCleanup((c) => agentMemory(e, iterations, c))],
      ["throughput", () => withCleanup((c) => stdoutThroughput(e, scaled(iterations, 2), c))],
      ["pull", () => withCleanup((c) => imagePull(e, scaled(iterations, 3), c))],
      ["httpd", () => withCleanup((c) => httpdReady({ env: e, accelerator, imageRootfs, iterations: scaled(iterations, 2) }, c))],
      ["density", () => withCleanup((c) => density(e, scaled(iterations, 10), c))],
    ];
    // A row that fails is reported as failed and the others still run; the
    // bench then exits non-zero.
    for (const [key, run] of rows) {
      if (!only.has(key)) continue;
      const t0 = Date.now();
      process.stderr.write(`bench: ${key}\n`);
      try {
        const r = await run();
        results.push(...(Array.isArray(r) ? r : [r]));
        process.stderr.write(`bench: ${key} done in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
      } catch (err) {
        const message = (err as Error).message.split("\n")[0] ?? "";
        process.stderr.write(`bench: ${key} failed: ${message}\n`);
        results.push(failedRow(key, message));
        failed.push(key);
      }
    }
    const root = repoRoot();
    const meta = { date: new Date().toISOString(), iterations, only: [...only], accelerator, host: `${process.platform}/${process.arch}` };
    await writeFile(join(root, "bench", "results.json"), JSON.stringify({ ...meta, results }, null, 2) + "\n");
    const subset = only.size < rows.length ? `, only ${[...only].join(", ")}` : "";
    const md = `# Benchmarks\n\n${meta.date}, ${meta.host}, accelerator ${accelerator}, BENCH_ITERATIONS=${iterations}${subset}; times in ms unless a row says otherwise. See docs/performance.md for what each row measures.\n\n${markdownTable(results)}\n`;
    await writeFile(join(root, "bench", "results.md"), md);
    process.stdout.write(md);
    if (failed.length > 0) throw new Error(`rows failed: ${failed.join(", ")}`);
  } finally {
    await closeEnv();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exit(1);
});
