// stdout throughput: `container run --rm demo sh -c 'dd if=/dev/zero bs=1M
// count=256'` with its stdout piped to this process and counted, against the
// same dd run on the host with its stdout piped to this process the same way
// (two host processes and one pipe), interleaved. Rows from the same runs:
// over the whole wall time (ours includes the VM's cold start), streaming
// only (first byte to last byte), and the same dd by `container exec` in a
// running container (no boot, and the helper outlives the stream).
import { CLI, type TestEnv } from "../test/support/env.js";
import type { Cleanup } from "./cleanup.js";
import { result, type PairResult } from "./harness.js";
import { MiB, mbPerSecond } from "./parse.js";
import { runCounted, type Counted } from "./stream.js";

const COUNT = 256;
const DD = `dd if=/dev/zero bs=1M count=${COUNT} 2>/dev/null`;

/** Why a run did not deliver all its output, or undefined. */
export function shortfall(c: Pick<Counted, "code" | "bytes" | "stderr">, expected: number): string | undefined {
  if (c.code === 0 && c.bytes === expected) return undefined;
  const why = c.stderr.trim().split("\n")[0] ?? "";
  return `exit ${c.code} after ${(c.bytes / MiB).toFixed(0)} of ${(expected / MiB).toFixed(0)} MiB${why ? `: ${why}` : ""}`;
}

function check(what: string, c: Counted): Counted {
  const short = shortfall(c, COUNT * MiB);
  if (short) throw new Error(`${what}: ${short}`);
  return c;
}

export async function stdoutThroughput(env: TestEnv, iterations: number, cleanup: Cleanup): Promise<PairResult[]> {
  const name = "bench-throughput";
  cleanup.add(`container ${name}`, () => env.cli(["rm", "-f", name]));
  const d = await env.cli(["run", "-d", "--name", name, "demo", "sleep", "3600"]);
  if (d.code !== 0) throw new Error(`run -d failed: ${d.stderr}`);
  const ours: Counted[] = [];
  /** Every run that delivered some output, cut short or not: the streaming rate holds for what came. */
  const oursStreamed: Counted[] = [];
  const execs: Counted[] = [];
  const floor: Counted[] = [];
  // A run that loses output is counted and named in the note, not fatal: it
  // is a finding of the row (the rest of the bench still runs).
  const runFailures: string[] = [];
  const execFailures: string[] = [];
  for (let i = 0; i < iterations; i++) {
    floor.push(check("host dd", await runCounted("sh", ["-c", DD])));
    const c = await runCounted(process.execPath, [CLI, "run", "--rm", "demo", "sh", "-c", DD], { env: env.env });
    const short = shortfall(c, COUNT * MiB);
    if (short) runFailures.push(short);
    else ours.push(c);
    if (c.bytes > 0) oursStreamed.push(c);
    const e = await runCounted(process.execPath, [CLI, "exec", name, "sh", "-c", DD], { env: env.env });
    const eshort = shortfall(e, COUNT * MiB);
    if (eshort) execFailures.push(eshort);
    else execs.push(e);
  }
  const wall = (c: Counted): number => mbPerSecond(c.bytes, c.wallMs);
  const streaming = (c: Counted): number => mbPerSecond(c.bytes, c.lastByteMs - c.firstByteMs);
  const lost = (failures: string[]): string =>
    failures.length > 0 ? `; ${failures.length} of ${iterations} lost output (${failures.join("; ")})` : "";
  const note = `MB/s, higher is better${lost(runFailures)}`;
  return [
    result(
      { name: `stdout, ${COUNT} MiB from \`run --rm demo dd\` to the host, spawn to exit`, floorName: "host dd piped to this process", unit: "MB/s", note: `${note}; ours includes the VM's boot` },
      ours.map(wall),
      floor.map(wall),
    ),
    result(
      {
        name: `stdout, ${COUNT} MiB from \`run --rm demo dd\`, first to last byte`,
        floorName: "host dd piped to this process",
        unit: "MB/s",
        note: `MB/s, higher is better${runFailures.length > 0 ? `; includes the ${runFailures.length} runs cut short, up to their last byte` : ""}`,
      },
      oursStreamed.map(streaming),
      floor.map(streaming),
    ),
    result(
      { name: `stdout, ${COUNT} MiB from \`exec C dd\` (running container), spawn to exit`, floorName: "host dd piped to this process", unit: "MB/s", note: `MB/s, higher is better${lost(execFailures)}` },
      execs.map(wall),
      floor.map(wall),
    ),
  ];
}
