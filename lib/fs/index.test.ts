import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeFileAtomic, writeJsonAtomic } from "./index.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "fs-test-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const modeOf = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;

describe("writeFileAtomic", () => {
  it("writes a new file with mode 0600", async () => {
    const p = join(dir, "a.txt");
    await writeFileAtomic(p, "hello");
    expect(await readFile(p, "utf8")).toBe("hello");
    expect(await modeOf(p)).toBe(0o600);
    expect(await readdir(dir)).toEqual(["a.txt"]);
  });

  it("writes bytes", async () => {
    const p = join(dir, "b.bin");
    await writeFileAtomic(p, new Uint8Array([0, 1, 2, 255]));
    expect([...(await readFile(p))]).toEqual([0, 1, 2, 255]);
  });

  it("replaces an existing file, taking the new mode, leaving no temp files", async () => {
    const p = join(dir, "c.txt");
    await writeFile(p, "old contents that are longer", { mode: 0o644 });
    expect(await modeOf(p)).toBe(0o644);
    await writeFileAtomic(p, "new");
    expect(await readFile(p, "utf8")).toBe("new");
    expect(await modeOf(p)).toBe(0o600);
    await writeFileAtomic(p, "newer");
    expect(await readFile(p, "utf8")).toBe("newer");
    expect(await readdir(dir)).toEqual(["c.txt"]);
  });

  it("handles concurrent writers to the same path without leftovers", async () => {
    const p = join(dir, "d.txt");
    const values = Array.from({ length: 10 }, (_, i) => `value-${i}`);
    await Promise.all(values.map((v) => writeFileAtomic(p, v)));
    expect(values).toContain(await readFile(p, "utf8"));
    expect(await readdir(dir)).toEqual(["d.txt"]);
  });

  it("fails and leaves nothing behind when the directory is missing", async () => {
    await expect(writeFileAtomic(join(dir, "missing", "x"), "x")).rejects.toThrow();
    expect(await readdir(dir)).toEqual([]);
  });

  it("fails when the target is a directory, removing its temp file", async () => {
    const p = join(dir, "sub");
    await writeFile(join(dir, "keep"), "k");
    await mkdir(p);
    await expect(writeFileAtomic(p, "x")).rejects.toThrow();
    expect((await readdir(dir)).sort()).toEqual(["keep", "sub"]);
  });
});

describe("writeJsonAtomic", () => {
  it("writes pretty JSON with a trailing newline", async () => {
    const p = join(dir, "j.json");
    await writeJsonAtomic(p, { a: 1, b: [true] });
    const text = await readFile(p, "utf8");
    expect(text).toBe('{\n  "a": 1,\n  "b": [\n    true\n  ]\n}\n');
    expect(await modeOf(p)).toBe(0o600);
  });
});
