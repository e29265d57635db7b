import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isContainerError } from "../../../lib/errors/index.js";
import { createLogger } from "../../../lib/log/index.js";
import { makeTar, type TarEntry } from "../testing.js";
import { Ext4Writer, type Ext4Summary, type Ext4WriterOptions } from "./index.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;

let dir: string;
let count = 0;
let warnings: Record<string, unknown>[] = [];
const logger = createLogger({ component: "test", write: (line) => warnings.push(JSON.parse(line)) });

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "ext4-writer-test-"));
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function once(bytes: Buffer): AsyncIterable<Buffer> {
  return (async function* () {
    yield bytes;
  })();
}

/** Writes the layers into a new image, checks it with e2fsck -fn and returns its path. */
async function build(layers: (TarEntry[] | Buffer)[], options: Partial<Ext4WriterOptions> = {}): Promise<{ image: string; summary: Ext4Summary }> {
  const image = path.join(dir, `${++count}.img`);
  warnings = [];
  const writer = await Ext4Writer.create(image, { maxBytes: 1 << 30, maxInodes: 50_000, logger, ...options });
  let summary: Ext4Summary;
  try {
    for (const [i, layer] of layers.entries()) await writer.addLayer(once(Buffer.isBuffer(layer) ? layer : await makeTar(layer)), `${i + 1}`);
    summary = await writer.finish();
  } finally {
    await writer.close();
  }
  const fsck = await run("e2fsck", ["-fn", image]).catch((err: { code: number; stdout: string }) => err);
  expect("code" in fsck ? fsck.code : 0, "stdout" in fsck ? fsck.stdout : "").toBe(0);
  return { image, summary };
}

async function buildError(layers: (TarEntry[] | Buffer)[], options: Partial<Ext4WriterOptions> = {}): Promise<{ code: string; message: string }> {
  const err = await build(layers, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isContainerError(err), `expected a ContainerError, got ${String(err)}`).toBe(true);
  return err as { code: string; message: string };
}

/** Runs debugfs commands in one process; returns each one's output. */
async function debugfs(image: string, ...commands: string[]): Promise<string[]> {
  const file = path.join(dir, `${++count}.cmd`);
  await fs.writeFile(file, commands.join("\n") + "\n");
  // latin1: names come back byte for byte.
  const { stdout } = await run("debugfs", ["-f", file, image], { maxBuffer: 64 * MiB, encoding: "latin1" });
  return stdout.split(/^debugfs: .*$/m).slice(1);
}

/** A name as the byte string debugfs output holds. */
function bytes(name: string): string {
  return Buffer.from(name).toString("latin1");
}

async function debugfs1(image: string, command: string): Promise<string> {
  return (await debugfs(image, command))[0]!;
}

/** Names in a directory, from `ls -p` (/ino/mode/uid/gid/name/size/). */
async function list(image: string, dirPath: string): Promise<string[]> {
  return (await debugfs1(image, `ls -p "${dirPath}"`))
    .split("\n")
    .map((l) => l.split("/")[5])
    .filter((n): n is string => n !== undefined && n !== "" && n !== "." && n !== "..")
    .sort();
}

interface Stat {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  mtime: [number, number];
  atime: [number, number];
  ctime: [number, number];
  fastLink: string | undefined;
  device: [number, number] | undefined;
  extents: string;
}

