import { describe, expect, it } from "vitest";
import { renderStats, statsRows } from "./stats.js";

const sample = (id: string, cpuUs: number, ns: number, mem = 1024 * 1024) => ({
  id,
  name: `n-${id}`,
  cpuUsageUsec: BigInt(cpuUs),
  memoryBytes: BigInt(mem),
  memoryLimitBytes: 4n * 1024n * 1024n,
  pids: 3n,
  sampledNs: BigInt(ns),
  cpus: 2,
  blockReadBytes: 2_500_000n,
  blockWriteBytes: 4096n,
});

describe("stats", () => {
  it("turns two samples into CPU %, 100% being one busy CPU", () => {
    const rows = statsRows([sample("a", 1000, 0), sample("b", 0, 0)], [sample("a", 501_000, 1e9), sample("b", 1_500_000, 1e9), sample("c", 9, 1e9)]);
    expect(rows.map((r) => [r.id, r.cpuPercent])).toEqual([
      ["a", 50],
      ["b", 150],
      ["c", 0],
    ]);
    expect(rows[0]).toMatchObject({ memoryBytes: 1048576, memoryLimitBytes: 4194304, memoryPercent: 25, pids: 3 });
  });

  it("renders a table and JSON", () => {
    const rows = statsRows([sample("abcdef0123456789", 0, 0)], [sample("abcdef0123456789", 250_000, 1e9)]);
    const table = renderStats(rows, "table");
    expect(table).toMatch(/^ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+BLOCK I\/O\s+PIDS\n/);
    expect(table).toContain("2.5 MB / 4.1 KB");
    expect(table).toContain("abcdef012345");
    expect(table).toContain("25.00%");
    expect(JSON.parse(renderStats(rows, "json"))[0]).toMatchObject({ cpuPercent: 25, pids: 3, blockReadBytes: 2_500_000, blockWriteBytes: 4096 });
  });
});
