// Runs a command with its stdout piped to this process and counted, never
// kept: bytes, wall time, and when the first and last bytes came.
import { spawn } from "node:child_process";

export interface Counted {
  code: number;
  bytes: number;
  /** Spawn to exit. */
  wallMs: number;
  /** Spawn to the first stdout byte, and to the last (NaN without output). */
  firstByteMs: number;
  lastByteMs: number;
  stderr: string;
}

export function runCounted(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Counted> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let bytes = 0;
    let firstByteMs = NaN;
    let lastByteMs = NaN;
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      const now = performance.now() - t0;
      if (bytes === 0) firstByteMs = now;
      lastByteMs = now;
      bytes += d.length;
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")} timed out\n${stderr}`));
    }, options.timeoutMs ?? 300_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, bytes, wallMs: performance.now() - t0, firstByteMs, lastByteMs, stderr });
    });
  });
}
