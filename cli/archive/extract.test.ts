import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, link, lstat, lutimes, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ContainerError } from "../../lib/errors/index.js";
import { expectContainerRejection } from "../../lib/errors/testing.js";
import { extractTo, packPath } from "./index.js";
import { snapshot, streamOf, tarOf } from "./testing.js";

const run = promisify(execFile);

let tmp: string;
let out: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), "archive-extract-"));
  out = join(tmp, "out");
  await mkdir(out);
});
afterEach(async () => {
  await run("chmod", ["-R", "u+rwx", tmp]); // read-only directories from the trees below
  await rm(tmp, { recursive: true, force: true });
});

const T = new Date("2023-05-06T07:08:09Z");

/**
 * A tree with one of each: nested and empty and read-only directories,
 * a hard link, symlinks (one dangling), an empty file, a FIFO with mode 0
 * (a mode tar-stream would swap for its default), a file big enough to
 * stream in pieces, and an mtime past ustar's range (PAX).
 */
async function makeTree(d: string): Promise<void> {
  await mkdir(join(d, "nested", "deep"), { recursive: true });
  await mkdir(join(d, "empty"));
  await mkdir(join(d, "ro"));
  await writeFile(join(d, "ro", "inside"), "in a read-only directory");
  await writeFile(join(d, "a.txt"), "hello");
  await link(join(d, "a.txt"), join(d, "hard"));
  await symlink("a.txt", join(d, "link"));
  await symlink("/nowhere/at/all", join(d, "dangling"));
  await writeFile(join(d, "nested", "deep", "b.bin"), randomBytes(300_000));
  await writeFile(join(d, "zero"), "");
  await writeFile(join(d, "future"), "f");
  await run("mkfifo", [join(d, "pipe")]);
  const modes: [string, number][] = [
    ["a.txt", 0o640],
    ["nested/deep/b.bin", 0o755],
    ["zero", 0o400],
    ["future", 0o600],
    ["pipe", 0],
    ["ro/inside", 0o444],
  ];
  for (const [p, mode] of modes) {
    await chmod(join(d, p), mode);
    await utimes(join(d, p), T, p === "future" ? new Date("2100-01-01T00:00:00Z") : T);
  }
  for (const p of ["link", "dangling"]) await lutimes(join(d, p), T, T);
  const dirs: [string, number][] = [
    ["nested/deep", 0o755],
    ["nested", 0o750],
    ["empty", 0o700],
    ["ro", 0o555],
    [".", 0o751],
  ];
  for (const [p, mode] of dirs) {
    await chmod(join(d, p), mode);
    await utimes(join(d, p), T, T);
  }
}

const modeOf = async (p: string): Promise<number> => (await lstat(p)).mode & 0o7777;
const exists = (p: string): Promise<boolean> =>
  lstat(p).then(
    () => true,
    () => false,
  );

describe("extractTo: round trips through packPath", () => {
  it("unpacks a tree inside an existing directory, keeping types, links, modes and mtimes", async () => {
    const src = join(tmp, "src");
    await makeTree(join(src, "d"));
    await extractTo(packPath(join(src, "d")), out);
    const want = await snapshot(src);
    expect(want["d/hard"]).toMatchObject({ sameAs: "d/a.txt" });
    expect(want["d/pipe"]).toMatchObject({ type: "fifo", mode: 0 });
    expect(await snapshot(out)).toEqual(want);
  });

  it("makes a new dest the copied directory, with its contents", async () => {
    const d = join(tmp, "src", "d");
    await makeTree(d);
    await extractTo(packPath(d), join(out, "e"));
    expect(await readdir(out)).toEqual(["e"]);
    expect(await snapshot(join(out, "e"))).toEqual(await snapshot(d));
    expect(await modeOf(join(out, "e"))).toBe(0o751);
  });

  it("copies a directory's contents (dir/.) into an existing directory, which keeps its own mode", async () => {
    const d = join(tmp, "src", "d");
    await makeTree(d);
    await chmod(out, 0o700);
    await extractTo(packPath(`${d}/.`), out);
    expect(await snapshot(out)).toEqual(await snapshot(d));
    expect(await modeOf(out)).toBe(0o700);
  });

  it("copies a directory's contents (dir/.) to a new dest, which takes the directory's mode", async () => {
    const d = join(tmp, "src", "d");
    await makeTree(d);
    await extractTo(packPath(`${d}/.`), join(out, "new"));
    expect(await snapshot(join(out, "new"))).toEqual(await snapshot(d));
    expect(await modeOf(join(out, "new"))).toBe(0o751);
  });
});

