// An isolated `container` installation for end-to-end tests: its own data and
// runtime dirs (short paths: unix sockets have a 108-byte limit), its own
// apiserver, and a leak check that no process or file of it outlives it.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { apiserverPidPath, repoRoot } from "../../lib/paths/index.js";
import { readPid } from "../../lib/process/index.js";

export const ROOT = repoRoot();
export const CLI = join(ROOT, "bin", "container");
export const DEMO_ARCHIVE = join(ROOT, "build", "demo", "demo-docker.tar");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestEnv {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Runs the CLI to completion. */
  cli(args: string[], options?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  /** Starts the CLI and hands back the child for signal tests. */
  spawnCli(args: string[]): ReturnType<typeof spawn>;
  /** Processes (pid + command line) that mention this installation's dirs, run in them, or serve its runtime dir. */
  processes(): string[];
  /** The pid in the apiserver's pid file. */
  apiserverPid(): Promise<number>;
  /** Stops the apiserver and asserts nothing is left running; removes the dirs. */
  close(): Promise<void>;
}

/** Polls `check` every 100 ms until it holds; throws after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether the process runs in `dir` or below (the vsock backend names no path of ours but its cwd). */
function cwdIn(pid: number, dir: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/cwd`).startsWith(`${dir}/`);
  } catch {
    return false;
  }
}

/** Whether the process has `runDir` as its CONTAINER_RUNTIME_DIR (the apiserver names no path of ours and runs in the caller's cwd). */
function servesRunDir(pid: number, runDir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`CONTAINER_RUNTIME_DIR=${runDir}`);
  } catch {
    return false;
  }
}

/** A spawned CLI's output and status, once it has ended. */
export function outputOf(child: ChildProcess): Promise<RunResult> {
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export function requireAssets(): void {
  for (const p of [CLI, join(ROOT, "dist", "cli", "main.js"), DEMO_ARCHIVE]) {
    if (!existsSync(p)) throw new Error(`${p} is missing: run the README set-up (npm run setup) first`);
  }
}

/** `config`: the text of the installation's config.toml; none gives the built-in defaults. */
export async function createTestEnv(options: { start?: boolean; loadDemo?: boolean; config?: string } = {}): Promise<TestEnv> {
  requireAssets();
  const dir = await mkdtemp("/tmp/ct-");
  if (options.config !== undefined) await writeFile(join(dir, "config.toml"), options.config);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CONTAINER_DATA_DIR: join(dir, "data"),
    CONTAINER_RUNTIME_DIR: join(dir, "run"),
    // The built-in defaults unless the test gives a config, whatever the developer's own config.toml says.
    CONTAINER_CONFIG: options.config === undefined ? "/dev/null" : join(dir, "config.toml"),
    // A daemon of the test's own, never a systemd unit or launchd agent.
    CONTAINER_SERVICE: "detached",
  };
  const cli: TestEnv["cli"] = async (args, opts = {}) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? 120_000);
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
    const r = await outputOf(child);
    clearTimeout(timer);
    if (timedOut) throw new Error(`container ${args.join(" ")} timed out\n${r.stderr}`);
    return r;
  };
  const processes = (): string[] => {
    const out = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
    return out
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => {
        const pid = Number(l.split(/\s+/)[0]);
        return l && !l.includes(" ps -eo") && (l.includes(dir) || cwdIn(pid, dir) || servesRunDir(pid, env.CONTAINER_RUNTIME_DIR!));
      });
  };
  const te: TestEnv = {
    dir,
    env,
    cli,
    spawnCli: (args) => spawn(process.execPath, [CLI, ...args], { env, stdio: ["pipe", "pipe", "pipe"] }),
    processes,
    async apiserverPid() {
      const pid = await readPid(apiserverPidPath(env));
      if (pid === undefined) throw new Error("the apiserver has no pid file");
      return pid;
    },
    async close() {
      await cli(["system", "stop"]);
      const deadline = Date.now() + 10_000;
      while (processes().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const left = processes();
      if (left.length > 0) {
        for (const line of left) process.kill(Number(line.split(/\s+/)[0]), "SIGKILL");
        throw new Error(`processes left behind:\n${left.join("\n")}`);
      }
      const runLeft = existsSync(join(dir, "run", "c")) ? await readdir(join(dir, "run", "c")) : [];
      await rm(dir, { recursive: true, force: true });
      if (runLeft.length > 0) throw new Error(`runtime files left behind: ${runLeft.join(", ")}`);
    },
  };
  if (options.start ?? true) {
    const r = await cli(["system", "start"]);
    if (r.code !== 0) throw new Error(`system start failed: ${r.stderr}`);
    if (options.loadDemo ?? true) {
      const l = await cli(["image", "load", "-i", DEMO_ARCHIVE]);
      if (l.code !== 0) throw new Error(`image load failed: ${l.stderr}`);
    }
  }
  return te;
}
