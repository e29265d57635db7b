// Test fixtures for cli/archive: hand-made tars, archive listings and
// snapshots of trees on disk. Used by the *.test.ts files only.
import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";

export interface TarEntry {
  name: string;
  type?: tar.Header["type"];
  data?: string | Buffer;
  linkname?: string;
  mode?: number;
  mtime?: Date;
  devmajor?: number;
  devminor?: number;
}

const EPOCH = new Date("2024-01-01T00:00:00Z");

/** A tar of `entries`, as written (no checks: hostile archives are the point). */
export async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? "file";
    await new Promise<void>((resolve, reject) => {
      const header = {
        name: e.name,
        type,
        mode: e.mode ?? (type === "directory" ? 0o755 : 0o644),
        mtime: e.mtime ?? EPOCH,
        linkname: e.linkname ?? "",
        devmajor: e.devmajor ?? 0,
        devminor: e.devminor ?? 0,
      };
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (type === "file") pack.entry(header, Buffer.from(e.data ?? ""), done);
      else pack.entry(header, done);
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** A tar as a stream, in odd-sized chunks so headers arrive split. */
export function streamOf(archive: Buffer, chunkSize = 700): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < archive.length; i += chunkSize) yield archive.subarray(i, i + chunkSize);
    })(),
    { objectMode: false },
  );
}

export interface Listed {
  name: string;
  type: string;
  linkname: string;
  mode: number;
  mtime: number;
  data: string;
  devmajor: number;
  devminor: number;
}

/** The entries of a tar stream, data as UTF-8, mode without type bits, mtime in seconds. */
export async function list(archive: Readable): Promise<Listed[]> {
  const extract = tar.extract();
  const feeding = pipeline(archive, extract);
  feeding.catch(() => undefined); // surfaces through the iteration below
  const out: Listed[] = [];
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    const h = entry.header;
    out.push({
      name: h.name,
      type: h.type,
      linkname: h.linkname ?? "",
      mode: h.mode & 0o7777,
      mtime: h.mtime.getTime() / 1000,
      data: Buffer.concat(chunks).toString(),
      devmajor: h.devmajor,
      devminor: h.devminor,
    });
  }
  await feeding;
  return out;
}

export interface Node {
  type: "file" | "directory" | "symlink" | "fifo" | "other";
  mode: number;
  mtime: number;
  /** sha256 of a file's data; a symlink's target. */
  content?: string;
  /** For hard links: the first path (in sorted order) of the same inode. */
  sameAs?: string;
}

/** Every path below `root` (relative, sorted) with what `cp` keeps of it; mtime in whole seconds. */
export async function snapshot(root: string): Promise<Record<string, Node>> {
  const out: Record<string, Node> = {};
  const inodes = new Map<number, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const path = join(root, rel, name);
      const key = rel === "" ? name : `${rel}/${name}`;
      const st = await lstat(path);
      const type = st.isFile() ? "file" : st.isDirectory() ? "directory" : st.isSymbolicLink() ? "symlink" : st.isFIFO() ? "fifo" : "other";
      const node: Node = { type, mode: type === "symlink" ? 0 : st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000) };
      if (type === "file") node.content = createHash("sha256").update(await readFile(path)).digest("hex");
      if (type === "symlink") node.content = await readlink(path);
      if (type !== "directory" && st.nlink > 1) {
        const first = inodes.get(st.ino);
        if (first === undefined) inodes.set(st.ino, key);
        else node.sameAs = first;
      }
      out[key] = node;
      if (type === "directory") await walk(key);
    }
  };
  await walk("");
  return out;
}
