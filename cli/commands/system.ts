// `container system start|stop|status|logs|version|df|property`. On Linux
// the apiserver runs as a detached daemon with a pid file; its log is
// <data dir>/apiserver.log.
import { spawn } from "node:child_process";
import { mkdir, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { ContainerError } from "../../lib/errors/index.js";
import { processExists, readPid, runsProgram } from "../../lib/process/index.js";
import { readFrom, sleep } from "../../lib/fs/read.js";
import { APISERVER_PROGRAM, apiserverPidPath, dataDir, repoRoot } from "../../lib/paths/index.js";
import { parseCount, parseFormat } from "../parse.js";
import { formatBytes, renderJson, renderTable } from "../render/table.js";
import type { PingResponse } from "../../apiserver/api/gen/apiserver.js";
import { connect, explain, request } from "../client.js";

const APISERVER_MAIN = fileURLToPath(new URL("../../apiserver/main.js", import.meta.url));
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 60_000;

async function ping(timeoutMs = 1000): Promise<PingResponse | undefined> {
  const client = connect();
  try {
    return await request(client, "ping", {}, { deadline: Date.now() + timeoutMs });
  } catch (err) {
    const e = explain(err);
    if (e.code === "unavailable" || e.code === "timeout") return undefined;
    throw e;
  } finally {
    client.close();
  }
}

async function lastLogLine(path: string): Promise<string> {
  try {
    const line = (await readFile(path, "utf8")).trim().split("\n").pop() ?? "";
    return (JSON.parse(line) as { msg?: string }).msg ?? line;
  } catch {
    return "";
  }
}

interface Daemon {
  pid: number;
  exited(): boolean;
  /** Resolves once it has exited, or after `timeoutMs`. */
  gone(timeoutMs: number): Promise<void>;
  kill(): void;
}

/** Spawns the apiserver detached (its own session), logging to `logPath`. */
async function startDetached(logPath: string): Promise<Daemon> {
  const log = await open(logPath, "a", 0o600);
  const child = spawn(process.execPath, [APISERVER_MAIN], { detached: true, stdio: ["ignore", log.fd, log.fd] });
  await log.close();
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exit.then(() => (exited = true));
  child.unref();
  return {
    pid: child.pid ?? 0,
    exited: () => exited,
    gone: async (timeoutMs) => {
      const stop = new AbortController();
      await Promise.race([exit, sleep(timeoutMs, stop.signal)]);
      stop.abort();
    },
    kill: () => void child.kill("SIGKILL"),
  };
}

/** Whether an apiserver holds the pid file: one that runs, or is still recovering. */
async function apiserverStarting(): Promise<boolean> {
  const pid = await readPid(apiserverPidPath());
  return pid !== undefined && (await runsProgram(pid, APISERVER_PROGRAM));
}

/**
 * Starts the apiserver under this host's service manager (cli/service):
 * launchd on macOS, a systemd user unit where one runs, else a detached
 * daemon; then waits until it answers.
 */
export async function systemStart(): Promise<PingResponse> {
  const running = await ping();
  if (running) return running;
  // The daemon would refuse a bad config.toml too; checking here says why at once.
  await (await import("../../lib/config/index.js")).loadConfig();
  const logPath = join(dataDir(), "apiserver.log");
  await mkdir(dataDir(), { recursive: true, mode: 0o700 });
  const service = await import("../service/index.js");
  const kind = service.serviceKind();
  let daemon: Daemon | undefined;
  if (kind === "detached") daemon = await startDetached(logPath);
  else {
    const spec = { node: process.execPath, main: APISERVER_MAIN, env: service.serviceEnv(), logPath };
    if (kind === "systemd") await (await import("../service/systemd.js")).startSystemdUnit(spec);
    else await (await import("../service/launchd.js")).startLaunchdAgent(spec);
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const pong = await ping(500);
    if (pong) {
      // Another `system start`'s apiserver answered: ours gives way, and is
      // gone before this returns.
      if (daemon && pong.pid !== daemon.pid) {
        await daemon.gone(Math.max(0, deadline - Date.now()));
        if (!daemon.exited()) daemon.kill();
      }
      return pong;
    }
    // Ours gave way to one another `system start` began: wait for that one.
    if (daemon?.exited() && !(await apiserverStarting())) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const why = await lastLogLine(logPath);
  if (daemon && !daemon.exited()) daemon.kill();
  throw new ContainerError("unavailable", `the apiserver did not start${why ? `: ${why}` : ""}`, { hint: `see ${logPath}` });
}

/** `system logs`: the apiserver's log (JSON lines), the last `tail` lines, then new ones with `follow` until Ctrl-C. */
async function systemLogs(tail: number, follow: boolean): Promise<void> {
  const path = join(dataDir(), "apiserver.log");
  const first = await readFrom(path, 0);
  const lines = first.toString("utf8").split(/(?<=\n)/);
  process.stdout.write((tail > 0 ? lines.slice(-tail) : lines).join(""));
  if (!follow) return;
  const stop = new AbortController();
  process.once("SIGINT", () => stop.abort());
  let offset = first.length;
  while (!stop.signal.aborted) {
    await sleep(200, stop.signal);
    const more = await readFrom(path, offset);
    offset += more.length;
    process.stdout.write(more);
  }
}

async function systemStop(): Promise<boolean> {
  const pid = await readPid(apiserverPidPath());
  if (!(await ping())) return false;
  const client = connect();
  try {
    await request(client, "shutdown", {});
  } finally {
    client.close();
  }
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline && ((pid !== undefined && processExists(pid)) || (await ping(200)))) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const service = await import("../service/index.js");
  if (service.serviceKind() === "launchd") await (await import("../service/launchd.js")).stopLaunchdAgent();
  return true;
}

export function registerSystem(program: Command): void {
  const system = program.command("system").alias("s").description("manage the container service");
  system
    .command("start")
    .description("start the apiserver")
    .action(async () => {
      const pong = await systemStart();
      process.stdout.write(`apiserver running (pid ${pong.pid}, accelerator ${pong.accelerator})\n`);
    });
  system
    .command("stop")
    .description("stop every container, then the apiserver")
    .action(async () => {
      process.stdout.write((await systemStop()) ? "apiserver stopped\n" : "apiserver was not running\n");
    });
  system
    .command("status")
    .description("show whether the apiserver runs")
    .action(async () => {
      const pong = await ping();
      if (!pong) {
        process.stdout.write("apiserver is not running\n");
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`apiserver is running (pid ${pong.pid}, version ${pong.version}, accelerator ${pong.accelerator})\n`);
    });
  system
    .command("logs")
    .description("show the apiserver's log")
    .option("-f, --follow", "keep printing new lines until Ctrl-C")
    .option("-n, --tail <lines>", "only the last N lines")
    .action(async (opts: { follow?: boolean; tail?: string }) => {
      await systemLogs(opts.tail === undefined ? 0 : parseCount(opts.tail), Boolean(opts.follow));
    });
  system
    .command("version")
    .description("show the versions of the CLI and the apiserver")
    .option("--format <format>", "json or table", "table")
    .action(async (opts: { format: string }) => {
      const format = parseFormat(opts.format);
      const pkg = JSON.parse(await readFile(join(repoRoot(), "package.json"), "utf8")) as { version: string };
      const pong = await ping();
      const info = {
        client: { version: pkg.version, platform: `${process.platform}/${process.arch}` },
        apiserver: pong ? { version: pong.version, pid: pong.pid, accelerator: pong.accelerator } : null,
      };
      if (format === "json") {
        process.stdout.write(renderJson(info));
        return;
      }
      const rows = [["client", info.client.version, info.client.platform]];
      rows.push(pong ? ["apiserver", pong.version, `pid ${pong.pid}, accelerator ${pong.accelerator}`] : ["apiserver", "-", "not running"]);
      process.stdout.write(renderTable(["COMPONENT", "VERSION", "DETAILS"], rows));
    });
  system
    .command("df")
    .description("show the disk space used by images, unpacked root filesystems and containers")
    .option("--format <format>", "json or table", "table")
    .action(async (opts: { format: string }) => {
      const format = parseFormat(opts.format);
      const client = connect();
      try {
        const usage = await request(client, "systemDiskUsage", {});
        if (format === "json") {
          process.stdout.write(renderJson(usage));
          return;
        }
        const names: Record<string, string> = { images: "Images", snapshots: "Unpacked rootfs", containers: "Containers" };
        const rows = usage.totals.map((t) => {
          const size = Number(t.size);
          const reclaimable = Number(t.reclaimable);
          const share = size > 0 ? ` (${Math.round((reclaimable / size) * 100)}%)` : "";
          return [names[t.type] ?? t.type, String(t.total), String(t.active), formatBytes(size), `${formatBytes(reclaimable)}${share}`];
        });
        process.stdout.write(renderTable(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows));
      } finally {
        client.close();
      }
    });
  system
    .command("property")
    .description("show the configuration: config.toml merged over the defaults")
    .command("list")
    .alias("ls")
    .description("print every setting and its value")
    .option("--format <format>", "table, json or toml", "table")
    .action(async (opts: { format: string }) => {
      const { listProperties } = await import("./property.js");
      process.stdout.write(await listProperties(opts.format));
    });
}