function parseStat(text: string): Stat {
  const get = (re: RegExp): string => re.exec(text)?.[1] ?? "";
  const time = (name: string): [number, number] => {
    const m = new RegExp(`${name}: 0x([0-9a-f]+):([0-9a-f]+)`).exec(text);
    if (!m) return [NaN, NaN];
    const extra = Number.parseInt(m[2]!, 16);
    return [(Number.parseInt(m[1]!, 16) | 0) + (extra & 3) * 2 ** 32, extra >>> 2];
  };
  const device = /Device major\/minor number: (\d+):(\d+)/.exec(text);
  return {
    type: get(/Type: (.+?)\s+Mode:/),
    mode: Number.parseInt(get(/Mode:\s+(\d+)/), 8),
    uid: Number(get(/User:\s+(\d+)/)),
    gid: Number(get(/Group:\s+(\d+)/)),
    size: Number(get(/Size: (\d+)/)),
    links: Number(get(/Links: (\d+)/)),
    mtime: time(" mtime"),
    atime: time(" atime"),
    ctime: time(" ctime"),
    fastLink: /Fast link dest: "(.*)"/.exec(text)?.[1],
    device: device ? [Number(device[1]), Number(device[2])] : undefined,
    extents: get(/EXTENTS:\n(.*)/),
  };
}

async function stats(image: string, ...paths: string[]): Promise<Stat[]> {
  return (await debugfs(image, ...paths.map((p) => `stat "${p}"`))).map(parseStat);
}

/** A file's content, read back with debugfs dump. */
async function content(image: string, file: string): Promise<Buffer> {
  const out = path.join(dir, `${++count}.out`);
  await debugfs(image, `dump "${file}" ${out}`);
  const bytes = await fs.readFile(out);
  await fs.rm(out);
  return bytes;
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Deterministic bytes that no block of is zero. */
function pattern(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i + 4 <= size; i += 4) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out.writeUInt32LE((x | 1) >>> 0, i);
  }
  return out;
}

const EPOCH = 1704067200; // 2024-01-01, testing.ts's default mtime

