// Paired measurements: each benchmark times our figure and its floor (or a
// peer) interleaved in the same run, so machine noise hits both alike.
export interface Stats {
  n: number;
  median: number;
  min: number;
  max: number;
  /** Median absolute deviation, a spread robust to outliers. */
  mad: number;
}

export interface PairResult {
  name: string;
  unit: string;
  ours: Stats;
  floor: Stats;
  floorName: string;
  /** ours.median / floor.median */
  ratio: number;
  goal?: string;
}

export function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const median = quantile(sorted, 0.5);
  const deviations = sorted.map((x) => Math.abs(x - median)).sort((a, b) => a - b);
  return { n: sorted.length, median, min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN, mad: quantile(deviations, 0.5) };
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export async function timeIt(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export interface PairOptions {
  name: string;
  floorName: string;
  unit?: string;
  iterations: number;
  ours: () => Promise<number>;
  floor: () => Promise<number>;
  goal?: string;
}

/** Runs floor and ours alternately, `iterations` times each. */
export async function pair(options: PairOptions): Promise<PairResult> {
  const ours: number[] = [];
  const floor: number[] = [];
  for (let i = 0; i < options.iterations; i++) {
    floor.push(await options.floor());
    ours.push(await options.ours());
  }
  const o = stats(ours);
  const f = stats(floor);
  return {
    name: options.name,
    unit: options.unit ?? "ms",
    ours: o,
    floor: f,
    floorName: options.floorName,
    ratio: o.median / f.median,
    ...(options.goal === undefined ? {} : { goal: options.goal }),
  };
}

export function markdownTable(results: PairResult[]): string {
  const fmt = (s: Stats): string => `${s.median.toFixed(0)} (±${s.mad.toFixed(0)}, ${s.min.toFixed(0)}–${s.max.toFixed(0)})`;
  const rows = results.map(
    (r) => {
      const unit = r.unit === "ms" ? "" : ` ${r.unit}`;
      return `| ${r.name} | ${fmt(r.ours)}${unit} | ${r.floorName}: ${fmt(r.floor)}${unit} | ${r.ratio.toFixed(2)} | ${r.goal ?? ""} |`;
    },
  );
  return [
    "| benchmark | ours, median (±MAD, min–max) | floor or peer, median (±MAD, min–max) | ratio | goal |",
    "|---|---|---|---|---|",
    ...rows,
  ].join("\n");
}
