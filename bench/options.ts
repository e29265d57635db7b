// What `npm run bench` runs: BENCH_ITERATIONS (default 10) repetitions of
// the cheap rows, which the expensive rows scale down from, and BENCH_ONLY
// (comma-separated row keys) to run a subset.

/** Every row group, in the order they run. */
export const BENCHMARKS = ["cold", "concurrency", "memory", "exec", "agent-memory", "throughput", "pull", "httpd", "density"] as const;
export type Benchmark = (typeof BENCHMARKS)[number];

export function parseIterations(value: string | undefined): number {
  if (value === undefined || value.trim() === "") return 10;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_ITERATIONS must be a positive integer, not ${JSON.stringify(value)}`);
  return n;
}

/** The rows BENCH_ONLY names (all when unset or empty); an unknown name is an error listing the known ones. */
export function parseOnly(value: string | undefined): Set<Benchmark> {
  const names = (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) return new Set(BENCHMARKS);
  const unknown = names.filter((n) => !(BENCHMARKS as readonly string[]).includes(n));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown ${unknown.join(", ")}; known: ${BENCHMARKS.join(", ")}`);
  return new Set(names as Benchmark[]);
}

/** Repetitions of a row that costs about `cost` cheap ones: at least one. */
export function scaled(iterations: number, cost: number): number {
  return Math.max(1, Math.round(iterations / cost));
}