describe("one layer", () => {
  it("keeps file types, owners, modes, link counts and device numbers", async () => {
    const longest = "/a".repeat(2047) + "b";
    const { image } = await build([
      [
        { name: "bin/", type: "directory", mode: 0o711 },
        { name: "bin/tool", data: "tool", mode: 0o4755, uid: 1000, gid: 100 },
        { name: "bin/alias", type: "link", linkname: "bin/tool" },
        { name: "bin/group", data: "g", mode: 0o2711 },
        { name: "bin/sh", type: "symlink", linkname: "tool" },
        { name: "bin/fast", type: "symlink", linkname: "f".repeat(59) },
        { name: "bin/slow", type: "symlink", linkname: "s".repeat(60) },
        { name: "bin/longest", type: "symlink", linkname: longest },
        { name: "tmp/", type: "directory", mode: 0o1777 },
        { name: "home/user/file", data: "hi", uid: 100_000, gid: 200_000, mode: 0o600 },
        { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 },
        { name: "dev/sda", type: "block-device", devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
        { name: "dev/wide", type: "character-device", devmajor: 300, devminor: 70_000, mode: 0o600 },
        { name: "run/fifo", type: "fifo", mode: 0o600 },
        { name: "empty", data: "" },
      ],
    ]);
    expect(await list(image, "/")).toEqual(["bin", "dev", "empty", "home", "lost+found", "run", "tmp"]);
    const [root, bin, tool, alias, group, sh, fast, slow, longestLink, tmp, file, nul, sda, wide, fifo, empty, lostFound] = await stats(
      image,
      "/",
      "/bin",
      "/bin/tool",
      "/bin/alias",
      "/bin/group",
      "/bin/sh",
      "/bin/fast",
      "/bin/slow",
      "/bin/longest",
      "/tmp",
      "/home/user/file",
      "/dev/null",
      "/dev/sda",
      "/dev/wide",
      "/run/fifo",
      "/empty",
      "/lost+found",
    );
    expect(root).toMatchObject({ type: "directory", mode: 0o755, uid: 0, links: 8 });
    expect(bin).toMatchObject({ type: "directory", mode: 0o711, links: 2, size: 4096, mtime: [EPOCH, 0] });
    expect(tool).toMatchObject({ type: "regular", mode: 0o4755, uid: 1000, gid: 100, size: 4, links: 2, mtime: [EPOCH, 0] });
    expect(alias).toEqual(tool);
    expect(group).toMatchObject({ mode: 0o2711, links: 1 });
    expect(sh).toMatchObject({ type: "symlink", mode: 0o777, size: 4, fastLink: "tool" });
    expect(fast).toMatchObject({ type: "symlink", size: 59, fastLink: "f".repeat(59) });
    expect(slow).toMatchObject({ type: "symlink", size: 60, fastLink: undefined });
    expect(longestLink).toMatchObject({ type: "symlink", size: 4095 });
    expect((await content(image, "/bin/slow")).toString()).toBe("s".repeat(60));
    expect((await content(image, "/bin/longest")).toString()).toBe(longest);
    expect(tmp).toMatchObject({ mode: 0o1777 });
    expect(file).toMatchObject({ uid: 100_000, gid: 200_000, mode: 0o600, size: 2 });
    expect(nul).toMatchObject({ type: "character special", mode: 0o666, device: [1, 3] });
    expect(sda).toMatchObject({ type: "block special", mode: 0o660, gid: 6, device: [8, 0] });
    expect(wide).toMatchObject({ type: "character special", device: [300, 70_000] });
    expect(fifo).toMatchObject({ type: "FIFO", mode: 0o600 });
    expect(empty).toMatchObject({ type: "regular", size: 0, links: 1 });
    expect(lostFound).toMatchObject({ type: "directory", mode: 0o700, size: 16384 });
    expect((await content(image, "/bin/tool")).toString()).toBe("tool");
  });

  it("keeps times to the nanosecond, before 1970 and after 2038", async () => {
    const { image } = await build([
      [
        { name: "plain", data: "x", mtime: new Date("2001-02-03T04:05:06Z") },
        { name: "precise", data: "x", paxRecords: { mtime: "1700000000.123456789", atime: "1700000001.5", ctime: "1700000002" } },
        { name: "old", data: "x", paxRecords: { mtime: "-86400.25" } },
        { name: "future", type: "directory", paxRecords: { mtime: "4102444800" } },
      ],
    ]);
    const [plain, precise, old, future] = await stats(image, "/plain", "/precise", "/old", "/future");
    expect(plain).toMatchObject({ mtime: [981173106, 0], atime: [981173106, 0], ctime: [981173106, 0] });
    expect(precise).toMatchObject({ mtime: [1700000000, 123456789], atime: [1700000001, 500000000], ctime: [1700000002, 0] });
    expect(old).toMatchObject({ mtime: [-86401, 750000000] });
    expect(future).toMatchObject({ type: "directory", mtime: [4102444800, 0] });
  });

  it("keeps names byte for byte: unicode, non-UTF-8, 255 bytes, deep paths", async () => {
    const deep = Array.from({ length: 300 }, (_, i) => `d${i}`).join("/");
    const long = "n".repeat(255);
    const { image } = await build([
      [
        { name: "répertoire/ファイル", data: "unicode" },
        { name: "latin1", data: "bytes", paxRecords: { path: Buffer.from([0x6c, 0x61, 0x74, 0xe9]) } },
        { name: long, data: "long" },
        { name: `${deep}/leaf`, data: "deep" },
      ],
    ]);
    expect((await content(image, "/répertoire/ファイル")).toString()).toBe("unicode");
    expect(await list(image, "/")).toEqual(["d0", "lat\xe9", "lost+found", long, bytes("répertoire")].sort());
    expect(await list(image, "/répertoire")).toEqual([bytes("ファイル")]);
    expect((await content(image, `/${long}`)).toString()).toBe("long");
    expect((await content(image, `/${deep}/leaf`)).toString()).toBe("deep");
  });

  it("keeps extended attributes: capabilities in the inode, large ones in a block, POSIX ACLs converted", async () => {
    // vfs_cap_data v2 for cap_setuid,cap_setgid+ep: bytes above 0x7f, not valid UTF-8.
    const capability = Buffer.from("01000002c0000000000000000000000000000000", "hex");
    const acl = Buffer.alloc(4 + 8 * 4);
    acl.writeUInt32LE(2, 0);
    [
      [0x01, 7, 0],
      [0x02, 5, 1000],
      [0x04, 5, 0],
      [0x20, 4, 0],
    ].forEach(([tag, perm, id], i) => {
      acl.writeUInt16LE(tag!, 4 + i * 8);
      acl.writeUInt16LE(perm!, 6 + i * 8);
      acl.writeUInt32LE(id!, 8 + i * 8);
    });
    const big = pattern(2000);
    const { image } = await build([
      [
        { name: "bin/ping", data: "ping", mode: 0o755, paxRecords: { "SCHILY.xattr.security.capability": capability } },
        { name: "data", data: "d", paxRecords: { "SCHILY.xattr.user.big": big, "SCHILY.xattr.user.small": "v", "SCHILY.xattr.trusted.t": "t" } },
        { name: "shared", type: "directory", paxRecords: { "SCHILY.xattr.system.posix_acl_access": acl, "SCHILY.xattr.system.nfs4_acl": "x" } },
        { name: "link", type: "symlink", linkname: "data", paxRecords: { "SCHILY.xattr.user.on-link": "1" } },
        { name: "redone/", type: "directory", paxRecords: { "SCHILY.xattr.user.old": "1" } },
      ],
      [{ name: "redone/", type: "directory", mode: 0o700, paxRecords: { "SCHILY.xattr.user.new": "2" } }],
    ]);
    const [ping, data, shared, link, redone] = await debugfs(image, "ea_list /bin/ping", "ea_list /data", "ea_list /shared", "ea_list /link", "ea_list /redone");
    expect(ping).toContain("security.capability (20) = 01 00 00 02 c0 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    expect(data).toContain("user.big (2000)");
    expect(data).toContain('user.small (1) = "v"');
    expect(data).toContain('trusted.t (1) = "t"');
    // ext4's ACL format: version 1, ids only on named entries.
    expect(shared).toContain("system.posix_acl_access (24) = 01 00 00 00 01 00 07 00 02 00 05 00 e8 03 00 00 04 00 05 00 20 00 04 00");
    expect(shared).not.toContain("nfs4");
    expect(warnings.map((w) => w.msg)).toContain("extended attribute skipped");
    expect(link).toContain('user.on-link (1) = "1"');
    expect(redone).toContain('user.new (1) = "2"');
    expect(redone).not.toContain("user.old");
    const bigOut = path.join(dir, "big.out");
    await debugfs(image, `ea_get -f ${bigOut} /data user.big`);
    expect((await fs.readFile(bigOut)).equals(big)).toBe(true);
    const [pingStat, dataStat] = await stats(image, "/bin/ping", "/data");
    expect(pingStat).toMatchObject({ mode: 0o755 });
    expect(/File ACL: (\d+)/.exec((await debugfs1(image, "stat /bin/ping")))?.[1]).toBe("0"); // in the inode
    expect(/File ACL: (\d+)/.exec((await debugfs1(image, "stat /data")))?.[1]).not.toBe("0"); // in a block
    expect(dataStat!.size).toBe(1);
  });

  it("holds thousands of entries in one directory", async () => {
    const names = Array.from({ length: 5000 }, (_, i) => `entry-with-a-longer-name-${String(i).padStart(5, "0")}`);
    const { image } = await build([names.map((name) => ({ name: `usr/share/many/${name}`, data: name }))]);
    expect(await list(image, "/usr/share/many")).toEqual(names);
    const [many] = await stats(image, "/usr/share/many");
    expect(many!.size).toBeGreaterThan(40 * 4096);
    for (const name of [names[0]!, names[2500]!, names[4999]!]) expect((await content(image, `/usr/share/many/${name}`)).toString()).toBe(name);
  });

  it("writes a large file across block groups, with an extent tree", async () => {
    const big = pattern(20 * MiB);
    // 1 MiB groups: the file crosses several backup superblocks, so more than the 4 extents an inode holds.
    const { image } = await build([[{ name: "big", data: big }, { name: "after", data: "after" }]], { blocksPerGroup: 256, maxBytes: 64 * MiB, maxInodes: 1000 });
    const [stat] = await stats(image, "/big");
    expect(stat!.size).toBe(20 * MiB);
    expect(stat!.extents).toMatch(/^\(ETB0\):\d+, \(0-\d+\):/);
    expect(sha256(await content(image, "/big"))).toBe(sha256(big));
    expect((await content(image, "/after")).toString()).toBe("after");
    const superblock = (await run("dumpe2fs", ["-h", image])).stdout;
    expect(Number(/Block count:\s+(\d+)/.exec(superblock)?.[1])).toBeGreaterThan(100 * 256);
  });

  it("leaves zero blocks as holes in the image file, but not where a deleted file was", async () => {
    const sparse = Buffer.alloc(8 * MiB);
    pattern(4096).copy(sparse, 3 * MiB);
    const { image } = await build([
      [{ name: "ones", data: Buffer.alloc(MiB, 0xff) }],
      // The zeros reuse the blocks "ones" leaves: they must be written.
      [{ name: ".wh.ones" }, { name: "zeros", data: Buffer.alloc(MiB) }, { name: "sparse", data: sparse }],
    ]);
    expect((await content(image, "/zeros")).equals(Buffer.alloc(MiB))).toBe(true);
    expect((await content(image, "/sparse")).equals(sparse)).toBe(true);
    const { blocks } = await fs.stat(image);
    expect(blocks * 512).toBeLessThan(4 * MiB); // not the 8 MiB of zeros
  });

  it("sizes the image from its content, with headroom", async () => {
    const { image, summary } = await build([[{ name: "data", data: pattern(4 * MiB) }, ...Array.from({ length: 100 }, (_, i) => ({ name: `f${i}`, data: "x" }))]]);
    expect(summary.contentBytes).toBe(4 * MiB + 100 * 4096);
    expect(summary.inodes).toBe(11 + 101);
    expect(summary.imageBytes % MiB).toBe(0);
    expect((await fs.stat(image)).size).toBe(summary.imageBytes);
    const superblock = (await run("dumpe2fs", ["-h", image])).stdout;
    const free = Number(/Free blocks:\s+(\d+)/.exec(superblock)?.[1]) * 4096;
    expect(free).toBeGreaterThan(64 * MiB);
    expect(Number(/Free inodes:\s+(\d+)/.exec(superblock)?.[1])).toBeGreaterThan(16384);
    expect(superblock).toMatch(/Filesystem features:\s+has_journal ext_attr dir_index filetype extent flex_bg sparse_super large_file huge_file dir_nlink extra_isize\n/);
    expect(superblock).toMatch(/Journal start:\s+0\n/);
  });
});

describe("layers", () => {
  it("applies whiteouts to lower layers only", async () => {
    const { image } = await build([
      [{ name: "a/x", data: "1" }, { name: "a/y", data: "1" }, { name: "b/", type: "directory" }, { name: "b/deep/file", data: "1" }],
      // .wh.b removes a whole directory; .wh.x names a file put back by this very layer, which is kept.
      [{ name: "a/.wh.y" }, { name: ".wh.b" }, { name: "a/x", data: "2" }, { name: "a/.wh.x" }, { name: "a/.wh..wh.plnk" }],
    ]);
    expect(await list(image, "/")).toEqual(["a", "lost+found"]);
    expect(await list(image, "/a")).toEqual(["x"]);
    expect((await content(image, "/a/x")).toString()).toBe("2");
  });

  it("applies opaque directories wherever the marker sits in the layer", async () => {
    const { image } = await build([
      [{ name: "d/old", data: "1" }, { name: "d/sub/old", data: "1" }, { name: "e/old", data: "1" }],
      [
        { name: "d/sub/new", data: "2" }, // before the marker: kept, and d/sub's lower content still goes
        { name: "d/.wh..wh..opq" },
        { name: "d/new", data: "2" },
        { name: "e/.wh..wh..opq" },
      ],
    ]);
    expect(await list(image, "/d")).toEqual(["new", "sub"]);
    expect(await list(image, "/d/sub")).toEqual(["new"]);
    expect(await list(image, "/e")).toEqual([]);
  });

  it("replaces entries of another type: directory and file, file and symlink", async () => {
    const { image } = await build([
      [{ name: "a/inner", data: "1" }, { name: "b", data: "1" }, { name: "c", data: "c" }, { name: "d", type: "symlink", linkname: "c" }],
      [
        { name: "a", data: "file now" },
        { name: "b/", type: "directory" },
        { name: "b/inner", data: "2" },
        { name: "c", type: "symlink", linkname: "a" },
        { name: "d/", type: "directory", mode: 0o750 },
      ],
    ]);
    expect(await list(image, "/")).toEqual(["a", "b", "c", "d", "lost+found"]);
    const [a, b, c, d, root] = await stats(image, "/a", "/b", "/c", "/d", "/");
    expect(a).toMatchObject({ type: "regular", size: 8 });
    expect(b).toMatchObject({ type: "directory", links: 2 });
    expect(c).toMatchObject({ type: "symlink", fastLink: "a" });
    expect(d).toMatchObject({ type: "directory", mode: 0o750 });
    expect(root).toMatchObject({ links: 5 }); // ., .., b, d, lost+found
    expect(await list(image, "/b")).toEqual(["inner"]);
  });

  it("keeps hard links across layers, with their counts, and frees blocks only with the last name", async () => {
    const original = pattern(64 * 1024, 7);
    const { image } = await build([
      [{ name: "f", data: original }, { name: "g", data: "g" }],
      [{ name: "l1", type: "link", linkname: "f" }, { name: "dir/l2", type: "link", linkname: "/f" }],
      // f goes, its content stays through l1 and dir/l2; g goes, its block is reused.
      [{ name: ".wh.f" }, { name: ".wh.g" }, { name: "new", data: pattern(64 * 1024, 9) }, { name: "h", data: "h" }],
      [{ name: "dir/.wh.l2" }],
    ]);
    expect(await list(image, "/")).toEqual(["dir", "h", "l1", "lost+found", "new"]);
    const [l1] = await stats(image, "/l1");
    expect(l1).toMatchObject({ links: 1, size: original.length });
    expect((await content(image, "/l1")).equals(original)).toBe(true);
    expect((await content(image, "/new")).equals(pattern(64 * 1024, 9))).toBe(true);
  });

  it("writes a file over a symlink instead of through it", async () => {
    const { image } = await build([[{ name: "etc/passwd", type: "symlink", linkname: "/outside/secret" }], [{ name: "etc/passwd", data: "mine" }]]);
    expect((await stats(image, "/etc/passwd"))[0]).toMatchObject({ type: "regular" });
    expect((await content(image, "/etc/passwd")).toString()).toBe("mine");
  });
});

describe("hostile layers", () => {
  it("rejects .. components", async () => {
    const err = await buildError([[{ name: "../escape", data: "x" }]]);
    expect(err.code).toBe("invalidArgument");
    expect(err.message).toContain('"../escape"');
  });

  it("rejects absolute paths that climb out", async () => {
    const err = await buildError([[{ name: "/etc/../../x", data: "x" }]]);
    expect(err.code).toBe("invalidArgument");
    expect(err.message).toContain('"/etc/../../x"');
  });

  it("reads other absolute paths as inside the tree", async () => {
    const { image } = await build([[{ name: "/etc/hostname", data: "h" }]]);
    expect(await list(image, "/etc")).toEqual(["hostname"]);
  });

  it("never writes through a symlinked parent", async () => {
    const err = await buildError([[{ name: "evil", type: "symlink", linkname: "/" }, { name: "evil/secret", data: "pwned" }]]);
    expect(err.code).toBe("invalidArgument");
    expect(err.message).toBe('layer 1: entry "evil/secret" would be written through the symlink "evil"');
  });

  it("rejects whiteouts of . and ..", async () => {
    for (const name of [".wh..", ".wh...", "a/.wh..."]) {
      const err = await buildError([[{ name: "a/keep", data: "x" }], [{ name }]]);
      expect(err.code).toBe("invalidArgument");
      expect(err.message).toContain("bad whiteout");
    }
  });

  it("does not whiteout through a symlinked parent", async () => {
    const err = await buildError([[{ name: "evil", type: "symlink", linkname: "/" }], [{ name: "evil/.wh.secret" }]]);
    expect(err.code).toBe("invalidArgument");
    expect(err.message).toContain('symlink "evil"');
  });

  it("rejects hard links out of the tree, through symlinks, to nothing or to directories", async () => {
    for (const layer of [
      [{ name: "l", type: "link" as const, linkname: "../outside/secret" }],
      [{ name: "d/f", data: "x" }, { name: "evil", type: "symlink" as const, linkname: "d" }, { name: "l", type: "link" as const, linkname: "evil/f" }],
      [{ name: "l", type: "link" as const, linkname: "/nonexistent" }],
      [{ name: "d/", type: "directory" as const }, { name: "l", type: "link" as const, linkname: "d" }],
      [{ name: "l/f", data: "x" }, { name: "l", type: "link" as const, linkname: "l/f" }],
    ]) {
      const err = await buildError([layer]);
      expect(err.code).toBe("invalidArgument");
      expect(err.message).toContain('hard link "l"');
    }
  });

  it("rejects names, symlink targets, attributes, devices and owners ext4 cannot hold", async () => {
    for (const layer of [
      [{ name: `${"n".repeat(256)}/f`, data: "x" }],
      [{ name: "s", type: "symlink" as const, linkname: "t".repeat(4096) }],
      [{ name: "x", data: "x", paxRecords: { "SCHILY.xattr.user.huge": Buffer.alloc(5000) } }],
      [{ name: "x", data: "x", paxRecords: { "SCHILY.xattr.system.posix_acl_access": "not an acl" } }],
      [{ name: "dev/x", type: "character-device" as const, devmajor: 5000, devminor: 1 }],
      [{ name: "x", data: "x", paxRecords: { uid: "5000000000" } }],
      [{ name: "lost+found", data: "not a directory" }],
    ]) {
      const err = await buildError([layer]);
      expect(err.code, err.message).toBe("invalidArgument");
    }
  });

  it("stops a decompression bomb", async () => {
    const err = await buildError([[{ name: "a", data: Buffer.alloc(4096) }, { name: "b", data: Buffer.alloc(4096) }]], { maxBytes: 6000 });
    expect(err.code).toBe("resourceExhausted");
  });

  it("stops a layer of too many files", async () => {
    const err = await buildError([Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, data: "" }))], { maxInodes: 40 });
    expect(err.code).toBe("resourceExhausted");
  });

  it("rejects a truncated layer", async () => {
    const bytes = await makeTar([{ name: "big", data: Buffer.alloc(100_000, 1) }]);
    const err = await buildError([bytes.subarray(0, 50_000)]);
    expect(err.code).toBe("invalidArgument");
    expect(err.message).toMatch(/layer 1 is corrupt/);
  });

  it("reads gzip-free tars only (the caller decompresses)", async () => {
    const err = await buildError([gzipSync(await makeTar([{ name: "x", data: "x" }]))]);
    expect(err.code).toBe("invalidArgument");
  });
});
