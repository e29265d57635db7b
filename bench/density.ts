// Density: idle containers (`run -d demo sleep 3600`) started one after
// another, each `run -d` timed from spawn to exit, until CONFIRM starts in a
// row take at least twice the baseline, or CAP run, or the host's
// MemAvailable would fall below one more VM's memory plus 1 GiB. The baseline
// is the median of BASELINE starts with none running (each removed before
// the next), so one slow first start on a busy machine does not end the
// count early. Reports how many were running before the slow starts and why
// it stopped, and the last start next to the baseline.
import { readFile } from "node:fs/promises";
import { DEFAULT_MEMORY_MIB } from "../apiserver/containers/spec.js";
import type { TestEnv } from "../test/support/env.js";
import type { Cleanup } from "./cleanup.js";
import { constant, result, stats, timeIt, type PairResult } from "./harness.js";
import { MiB, parseMeminfo } from "./parse.js";

export const CAP = 16;
/** Starts with none running whose median is the baseline. */
export const BASELINE = 3;
/** Consecutive slow starts that count as the start time having doubled: one alone may be noise from the rest of the machine. */
export const CONFIRM = 2;
const RESERVE_BYTES = 1024 * MiB;

export type DensityStop = "start time doubled" | `cap of ${number}` | "host memory";

export interface DensityState {
  /** A start with none running (median of several). */
  baselineMs: number;
  /** Start times so far; the i-th began with i containers running. */
  startsMs: number[];
  cap: number;
  /** The host's MemAvailable now. */
  availableBytes: number;
  /** What one more VM may take: its memory size plus a reserve for the host. */
  nextVmBytes: number;
}

/** How many of the latest starts took at least twice the baseline. */
export function trailingDoubled(startsMs: number[], baselineMs: number): number {
  let n = 0;
  for (let i = startsMs.length - 1; i >= 0 && startsMs[i]! >= 2 * baselineMs; i--) n++;
  return n;
}

/** Why to stop starting containers, or undefined to start one more. */
export function densityStop(s: DensityState): DensityStop | undefined {
  if (trailingDoubled(s.startsMs, s.baselineMs) >= CONFIRM) return "start time doubled";
  if (s.startsMs.length >= s.cap) return `cap of ${s.cap}`;
  if (s.availableBytes < s.nextVmBytes) return "host memory";
  return undefined;
}

/** Containers that were running at once before the start time doubled (the confirming slow starts not counted). */
export function reached(startsMs: number[], stop: DensityStop): number {
  return startsMs.length - (stop === "start time doubled" ? CONFIRM : 0);
}

const hostAvailable = async (): Promise<number> => parseMeminfo(await readFile("/proc/meminfo", "utf8")).availableBytes;

export async function density(env: TestEnv, passes: number, cleanup: Cleanup): Promise<PairResult[]> {
  const counts: number[] = [];
  const baselines: number[] = [];
  const lasts: number[] = [];
  const reasons: DensityStop[] = [];
  for (let p = 0; p < passes; p++) {
    const names: string[] = [];
    const removeAll = cleanup.add(`density pass ${p}'s containers`, () => (names.length > 0 ? env.cli(["rm", "-f", ...names], { timeoutMs: 300_000 }) : undefined));
    const start = async (name: string): Promise<number> => {
      names.push(name);
      return timeIt(async () => {
        const r = await env.cli(["run", "-d", "--name", name, "demo", "sleep", "3600"]);
        if (r.code !== 0) throw new Error(`run -d ${name} exited ${r.code}: ${r.stderr}`);
      });
    };
    const alone: number[] = [];
    for (let i = 0; i < BASELINE; i++) {
      const name = `bench-density-${p}-alone-${i}`;
      alone.push(await start(name));
      const r = await env.cli(["rm", "-f", name]);
      if (r.code !== 0) throw new Error(`rm -f ${name} exited ${r.code}: ${r.stderr}`);
      names.splice(names.indexOf(name), 1);
    }
    const baselineMs = stats(alone).median;
    const startsMs: number[] = [];
    let reason: DensityStop | undefined;
    for (;;) {
      reason = densityStop({ baselineMs, startsMs, cap: CAP, availableBytes: await hostAvailable(), nextVmBytes: DEFAULT_MEMORY_MIB * MiB + RESERVE_BYTES });
      if (reason) break;
      startsMs.push(await start(`bench-density-${p}-${startsMs.length}`));
      process.stderr.write(`bench: density: ${startsMs.length} running, last start ${startsMs.at(-1)!.toFixed(0)} ms (baseline ${baselineMs.toFixed(0)} ms)\n`);
    }
    counts.push(reached(startsMs, reason));
    baselines.push(baselineMs);
    lasts.push(startsMs.at(-1)!);
    reasons.push(reason);
    await removeAll();
  }
  const note = `stopped by: ${reasons.join(", ")}`;
  return [
    result(
      { name: "density: idle containers running before starts took 2× the baseline", floorName: "the bench's cap", unit: "containers", note: `${note}; ${CONFIRM} slow starts in a row count as doubled, and are not counted` },
      counts,
      constant(CAP),
    ),
    result(
      { name: "density: `run -d demo sleep` with the others idle, the last start", floorName: `baseline: median of ${BASELINE} starts with none running`, note: "goal: ratio < 2 up to the cap" },
      lasts,
      baselines,
    ),
  ];
}
