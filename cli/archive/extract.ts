// Container → host: unpacks a tar stream that came out of a container with
// `docker cp`'s rules. The container is untrusted, so the archive is too:
// every name stays below the destination, nothing is written through a
// symlink, hard links only join what this archive made, and size and entry
// count are capped.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, type Stats } from "node:fs";
import { chmod, link, lstat, lutimes, mkdir, readlink, realpath, rename, rm, stat, symlink, utimes } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import tar from "tar-stream";
import { ContainerError } from "../../lib/errors/index.js";
import { toContainerError } from "./errors.js";

const run = promisify(execFile);

export interface ExtractOptions {
  /** Most bytes of entry data the archive may hold; default 64 GiB. */
  maxBytes?: number;
  /** Most entries the archive may hold; default 2^20. */
  maxEntries?: number;
}

const DEFAULT_MAX_BYTES = 64 * 2 ** 30;
const DEFAULT_MAX_ENTRIES = 2 ** 20;

/**
 * Unpacks `source`, whose top entry is the copied item's base name (or `./`
 * for a directory's contents), at `dest`:
 * - `dest` is a directory: the archive lands inside it (`dest/<name>`);
 * - `dest` does not exist: its parent must be a directory (else `notFound`)
 *   and `dest` becomes the top entry, renamed (a `dest` ending in `/` must
 *   then receive a directory);
 * - `dest` is a file: a non-directory top entry replaces it; a directory is
 *   `invalidArgument`.
 * A symlink at `dest` is followed (the user named it); links inside the
 * archive never are. Modes are kept (set-id bits only for root), and mtimes;
 * owners are not (the files are the user's, as with `docker cp`). Device
 * nodes are skipped. Each non-directory is written under a temporary name
 * and renamed into place, so a failure leaves no half-written file. Rejects
 * with a ContainerError, having stopped reading `source`.
 */
export async function extractTo(source: Readable, dest: string, options: ExtractOptions = {}): Promise<void> {
  let extraction: Extraction;
  try {
    extraction = new Extraction(await placementOf(dest), options);
  } catch (err) {
    source.destroy();
    throw toContainerError(err, "internal");
  }
  const extract = tar.extract();
  const feeding = pipeline(source, extract);
  feeding.catch(() => undefined); // surfaces through the iteration below
  try {
    for await (const entry of extract) {
      await extraction.add(entry);
      entry.resume(); // whatever was not read is skipped
    }
    await feeding;
    await extraction.finish();
  } catch (err) {
    // An entry cut off by a failed read only says it was destroyed; the read's own error says why.
    const read = await feeding.then(
      () => undefined,
      (fed: unknown) => fed,
    );
    const own = err instanceof ContainerError || typeof (err as NodeJS.ErrnoException).errno === "number";
    throw toContainerError(own ? err : (read ?? err), "invalidArgument", "malformed archive: ");
  }
}

/** Where the archive goes: inside `root` (`into`), or as `root` itself. */
interface Placement {
  root: string;
  into: boolean;
  /** `dest` ends in `/`: what lands as `root` must be a directory. */
  wantsDirectory: boolean;
}

async function placementOf(dest: string): Promise<Placement> {
  const wantsDirectory = /\/\.?$/.test(dest);
  try {
    const st = await stat(dest);
    return { root: await realpath(dest), into: st.isDirectory(), wantsDirectory };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOTDIR") throw new ContainerError("invalidArgument", `not a directory: ${dest}`);
    if (code !== "ENOENT") throw err;
  }
  const absolute = resolve(dest);
  const parent = dirname(absolute);
  const st = await stat(parent).catch(() => undefined);
  if (!st?.isDirectory()) throw new ContainerError("notFound", `no such directory: ${parent}`);
  return { root: join(await realpath(parent), basename(absolute)), into: false, wantsDirectory };
}

/** An entry of tar-stream's extract: its header and a stream of its data. */
type Entry = tar.Extract extends AsyncIterable<infer E> ? E : never;

class Extraction {
  private readonly maxBytes: number;
  private readonly maxEntries: number;
  private readonly asRoot = process.getuid?.() === 0;
  private entries = 0;
  private bytes = 0;
  /** The archive's top-level name, once seen; "" for a contents archive. */
  private top: string | undefined;
  /** Real directories (lstat-checked or made here): safe to create in. */
  private readonly directories: Set<string>;
  /** Non-directories this archive made, the only things a hard link may join; skipped ones are "skipped". */
  private readonly made = new Map<string, "made" | "skipped">();
  /** Directory modes and times, applied last: adding entries changes a directory's mtime, and its mode may forbid adding them. */
  private readonly pending: { path: string; mode: number; mtime: number }[] = [];

