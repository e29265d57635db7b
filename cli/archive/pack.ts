// Host → container: a host file or tree as a tar stream (ustar, with PAX
// records where ustar falls short), named the way `docker cp` names it.
import { constants, type Stats } from "node:fs";
import { lstat, open, readdir, readlink } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";
import { ContainerError } from "../../lib/errors/index.js";
import { toContainerError } from "./errors.js";

/**
 * Whether `src` stands for a directory's contents rather than the directory
 * itself: `dir/.` and `.` (Docker's reading), and `/`, which has no name.
 */
export function copiesContents(src: string): boolean {
  return basename(src) === "." || basename(resolve(src)) === "";
}

/**
 * A tar stream of `src`. The top entry is `basename(src)`, a directory's
 * contents below `basename/`; for the contents form (see copiesContents)
 * the top entry is `./` and the contents follow with no prefix, as in
 * Docker's archives. Symlinks are archived as links, `src` itself included;
 * hard links within the tree become tar hard links; sockets are left out.
 * Owners are numeric. Failures (a missing `src` is `notFound`) surface as a
 * ContainerError on the stream.
 */
export function packPath(src: string): Readable {
  const pack = tar.pack();
  const filling = fill(pack, src).then(
    () => pack.finalize(),
    (err: unknown) => {
      pack.destroy();
      throw toContainerError(err, "internal");
    },
  );
  filling.catch(() => undefined); // surfaces through the stream below
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of pack) yield chunk as Buffer;
    } catch (err) {
      await filling; // the walk's error says more than the pack's
      throw err;
    }
    await filling;
  }
  return Readable.from(chunks(), { objectMode: false });
}

async function fill(pack: tar.Pack, src: string): Promise<void> {
  const contents = copiesContents(src);
  let st: Stats;
  try {
    st = await lstat(src);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ContainerError("notFound", `no such file or directory: ${src}`);
    if (code === "ENOTDIR") throw new ContainerError("invalidArgument", `not a directory: ${src}`);
    throw err;
  }
  if (contents && !st.isDirectory()) throw new ContainerError("invalidArgument", `not a directory: ${src}`);
  await add({ pack, links: new Map() }, src, contents ? "." : basename(resolve(src)), st);
}

interface Walk {
  pack: tar.Pack;
  /** dev:ino → the archive name it was first written under. */
  links: Map<string, string>;
}

async function add(walk: Walk, path: string, name: string, st: Stats): Promise<void> {
  const type = typeOf(st);
  if (type === undefined) return; // a socket cannot be archived
  if (type === "directory") {
    await entry(walk.pack, header(`${name}/`, type, st));
    // Bytes, not strings: a name that is not UTF-8 would otherwise come
    // back mangled and vanish from the copy without a word.
    const children = (await readdir(path, { encoding: "buffer" })).sort(Buffer.compare);
    for (const raw of children) {
      const child = raw.toString();
      const childPath = join(path, child);
      if (!Buffer.from(child).equals(raw)) throw new ContainerError("unsupported", `file name is not UTF-8: ${childPath}`);
      await add(walk, childPath, name === "." ? child : `${name}/${child}`, await lstat(childPath));
    }
    return;
  }
  if (st.nlink > 1) {
    const key = `${st.dev}:${st.ino}`;
    const first = walk.links.get(key);
    if (first !== undefined) return entry(walk.pack, header(name, "link", st, { linkname: first }));
    walk.links.set(key, name);
  }
  switch (type) {
    case "file":
      return addFile(walk.pack, path, name);
    case "symlink":
      return entry(walk.pack, header(name, type, st, { linkname: await readlink(path) }));
    case "character-device":
    case "block-device": {
      const [devmajor, devminor] = splitDevice(st.rdev);
      return entry(walk.pack, header(name, type, st, { devmajor, devminor }));
    }
    default:
      return entry(walk.pack, header(name, type, st));
  }
}

/**
 * Streams a regular file. Opened without following a symlink or blocking on
 * a FIFO (either may have replaced the file since its lstat), and archived
 * with its size at open: growth after that is cut off, shrinking fails.
 */
async function addFile(pack: tar.Pack, path: string, name: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new ContainerError("invalidState", `${path} changed while it was being copied`);
    const body = st.size > 0 ? handle.createReadStream({ start: 0, end: st.size - 1, autoClose: false }) : undefined;
    await entry(pack, header(name, "file", st, { size: st.size }), body).catch((err: unknown) => {
      throw toContainerError(err, "internal", `${path}: `);
    });
  } finally {
    await handle.close();
  }
}

/** Writes one entry; resolves once the pack has taken all of it. */
function entry(pack: tar.Pack, h: Headers, body?: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    const sink = pack.entry(h, (err) => (err ? reject(err) : resolve()));
    if (body !== undefined) pipeline(body, sink).catch(reject);
    else if (h.type === "file") sink.end(Buffer.alloc(0));
  });
}

type EntryType = tar.Header["type"];

function typeOf(st: Stats): EntryType | undefined {
  if (st.isDirectory()) return "directory";
  if (st.isFile()) return "file";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isCharacterDevice()) return "character-device";
  if (st.isBlockDevice()) return "block-device";
  return undefined;
}

/** tar-stream writes ids in 6 octal digits and seconds as an int32; larger values go in PAX records. */
const USTAR_MAX_ID = 0o777777;
const USTAR_MAX_SECONDS = 2 ** 31 - 1;

/** An entry's header; `pax` holds the records of a PAX header written before it. */
type Headers = Partial<tar.Header> & { name: string };

function header(name: string, type: EntryType, st: Stats, extra: Partial<tar.Header> = {}): Headers {
  const seconds = Math.floor(st.mtimeMs / 1000);
  const pax: Record<string, string> = {};
  if (st.uid > USTAR_MAX_ID) pax.uid = String(st.uid);
  if (st.gid > USTAR_MAX_ID) pax.gid = String(st.gid);
  if (seconds < 0 || seconds > USTAR_MAX_SECONDS) pax.mtime = String(seconds);
  return {
    name,
    type,
    // With the type bits: tar-stream swaps a zero mode for its default, and keeps only the low 12 bits.
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    mtime: new Date(Math.min(Math.max(seconds, 0), USTAR_MAX_SECONDS) * 1000),
    ...extra,
    ...(Object.keys(pax).length > 0 ? { pax } : {}),
  };
}

/** A device number's major and minor, split the way the host's libc does. */
function splitDevice(rdev: number): [number, number] {
  if (process.platform === "darwin") return [(rdev >>> 24) & 0xff, rdev & 0xffffff];
  const dev = BigInt(rdev);
  return [Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n)), Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n))];
}
