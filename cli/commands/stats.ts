// `container stats [--no-stream] [--format json|table] [container...]`:
// resource usage from each container's cgroup in its VM, and the block I/O of
// its rootfs disk. CPU % comes from two
// samples (100% = one CPU busy), as Docker shows it.
import type { Command } from "commander";
import type { ContainerStats } from "../../apiserver/api/gen/apiserver.js";
import { sleep } from "../../lib/fs/read.js";
import { connect, request, type ApiClient } from "../client.js";
import { parseFormat } from "../parse.js";
import { formatBytes, renderJson, renderTable } from "../render/table.js";

const INTERVAL_MS = 1000;

export interface StatsRow {
  id: string;
  name: string;
  cpuPercent: number;
  memoryBytes: number;
  memoryLimitBytes: number;
  memoryPercent: number;
  blockReadBytes: number;
  blockWriteBytes: number;
  pids: number;
}

/** Rates from two samples of the same containers (matched by id); a container missing from `before` shows 0% CPU. */
export function statsRows(before: ContainerStats[], after: ContainerStats[]): StatsRow[] {
  const prev = new Map(before.map((s) => [s.id, s]));
  return after.map((s) => {
    const p = prev.get(s.id);
    const wallUs = p ? Number(s.sampledNs - p.sampledNs) / 1000 : 0;
    const cpuUs = p ? Number(s.cpuUsageUsec - p.cpuUsageUsec) : 0;
    const limit = Number(s.memoryLimitBytes);
    return {
      id: s.id,
      name: s.name,
      cpuPercent: wallUs > 0 ? (cpuUs / wallUs) * 100 : 0,
      memoryBytes: Number(s.memoryBytes),
      memoryLimitBytes: limit,
      memoryPercent: limit > 0 ? (Number(s.memoryBytes) / limit) * 100 : 0,
      blockReadBytes: Number(s.blockReadBytes),
      blockWriteBytes: Number(s.blockWriteBytes),
      pids: Number(s.pids),
    };
  });
}

export function renderStats(rows: StatsRow[], format: "json" | "table"): string {
  if (format === "json") return renderJson(rows);
  return renderTable(
    ["ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "BLOCK I/O", "PIDS"],
    rows.map((r) => [
      r.id.slice(0, 12),
      r.name,
      `${r.cpuPercent.toFixed(2)}%`,
      `${formatBytes(r.memoryBytes)} / ${r.memoryLimitBytes > 0 ? formatBytes(r.memoryLimitBytes) : "unlimited"}`,
      `${r.memoryPercent.toFixed(2)}%`,
      `${formatBytes(r.blockReadBytes)} / ${formatBytes(r.blockWriteBytes)}`,
      String(r.pids),
    ]),
  );
}

async function sample(client: ApiClient, ids: string[]): Promise<ContainerStats[]> {
  return (await request(client, "statsContainers", { ids })).containers;
}

export function registerStats(program: Command): void {
  program
    .command("stats")
    .description("show running containers' CPU, memory, block I/O and process counts")
    .argument("[container...]", "ids, id prefixes or names (default: every running container)")
    .option("--no-stream", "print one sample and exit")
    .option("--format <format>", "json or table", "table")
    .action(async (ids: string[], opts: { stream: boolean; format: string }) => {
      const format = parseFormat(opts.format);
      const client = connect();
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      try {
        let before = await sample(client, ids);
        do {
          await sleep(INTERVAL_MS, stop.signal);
          if (stop.signal.aborted) break;
          const after = await sample(client, ids);
          const out = renderStats(statsRows(before, after), format);
          // Streaming on a terminal redraws in place; elsewhere samples follow each other.
          process.stdout.write(opts.stream && process.stdout.isTTY ? `\x1b[H\x1b[2J${out}` : out);
          before = after;
        } while (opts.stream && !stop.signal.aborted);
      } finally {
        client.close();
      }
    });
}
