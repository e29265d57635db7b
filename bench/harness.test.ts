import { describe, expect, it } from "vitest";
import { constant, decimals, failedRow, formatStats, markdownTable, pair, result, type PairResult, stats, timeIt } from "./harness.js";

describe("stats", () => {
  it("takes the middle sample for odd counts, whatever the order", () => {
    const s = stats([5, 1, 3]);
    expect(s).toEqual({ n: 3, median: 3, min: 1, max: 5, mad: 2 });
  });

  it("averages the two middle samples for even counts", () => {
    const s = stats([4, 1, 3, 2]);
    expect(s.n).toBe(4);
    expect(s.median).toBe(2.5);
    expect(s.min).toBe(1);
    expect(s.max).toBe(4);
    // deviations from 2.5: 1.5, 0.5, 0.5, 1.5 → median 1
    expect(s.mad).toBe(1);
  });

  it("keeps MAD robust to an outlier", () => {
    const s = stats([10, 11, 12, 13, 1000]);
    expect(s.median).toBe(12);
    expect(s.max).toBe(1000);
    // deviations: 2, 1, 0, 1, 988 → median 1
    expect(s.mad).toBe(1);
  });

  it("handles a single sample", () => {
    expect(stats([7])).toEqual({ n: 1, median: 7, min: 7, max: 7, mad: 0 });
  });

  it("gives NaN for no samples", () => {
    const s = stats([]);
    expect(s.n).toBe(0);
    expect(s.median).toBeNaN();
    expect(s.min).toBeNaN();
    expect(s.max).toBeNaN();
    expect(s.mad).toBeNaN();
  });

  it("does not reorder its input", () => {
    const samples = [3, 1, 2];
    stats(samples);
    expect(samples).toEqual([3, 1, 2]);
  });
});

describe("timeIt", () => {
  it("measures a non-negative duration", async () => {
    const ms = await timeIt(async () => undefined);
    expect(ms).toBeGreaterThanOrEqual(0);
  });
});

describe("pair", () => {
  it("interleaves floor then ours and compares medians", async () => {
    const order: string[] = [];
    const floorValues = [10, 30, 20];
    const oursValues = [25, 15, 35];
    const result = await pair({
      name: "cold start",
      floorName: "qemu alone",
      iterations: 3,
      floor: async () => {
        order.push("floor");
        return floorValues[order.filter((o) => o === "floor").length - 1]!;
      },
      ours: async () => {
        order.push("ours");
        return oursValues[order.filter((o) => o === "ours").length - 1]!;
      },
    });
    expect(order).toEqual(["floor", "ours", "floor", "ours", "floor", "ours"]);
    expect(result.name).toBe("cold start");
    expect(result.floorName).toBe("qemu alone");
    expect(result.unit).toBe("ms");
    expect(result.floor.median).toBe(20);
    expect(result.ours.median).toBe(25);
    expect(result.floor.n).toBe(3);
    expect(result.ratio).toBeCloseTo(1.25);
    expect("goal" in result).toBe(false);
  });

  it("keeps the unit and goal when given", async () => {
    const result = await pair({
      name: "rss",
      floorName: "floor",
      unit: "MiB",
      goal: "≤ 1.5×",
      iterations: 2,
      floor: async () => 2,
      ours: async () => 3,
    });
    expect(result.unit).toBe("MiB");
    expect(result.goal).toBe("≤ 1.5×");
    expect(result.ratio).toBe(1.5);
  });

  it("runs nothing for zero iterations", async () => {
    let calls = 0;
    const result = await pair({
      name: "n",
      floorName: "f",
      iterations: 0,
      floor: async () => ++calls,
      ours: async () => ++calls,
    });
    expect(calls).toBe(0);
    expect(result.ratio).toBeNaN();
  });
});

describe("markdownTable", () => {
  const result = (name: string, goal?: string): PairResult => ({
    name,
    unit: "ms",
    ours: { n: 3, median: 120.4, min: 100, max: 150.6, mad: 4.2 },
    floor: { n: 3, median: 80, min: 70, max: 90, mad: 3 },
    floorName: "bare",
    ratio: 1.5,
    ...(goal === undefined ? {} : { goal }),
  });

  it("has a header, a separator and one row per result", () => {
    const lines = markdownTable([result("a", "≤ 2×"), result("b")]).split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^\| benchmark \|/);
    expect(lines[1]).toBe("|---|---|---|---|---|");
    expect(lines[2]).toBe("| a | 120 (±4, 100–151) | bare: 80 (±3, 70–90) | 1.50 | ≤ 2× |");
    expect(lines[3]).toBe("| b | 120 (±4, 100–151) | bare: 80 (±3, 70–90) | 1.50 |  |");
  });

  it("is only the header for no results", () => {
    expect(markdownTable([]).split("\n")).toHaveLength(2);
  });
});

describe("result", () => {
  it("builds a row from samples or stats, with a ratio of medians", () => {
    const r = result({ name: "rss", floorName: "cap", unit: "MiB", note: "a published figure" }, [7, 8, 9], constant(80));
    expect(r.ours.median).toBe(8);
    expect(r.floor).toEqual({ n: 1, median: 80, min: 80, max: 80, mad: 0 });
    expect(r.ratio).toBe(0.1);
    expect(r.unit).toBe("MiB");
    expect(r.note).toBe("a published figure");
    expect("goal" in r).toBe(false);
  });

  it("defaults to ms", () => {
    expect(result({ name: "n", floorName: "f" }, [1], [2]).unit).toBe("ms");
  });
});

describe("formatStats", () => {
  it("shows small medians with decimals, large ones without", () => {
    expect(decimals(120)).toBe(0);
    expect(decimals(7.3)).toBe(1);
    expect(decimals(0.42)).toBe(2);
    expect(formatStats(stats([7.25, 7.5, 8.1]))).toBe("7.5 (±0.3, 7.3–8.1)");
  });

  it("shows whole numbers as such", () => {
    expect(formatStats(stats([4, 5, 6]))).toBe("5 (±1, 4–6)");
  });

  it("shows a single sample without a spread", () => {
    expect(formatStats(constant(80))).toBe("80");
    expect(formatStats(constant(10.4))).toBe("10.4");
  });
});

describe("markdownTable cells", () => {
  it("escapes pipes and joins goal and note", () => {
    const r = result({ name: "a | b", floorName: "dd | cat", goal: "ratio < 1", note: "higher | better" }, [1], [2]);
    expect(markdownTable([r]).split("\n")[2]).toBe("| a \\| b | 1 | dd \\| cat: 2 | 0.50 | ratio < 1; higher \\| better |");
  });
});

describe("failedRow", () => {
  it("has no figures and says why", () => {
    const r = failedRow("pull", "registry did not start");
    expect(markdownTable([r]).split("\n")[2]).toBe("| pull | — | —: — | NaN | failed: registry did not start |");
  });
});