describe("extractTo: where the copy lands", () => {
  it("writes a file to a new dest under dest's name", async () => {
    await writeFile(join(tmp, "a"), "A");
    await extractTo(packPath(join(tmp, "a")), join(out, "b"));
    expect(await readdir(out)).toEqual(["b"]);
    expect(await readFile(join(out, "b"), "utf8")).toBe("A");
  });

  it("replaces a file dest with a file, mode and all", async () => {
    await writeFile(join(out, "f"), "old contents");
    await chmod(join(out, "f"), 0o600);
    await extractTo(streamOf(await tarOf([{ name: "x", data: "new", mode: 0o644 }])), join(out, "f"));
    expect(await readFile(join(out, "f"), "utf8")).toBe("new");
    expect(await modeOf(join(out, "f"))).toBe(0o644);
    expect(await readdir(out)).toEqual(["f"]);
  });

  it("refuses to copy a directory onto a file", async () => {
    await writeFile(join(out, "f"), "keep");
    const tar = await tarOf([{ name: "d/", type: "directory" }, { name: "d/x", data: "x" }]);
    await expectContainerRejection(extractTo(streamOf(tar), join(out, "f")), "invalidArgument", /cannot copy a directory onto a file/);
    expect(await readFile(join(out, "f"), "utf8")).toBe("keep");
  });

  it("follows a symlink dest to the directory it names", async () => {
    await mkdir(join(tmp, "real"));
    await symlink(join(tmp, "real"), join(out, "to-real"));
    await extractTo(streamOf(await tarOf([{ name: "a", data: "A" }])), join(out, "to-real"));
    expect(await readFile(join(tmp, "real", "a"), "utf8")).toBe("A");
  });

  it("wants dest's parent to be a directory, and a dest ending in / to exist for a file", async () => {
    const tar = await tarOf([{ name: "a", data: "A" }]);
    await expectContainerRejection(extractTo(streamOf(tar), join(out, "no", "b")), "notFound", /no such directory/);
    await expectContainerRejection(extractTo(streamOf(tar), `${out}/new/`), "notFound", /no such directory/);
    await writeFile(join(out, "f"), "");
    await expectContainerRejection(extractTo(streamOf(tar), `${out}/f/`), "invalidArgument", /not a directory/);
    expect(await readdir(out)).toEqual(["f"]);
  });

  it("keeps set-id bits only for root", async () => {
    await extractTo(streamOf(await tarOf([{ name: "s", data: "#!", mode: 0o6755 }])), out);
    expect(await modeOf(join(out, "s"))).toBe(process.getuid?.() === 0 ? 0o6755 : 0o755);
  });

  it("skips device nodes", async () => {
    const tar = await tarOf([
      { name: "d/", type: "directory" },
      { name: "d/disk", type: "block-device", devmajor: 8, devminor: 0, mode: 0o666 },
      { name: "d/disk2", type: "link", linkname: "d/disk" },
      { name: "d/f", data: "f" },
    ]);
    await extractTo(streamOf(tar), out);
    expect(await readdir(join(out, "d"))).toEqual(["f"]);
  });
});