  constructor(
    private readonly placement: Placement,
    options: ExtractOptions,
  ) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.directories = new Set([placement.into ? placement.root : dirname(placement.root)]);
  }

  async add(entry: Entry): Promise<void> {
    const h = entry.header;
    if (++this.entries > this.maxEntries) {
      throw new ContainerError("resourceExhausted", `the archive holds more than ${this.maxEntries} entries`);
    }
    // tar-stream reads no data for a directory, whatever its size says.
    this.bytes += h.type === "directory" ? 0 : h.size;
    if (this.bytes > this.maxBytes) {
      throw new ContainerError("resourceExhausted", `the archive holds more than ${this.maxBytes} bytes`);
    }
    const path = this.pathOf(h.name);
    await this.parentsOf(path);
    const mode = h.mode & (this.asRoot ? 0o7777 : 0o1777);
    // A PAX mtime keeps what the ustar field cannot: fractions of a second, times out of its range.
    const paxMtime = Number.parseFloat((h.pax as Record<string, string> | null)?.mtime ?? "");
    const mtime = Number.isFinite(paxMtime) ? paxMtime : h.mtime.getTime() / 1000;
    switch (h.type) {
      case "directory":
        return this.directory(path, mode, mtime);
      case "file":
      case "contiguous-file":
        return this.put(path, async (tmp) => {
          // Through an iterator: Node's pipeline never settles on a tar-stream entry destroyed before it started.
          await pipeline(Readable.from(entry, { objectMode: false }), createWriteStream(tmp, { flags: "wx", mode: 0o600 }));
          await chmod(tmp, mode);
          await utimes(tmp, mtime, mtime);
        });
      case "symlink": {
        const target = h.linkname ?? ""; // null, despite its type, when the header has none
        if (target.includes("\0")) throw new ContainerError("invalidArgument", `bad symlink target in the archive: ${h.name}`);
        return this.put(path, async (tmp) => {
          await symlink(target, tmp);
          await lutimes(tmp, mtime, mtime);
        });
      }
      case "link":
        return this.hardLink(path, h.linkname ?? "");
      case "fifo":
        return this.put(path, async (tmp) => {
          await run("mkfifo", ["-m", "600", tmp]); // Node has no mkfifo
          await chmod(tmp, mode);
          await utimes(tmp, mtime, mtime);
        });
      case "character-device":
      case "block-device":
        // Never made: a node the container names (the host's disk, mode
        // 0666, say) would open the host to it; nor can the user make one.
        this.made.set(path, "skipped");
        return;
      default:
        throw new ContainerError("unsupported", `unsupported entry type in the archive: ${h.name}`);
    }
  }

  /** Directory modes and times, deepest first so a locked parent does not stop its children's. */
  async finish(): Promise<void> {
    for (const { path, mode, mtime } of this.pending.reverse()) {
      await chmod(path, mode);
      await utimes(path, mtime, mtime);
    }
  }

  /** The host path for an archive name, which must stay below the destination. */
  private pathOf(name: string): string {
    if (name.startsWith("/") || name.includes("\0")) throw new ContainerError("invalidArgument", `bad name in the archive: ${name}`);
    const parts = name.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.includes("..")) throw new ContainerError("invalidArgument", `name in the archive leaves the destination: ${name}`);
    if (this.placement.into) return join(this.placement.root, ...parts);
    // `root` takes the top entry's place: "./" (a contents archive) or the one top-level name.
    this.top ??= parts[0] ?? "";
    if (this.top === "") return join(this.placement.root, ...parts);
    if (parts[0] !== this.top) throw new ContainerError("invalidArgument", `the archive has more than one top-level entry: ${name}`);
    return join(this.placement.root, ...parts.slice(1));
  }

  /**
   * Makes sure every directory from the destination down to `path`'s parent
   * is a real directory, making missing ones: a symlink among them (say one
   * the archive just made) is an error, never a way out.
   */
  private async parentsOf(path: string): Promise<void> {
    const dir = dirname(path);
    // root's parent is known (a new root) or does not matter (root is known).
    if (path === this.placement.root || this.directories.has(dir)) return;
    await this.parentsOf(dir);
    const st = await lstatIfAny(dir);
    if (st === undefined) await mkdir(dir, 0o755);
    else if (st.isSymbolicLink()) throw new ContainerError("invalidArgument", `the archive writes through the symlink ${dir}`);
    else if (!st.isDirectory()) throw new ContainerError("invalidArgument", `not a directory: ${dir}`);
    this.directories.add(dir);
  }

  private async directory(path: string, mode: number, mtime: number): Promise<void> {
    if (this.placement.into && path === this.placement.root) return; // the "./" of a contents archive: dest keeps its own (Docker)
    const st = await lstatIfAny(path);
    // Owner-only until finish: the real mode may forbid adding the entries below.
    if (st === undefined) await mkdir(path, 0o700);
    else if (!st.isDirectory()) throw new ContainerError("invalidArgument", `cannot copy a directory onto a file: ${path}`);
    // A known directory is never replaced below (no non-directory may take a directory's place), so the check holds.
    this.directories.add(path);
    this.pending.push({ path, mode, mtime });
  }

  /**
   * Makes a non-directory at `path`: `make` creates it under a fresh name
   * beside it (exclusively: nothing there is followed), then a rename puts it
   * in place, replacing (never following) whatever non-directory was there.
   */
  private async put(path: string, make: (tmp: string) => Promise<void>): Promise<void> {
    if (!this.placement.into && path === this.placement.root && this.placement.wantsDirectory) throw new ContainerError("notFound", `no such directory: ${path}`);
    if ((await lstatIfAny(path))?.isDirectory()) {
      throw new ContainerError("invalidArgument", `cannot overwrite the directory ${path} with a non-directory`);
    }
    const tmp = join(dirname(path), `.container-cp-${randomBytes(8).toString("hex")}`);
    try {
      await make(tmp);
      await rename(tmp, path);
      this.made.set(path, "made");
    } finally {
      // After a failure; and rename(2) between two names of one inode does nothing.
      await rm(tmp, { force: true });
    }
  }

  private async hardLink(path: string, linkname: string): Promise<void> {
    const from = this.pathOf(linkname);
    const made = this.made.get(from);
    if (made === undefined) throw new ContainerError("invalidArgument", `hard link to something the archive did not make: ${linkname}`);
    if (made === "skipped") {
      this.made.set(path, "skipped");
      return;
    }
    return this.put(path, async (tmp) => {
      // A hard link to a symlink becomes a copy of it: link(2) follows symlinks on some systems.
      const st = await lstat(from);
      if (st.isSymbolicLink()) await symlink(await readlink(from), tmp);
      else await link(from, tmp);
    });
  }
}

async function lstatIfAny(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
