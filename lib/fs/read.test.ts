import { mkdtemp, appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readFrom, sleep } from "./read.js";

describe("readFrom", () => {
  it("reads from an offset to the end; a missing file is empty", async () => {
    const path = join(await mkdtemp(join(tmpdir(), "read-")), "log");
    expect((await readFrom(path, 0)).length).toBe(0);
    await appendFile(path, "one\ntwo\n");
    expect((await readFrom(path, 4)).toString()).toBe("two\n");
    expect((await readFrom(path, 8)).length).toBe(0);
  });
});

describe("sleep", () => {
  it("ends at once on abort, and leaves no listener behind after many waits", async () => {
    const stop = new AbortController();
    let added = 0;
    let removed = 0;
    const signal = stop.signal;
    const realAdd = signal.addEventListener.bind(signal);
    const realRemove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((...args: Parameters<AbortSignal["addEventListener"]>) => {
      added++;
      realAdd(...args);
    }) as AbortSignal["addEventListener"];
    signal.removeEventListener = ((...args: Parameters<AbortSignal["removeEventListener"]>) => {
      removed++;
      realRemove(...args);
    }) as AbortSignal["removeEventListener"];
    for (let i = 0; i < 20; i++) await sleep(1, signal);
    expect(added).toBe(20);
    expect(removed).toBe(20);
    const started = Date.now();
    const long = sleep(60_000, signal);
    stop.abort();
    await long;
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