describe("extractTo: hostile archives", () => {
  let outside: string;
  beforeEach(async () => {
    outside = join(tmp, "outside");
    await mkdir(outside);
    await writeFile(join(outside, "victim"), "precious");
  });
  const untouched = async (): Promise<void> => {
    expect(await readdir(outside)).toEqual(["victim"]);
    expect(await readFile(join(outside, "victim"), "utf8")).toBe("precious");
    expect((await stat(join(outside, "victim"))).nlink).toBe(1);
  };

  it.each([
    ["../escape", /leaves the destination/],
    ["d/../../escape", /leaves the destination/],
    ["/abs", /bad name/],
  ])("rejects the name %s", async (name, message) => {
    await expectContainerRejection(extractTo(streamOf(await tarOf([{ name, data: "x" }])), out), "invalidArgument", message);
    expect(await exists(join(tmp, "escape"))).toBe(false);
    expect(await readdir(out)).toEqual([]);
  });

  it("does not write through a symlink it made", async () => {
    const tar = await tarOf([
      { name: "d/", type: "directory" },
      { name: "d/link", type: "symlink", linkname: outside },
      { name: "d/link/pwned", data: "x" },
    ]);
    await expectContainerRejection(extractTo(streamOf(tar), out), "invalidArgument", /writes through the symlink/);
    await untouched();
  });

  it("does not write through a symlink that was there", async () => {
    await symlink(outside, join(out, "link"));
    await expectContainerRejection(extractTo(streamOf(await tarOf([{ name: "link/pwned", data: "x" }])), out), "invalidArgument", /symlink/);
    await untouched();
  });

  it("replaces a symlink in the last component instead of following it", async () => {
    await symlink(join(outside, "victim"), join(out, "f"));
    await extractTo(streamOf(await tarOf([{ name: "f", data: "new" }])), out);
    expect((await lstat(join(out, "f"))).isFile()).toBe(true);
    expect(await readFile(join(out, "f"), "utf8")).toBe("new");
    await untouched();
  });

  it.each([
    ["a path out", "../outside/victim", /leaves the destination/],
    ["an absolute path", "/etc/passwd", /bad name/],
    ["a file it did not make", "d/there", /did not make/],
  ])("rejects a hard link to %s", async (_what, linkname, message) => {
    await mkdir(join(out, "d"));
    await writeFile(join(out, "d", "there"), "there");
    const tar = await tarOf([
      { name: "d/", type: "directory" },
      { name: "d/h", type: "link", linkname },
    ]);
    await expectContainerRejection(extractTo(streamOf(tar), out), "invalidArgument", message);
    expect(await readdir(join(out, "d"))).toEqual(["there"]);
    expect((await stat(join(out, "d", "there"))).nlink).toBe(1);
    await untouched();
  });

  it("makes a hard link to a symlink a copy of the link, not a link to its target", async () => {
    const tar = await tarOf([
      { name: "d/", type: "directory" },
      { name: "d/s", type: "symlink", linkname: join(outside, "victim") },
      { name: "d/h", type: "link", linkname: "d/s" },
    ]);
    await extractTo(streamOf(tar), out);
    expect(await readlink(join(out, "d", "h"))).toBe(join(outside, "victim"));
    await untouched();
  });

  it("refuses to put a file where a directory is, or a directory where a file is", async () => {
    await mkdir(join(out, "dir"));
    await writeFile(join(out, "file"), "keep");
    await expectContainerRejection(extractTo(streamOf(await tarOf([{ name: "dir", data: "x" }])), out), "invalidArgument", /cannot overwrite the directory/);
    await expectContainerRejection(
      extractTo(streamOf(await tarOf([{ name: "file/", type: "directory" }])), out),
      "invalidArgument",
      /cannot copy a directory onto a file/,
    );
    expect(await readdir(join(out, "dir"))).toEqual([]);
    expect(await readFile(join(out, "file"), "utf8")).toBe("keep");
  });

  it("wants one top-level entry when dest takes its name", async () => {
    const tar = await tarOf([
      { name: "a", data: "a" },
      { name: "b", data: "b" },
    ]);
    await expectContainerRejection(extractTo(streamOf(tar), join(out, "new")), "invalidArgument", /more than one top-level entry/);
  });

  it("stops at the byte cap before writing the entry over it", async () => {
    const tar = await tarOf([
      { name: "small", data: "s" },
      { name: "big", data: Buffer.alloc(64 * 1024) },
    ]);
    await expectContainerRejection(extractTo(streamOf(tar), out, { maxBytes: 1024 }), "resourceExhausted", /more than 1024 bytes/);
    expect(await readdir(out)).toEqual(["small"]);
  });

  it("stops at the entry cap", async () => {
    const tar = await tarOf(["a", "b", "c"].map((name) => ({ name, data: name })));
    await expectContainerRejection(extractTo(streamOf(tar), out, { maxEntries: 2 }), "resourceExhausted", /more than 2 entries/);
    expect(await readdir(out)).toEqual(["a", "b"]);
  });

  it("leaves no half-written file when the archive is cut short", async () => {
    const tar = await tarOf([{ name: "f", data: Buffer.alloc(10_000, 1) }]);
    await expectContainerRejection(extractTo(streamOf(tar.subarray(0, 512 + 4096)), out), "invalidArgument", /malformed archive: Unexpected end of data/);
    expect(await readdir(out)).toEqual([]);
  });

  it("passes on the source's own error, and leaves no half-written file", async () => {
    const tar = await tarOf([{ name: "f", data: Buffer.alloc(10_000, 1) }]);
    const source = new Readable({ read() {} });
    source.push(tar.subarray(0, 2048));
    setTimeout(() => source.destroy(new ContainerError("unavailable", "the container went away")), 20);
    await expectContainerRejection(extractTo(source, out), "unavailable", /went away/);
    expect(await readdir(out)).toEqual([]);
  });
});
