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
  /** What the row's figures mean beyond its name (e.g. why a loop stopped). */
  note?: string;
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

/** A figure that is not measured (a published cap, a goal) as Stats of one sample. */
export function constant(value: number): Stats {
  return stats([value]);
}

export interface ResultOptions {
  name: string;
  floorName: string;
  unit?: string;
  goal?: string;
  note?: string;
}

/** A row from samples taken by the caller (when `pair`'s one-after-the-other loop does not fit). */
export function result(options: ResultOptions, ours: Stats | number[], floor: Stats | number[]): PairResult {
  const o = Array.isArray(ours) ? stats(ours) : ours;
  const f = Array.isArray(floor) ? stats(floor) : floor;
  return {
    name: options.name,
    unit: options.unit ?? "ms",
    ours: o,
    floor: f,
    floorName: options.floorName,
    ratio: o.median / f.median,
    ...(options.goal === undefined ? {} : { goal: options.goal }),
    ...(options.note === undefined ? {} : { note: options.note }),
  };
}

/** The row of a benchmark that failed: no figures, the reason in its note. */
export function failedRow(name: string, reason: string): PairResult {
  return result({ name, floorName: "—", note: `failed: ${reason}` }, [], []);
}

export async function timeIt(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export interface PairOptions extends ResultOptions {
  iterations: number;
  ours: () => Promise<number>;
  floor: () => Promise<number>;
}

/** Runs floor and ours alternately, `iterations` times each. */
export async function pair(options: PairOptions): Promise<PairResult> {
  const ours: number[] = [];
  const floor: number[] = [];
  for (let i = 0; i < options.iterations; i++) {
    floor.push(await options.floor());
    ours.push(await options.ours());
  }
  return result(options, ours, floor);
}

/** Decimals for a row's figures: enough to tell small medians apart (7.3 MiB), none for large ones. */
export function decimals(median: number): number {
  const m = Math.abs(median);
  return m >= 20 || !Number.isFinite(m) ? 0 : m >= 2 ? 1 : 2;
}

/** One figure with its spread; a single sample (a constant) has no spread to show. */
export function formatStats(s: Stats): string {
  if (s.n === 0) return "—";
  const d = [s.median, s.mad, s.min, s.max].every(Number.isInteger) ? 0 : decimals(s.median);
  if (s.n === 1) return s.median.toFixed(d);
  return `${s.median.toFixed(d)} (±${s.mad.toFixed(d)}, ${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
}

/** A table cell: a `|` would end it. */
const cell = (text: string): string => text.replaceAll("|", "\\|");

export function markdownTable(results: PairResult[]): string {
  const rows = results.map(
    (r) => {
      const unit = r.unit === "ms" ? "" : ` ${r.unit}`;
      const notes = [r.goal, r.note].filter((x) => x !== undefined && x !== "").join("; ");
      return `| ${cell(r.name)} | ${formatStats(r.ours)}${unit} | ${cell(r.floorName)}: ${formatStats(r.floor)}${unit} | ${r.ratio.toFixed(2)} | ${cell(notes)} |`;
    },
  );
  return [
    "| benchmark | ours, median (±MAD, min–max) | floor or peer, median (±MAD, min–max) | ratio | goal, note |",
    "|---|---|---|---|---|",
    ...rows,
  ].join("\n");
}
