import { mkdtemp, rm, writeFile, appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeStdioLog, readLogs, tailLines, type LogChunk } from "./logs.js";

const out = (s: string): LogChunk => ({ stream: "stdout", data: Buffer.from(s) });
const err = (s: string): LogChunk => ({ stream: "stderr", data: Buffer.from(s) });
const text = (chunks: LogChunk[]): string[] => chunks.map((c) => `${c.stream}:${c.data.toString()}`);
const entry = (s: "stdout" | "stderr", d: string): string => JSON.stringify({ t: 1, s, d: Buffer.from(d).toString("base64") }) + "\n";

describe("tailLines", () => {
  it("keeps everything for 0", () => {
    expect(text(tailLines([out("a\nb\n")], 0))).toEqual(["stdout:a\nb\n"]);
  });

  it("counts lines across chunks and streams", () => {
    const chunks = [out("one\ntwo\n"), err("three\n"), out("four\n")];
    expect(text(tailLines(chunks, 2))).toEqual(["stderr:three\n", "stdout:four\n"]);
    expect(text(tailLines(chunks, 3))).toEqual(["stdout:two\n", "stderr:three\n", "stdout:four\n"]);
    expect(text(tailLines(chunks, 10))).toEqual(["stdout:one\n", "stdout:two\n", "stderr:three\n", "stdout:four\n"]);
  });

  it("keeps a line split over chunks whole, and counts a final partial line", () => {
    expect(text(tailLines([out("a\nb"), out("c\n"), out("d")], 2))).toEqual(["stdout:b", "stdout:c\n", "stdout:d"]);
  });
});

describe("decodeStdioLog", () => {
  it("decodes whole lines, skips torn ones, and leaves a partial line for later", () => {
    const bytes = Buffer.from(entry("stdout", "hi") + "{torn\n" + entry("stderr", "oops") + '{"t":1,"s":"std');
    const { chunks, used } = decodeStdioLog(bytes);
    expect(text(chunks)).toEqual(["stdout:hi", "stderr:oops"]);
    expect(bytes.subarray(used).toString()).toBe('{"t":1,"s":"std');
  });
});

describe("readLogs", () => {
  it("follows the file until the container stops, then reads what is left", async () => {
    const dir = await mkdtemp(join(tmpdir(), "logs-"));
    await writeFile(join(dir, "stdio.log"), entry("stdout", "first\n"));
    let running = true;
    const seen: string[] = [];
    const reading = (async () => {
      for await (const c of readLogs({ bundleDir: dir, boot: false, tail: 0, follow: true, running: () => running, pollMs: 10 })) {
        seen.push(c.data.toString());
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    await appendFile(join(dir, "stdio.log"), entry("stdout", "second\n"));
    running = false;
    await reading;
    expect(seen).toEqual(["first\n", "second\n"]);
    await rm(dir, { recursive: true });
  });
});
