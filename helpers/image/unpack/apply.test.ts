import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { createLogger } from "../../../lib/log/index.js";
import { makeTar, type TarEntry } from "../testing.js";
import { LayerApplier } from "./apply.js";

let dir: string;
let tree: string;
let outside: string;
const logger = createLogger({ component: "test", write: () => undefined });

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "apply-test-"));
  tree = path.join(dir, "tree");
  outside = path.join(dir, "outside");
  await fs.mkdir(tree);
  await fs.mkdir(outside);
  await fs.writeFile(path.join(outside, "secret"), "secret");
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function applyLayers(layers: TarEntry[][], maxBytes = 1 << 30): Promise<void> {
  const applier = new LayerApplier(tree, { maxBytes, logger });
  for (const [i, entries] of layers.entries()) {
    const bytes = await makeTar(entries);
    await applier.apply((async function* () { yield bytes; })(), `${i + 1}`);
  }
  await applier.finish();
}

async function applyError(layers: TarEntry[][], maxBytes?: number): Promise<{ code: string; message: string }> {
  const err = await applyLayers(layers, maxBytes).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isContainerError(err), `expected a ContainerError, got ${String(err)}`).toBe(true);
  return err as { code: string; message: string };
}

async function listTree(rel = ""): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(path.join(tree, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(e.isDirectory() ? `${p}/` : p);
    if (e.isDirectory()) out.push(...(await listTree(p)));
  }
  return out.sort();
}

describe("changesets", () => {
  it("applies whiteouts to lower layers only", async () => {
    await applyLayers([
      [{ name: "a/x", data: "1" }, { name: "a/y", data: "1" }, { name: "b/", type: "directory" }, { name: "b/deep/file", data: "1" }],
      // .wh.b removes a whole directory; .wh.x names a file put back by this very layer, which is kept.
      [{ name: "a/.wh.y" }, { name: ".wh.b" }, { name: "a/x", data: "2" }, { name: "a/.wh.x" }],
    ]);
    expect(await listTree()).toEqual(["a/", "a/x"]);
    expect(await fs.readFile(path.join(tree, "a/x"), "utf8")).toBe("2");
  });

  it("applies opaque directories wherever the marker sits in the layer", async () => {
    await applyLayers([
      [{ name: "d/old", data: "1" }, { name: "d/sub/old", data: "1" }, { name: "e/old", data: "1" }],
      [
        { name: "d/sub/new", data: "2" }, // before the marker: kept, and d/sub's lower content still goes
        { name: "d/.wh..wh..opq" },
        { name: "d/new", data: "2" },
        { name: "e/.wh..wh..opq" },
      ],
    ]);
    expect(await listTree()).toEqual(["d/", "d/new", "d/sub/", "d/sub/new", "e/"]);
  });

  it("keeps owners, modes, times, links and special files", async () => {
    const mtime = new Date("2020-02-02T02:02:02Z");
    await applyLayers([
      [
        { name: "bin/", type: "directory", mode: 0o711, mtime },
        { name: "bin/tool", data: "t", mode: 0o4755, uid: 1000, gid: 100, mtime },
        { name: "bin/alias", type: "link", linkname: "bin/tool" },
        { name: "bin/sym", type: "symlink", linkname: "tool", uid: 5, gid: 6 },
        { name: "tmp/", type: "directory", mode: 0o1777 },
        { name: "run/fifo", type: "fifo", mode: 0o600 },
      ],
    ]);
    const tool = await fs.stat(path.join(tree, "bin/tool"));
    expect(tool.mode & 0o7777).toBe(0o4755);
    expect([tool.uid, tool.gid, tool.nlink]).toEqual([1000, 100, 2]);
    expect(tool.mtime.getTime()).toBe(mtime.getTime());
    expect((await fs.stat(path.join(tree, "bin"))).mtime.getTime()).toBe(mtime.getTime());
    expect((await fs.stat(path.join(tree, "bin"))).mode & 0o7777).toBe(0o711);
    const sym = await fs.lstat(path.join(tree, "bin/sym"));
    expect([sym.isSymbolicLink(), sym.uid, sym.gid]).toEqual([true, 5, 6]);
    expect((await fs.stat(path.join(tree, "tmp"))).mode & 0o7777).toBe(0o1777);
    expect((await fs.lstat(path.join(tree, "run/fifo"))).isFIFO()).toBe(true);
  });

  it("replaces a symlink instead of writing through it", async () => {
    await applyLayers([
      [{ name: "etc/passwd", type: "symlink", linkname: path.join(outside, "secret") }],
      [{ name: "etc/passwd", data: "mine" }],
    ]);
    expect(await fs.readFile(path.join(outside, "secret"), "utf8")).toBe("secret");
    expect(await fs.readFile(path.join(tree, "etc/passwd"), "utf8")).toBe("mine");
  });

  it("replaces directories with files and files with directories", async () => {
    await applyLayers([
      [{ name: "a/inner", data: "1" }, { name: "b", data: "1" }],
      [{ name: "a", data: "file now" }, { name: "b/", type: "directory" }, { name: "b/inner", data: "2" }],
    ]);
    expect(await listTree()).toEqual(["a", "b/", "b/inner"]);
  });

  it("reads gzip-free tars only (the caller decompresses)", async () => {
    const bytes = gzipSync(await makeTar([{ name: "x", data: "x" }]));
    const applier = new LayerApplier(tree, { maxBytes: 1 << 30, logger });
    const err = await applier.apply((async function* () { yield bytes; })(), "1").catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe("invalidArgument");
  });
});

