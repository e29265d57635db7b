// A container's logs, read from its bundle: the process's output (stdio.log,
// JSON lines `{t, s, d}` with base64 data, appended by the runtime helper and
// kept after the exit) or, for `--boot`, the VM console (boot.log) followed by
// vminitd's log. `tail` counts lines; `follow` polls the files, because the
// writer is another process and fs.watch is not reliable on every filesystem.
import { join } from "node:path";
import { readFrom, sleep } from "../../lib/fs/read.js";
import { BOOT_LOG_FILE, STDIO_LOG_FILE, VMINITD_LOG_FILE } from "../../helpers/runtime/config.js";

export interface LogChunk {
  stream: "stdout" | "stderr";
  data: Buffer;
}

export interface LogsOptions {
  bundleDir: string;
  boot: boolean;
  /** The last `tail` lines only; 0 means everything. */
  tail: number;
  /** Keep reading until `running()` turns false (then read what is left). */
  follow: boolean;
  running: () => boolean;
  signal?: AbortSignal;
  pollMs?: number;
}

/** Decodes whole stdio.log lines; returns the chunks and how many bytes were used. */
export function decodeStdioLog(bytes: Buffer): { chunks: LogChunk[]; used: number } {
  const chunks: LogChunk[] = [];
  let used = 0;
  for (;;) {
    const nl = bytes.indexOf(10, used);
    if (nl === -1) break;
    const line = bytes.subarray(used, nl).toString("utf8");
    used = nl + 1;
    try {
      const entry = JSON.parse(line) as { s?: unknown; d?: unknown };
      if ((entry.s === "stdout" || entry.s === "stderr") && typeof entry.d === "string") {
        chunks.push({ stream: entry.s, data: Buffer.from(entry.d, "base64") });
      }
    } catch {
      // A torn line (the helper died mid-write) is skipped.
    }
  }
  return { chunks, used };
}

/** The chunks holding the last `lines` lines (a chunk may hold several; pieces are split at newlines). */
export function tailLines(chunks: LogChunk[], lines: number): LogChunk[] {
  if (lines <= 0) return chunks;
  const pieces: LogChunk[] = [];
  for (const c of chunks) {
    let start = 0;
    for (;;) {
      const nl = c.data.indexOf(10, start);
      if (nl === -1) {
        if (start < c.data.length) pieces.push({ stream: c.stream, data: c.data.subarray(start) });
        break;
      }
      pieces.push({ stream: c.stream, data: c.data.subarray(start, nl + 1) });
      start = nl + 1;
    }
  }
  // Walk back over `lines` line ends; a final unterminated piece is a line too.
  let seen = 0;
  let i = pieces.length;
  while (i > 0) {
    const p = pieces[i - 1]!;
    const endsLine = p.data[p.data.length - 1] === 10 || i === pieces.length;
    if (endsLine && seen === lines) break;
    if (endsLine) seen++;
    i--;
  }
  return pieces.slice(i);
}

export async function* readLogs(options: LogsOptions): AsyncGenerator<LogChunk> {
  const pollMs = options.pollMs ?? 100;
  if (options.boot) {
    const boot = await readFrom(join(options.bundleDir, BOOT_LOG_FILE), 0);
    const agent = await readFrom(join(options.bundleDir, VMINITD_LOG_FILE), 0);
    const all = tailLines([{ stream: "stdout", data: Buffer.concat([boot, agent]) }], options.tail);
    yield* all;
    if (!options.follow) return;
    // Following the boot log means following the console.
    let offset = boot.length;
    while (!options.signal?.aborted) {
      const stillRunning = options.running();
      const more = await readFrom(join(options.bundleDir, BOOT_LOG_FILE), offset);
      offset += more.length;
      if (more.length > 0) yield { stream: "stdout", data: more };
      if (!stillRunning) return;
      await sleep(pollMs, options.signal);
    }
    return;
  }

  const path = join(options.bundleDir, STDIO_LOG_FILE);
  const first = decodeStdioLog(await readFrom(path, 0));
  yield* tailLines(first.chunks, options.tail);
  let offset = first.used;
  while (options.follow && !options.signal?.aborted) {
    // Checked before reading: output written before the container stopped is still read.
    const stillRunning = options.running();
    const next = decodeStdioLog(await readFrom(path, offset));
    offset += next.used;
    yield* next.chunks;
    if (!stillRunning) return;
    await sleep(pollMs, options.signal);
  }
}