describe("hostile layers", () => {
  it("rejects .. components", async () => {
    const err = await applyError([[{ name: "../escape", data: "x" }]]);
    expect(err.code).toBe("invalidArgument");
    expect(err.message).toContain('"../escape"');
    expect(existsSync(path.join(dir, "escape"))).toBe(false);
  });

  it("rejects absolute paths that climb out", async () => {
    const err = await applyError([[{ name: "/etc/../../x", data: "x" }]]);
    expect(err.code).toBe("invalidArgument");
    expect(err.message).toContain('"/etc/../../x"');
  });

  it("reads other absolute paths as inside the tree", async () => {
    await applyLayers([[{ name: "/etc/hostname", data: "h" }]]);
    expect(await listTree()).toEqual(["etc/", "etc/hostname"]);
  });

  it("never writes through a symlinked parent", async () => {
    const err = await applyError([[{ name: "evil", type: "symlink", linkname: outside }, { name: "evil/secret", data: "pwned" }]]);
    expect(err.code).toBe("invalidArgument");
    expect(err.message).toContain('"evil/secret"');
    expect(await fs.readFile(path.join(outside, "secret"), "utf8")).toBe("secret");
  });

  it("rejects whiteouts of . and ..", async () => {
    for (const name of [".wh..", ".wh...", "a/.wh..."]) {
      const err = await applyError([[{ name: "a/keep", data: "x" }], [{ name }]]);
      expect(err.code).toBe("invalidArgument");
      expect(err.message).toContain("bad whiteout");
    }
    expect(existsSync(path.join(outside, "secret"))).toBe(true);
  });

  it("does not whiteout through a symlinked parent", async () => {
    const err = await applyError([[{ name: "evil", type: "symlink", linkname: outside }], [{ name: "evil/.wh.secret" }]]);
    expect(err.code).toBe("invalidArgument");
    expect(existsSync(path.join(outside, "secret"))).toBe(true);
  });

  it("rejects hard links out of the tree or through symlinks", async () => {
    for (const layer of [
      [{ name: "l", type: "link" as const, linkname: "../outside/secret" }],
      [{ name: "evil", type: "symlink" as const, linkname: outside }, { name: "l", type: "link" as const, linkname: "evil/secret" }],
      [{ name: "l", type: "link" as const, linkname: "/nonexistent" }],
      [{ name: "d/", type: "directory" as const }, { name: "l", type: "link" as const, linkname: "d" }],
    ]) {
      await fs.rm(tree, { recursive: true, force: true });
      await fs.mkdir(tree);
      const err = await applyError([layer]);
      expect(err.code).toBe("invalidArgument");
      expect(err.message).toContain('hard link "l"');
    }
    expect((await fs.stat(path.join(outside, "secret"))).nlink).toBe(1);
  });

  it("sets directory times without following symlinks put in their place later", async () => {
    const before = (await fs.stat(outside)).mtime.getTime();
    await applyLayers([
      [{ name: "a/", type: "directory", mtime: new Date(0) }, { name: "a/b/", type: "directory", mtime: new Date(0) }],
      [{ name: ".wh.a" }, { name: "a", type: "symlink", linkname: outside }],
    ]);
    expect((await fs.stat(outside)).mtime.getTime()).toBe(before);
  });

  it("stops a decompression bomb", async () => {
    const err = await applyError([[{ name: "a", data: Buffer.alloc(4096) }, { name: "b", data: Buffer.alloc(4096) }]], 6000);
    expect(err.code).toBe("resourceExhausted");
  });

  it("rejects a truncated layer", async () => {
    const bytes = await makeTar([{ name: "big", data: Buffer.alloc(100_000, 1) }]);
    const applier = new LayerApplier(tree, { maxBytes: 1 << 30, logger });
    const err = await applier.apply((async function* () { yield bytes.subarray(0, 50_000); })(), "1").catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe("invalidArgument");
    expect((err as Error).message).toMatch(/layer 1 is corrupt/);
  });
});
