// Applies layer tars, in order, onto a private staging directory: the
// OCI changeset rules (whiteouts `.wh.<name>`, opaque dirs `.wh..wh..opq`),
// with owners, modes and times. Runs as root (lchown).
//
// The tree is hostile input. Entries with `..` components are rejected, a
// leading `/` is read as the tree's root, no write ever goes through a symlink
// in the tree (every parent is lstat-ed; a symlink parent is an error, where
// containerd would resolve it inside the root), new files are created with
// O_EXCL so a symlink in the final component is never followed, and hard links
// must point at an existing non-directory inside the tree.
//
// Device nodes and FIFOs: Node has no mknod(2), so they are made with
// mknod(1); where the host refuses (no CAP_MKNOD) they are skipped with a
// warning. Extended attributes (PAX SCHILY.xattr.*) are not applied yet.
import { execFile } from "node:child_process";
import { createWriteStream, type Stats } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import tar from "tar-stream";
import { ContainerError } from "../../../lib/errors/index.js";
import type { Logger } from "../../../lib/log/index.js";

const run = promisify(execFile);

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
/** Other `.wh..wh.` names are aufs bookkeeping, not part of the image. */
const AUFS_META = ".wh..wh.";

export interface ApplyOptions {
  /** Cap on the bytes of file content written over all layers (decompression bombs). */
  maxBytes: number;
  logger: Logger;
}

type Entry = AsyncIterable<unknown> & { header: tar.Header; resume(): unknown };

function invalid(message: string): ContainerError {
  return new ContainerError("invalidArgument", message);
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Errors while applying, as ContainerErrors: a bad tar or gzip stream is the layer's fault, a failed syscall is ours. */
function layerError(err: unknown, layer: string): ContainerError {
  if (err instanceof ContainerError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.syscall !== undefined) {
    if (e.code === "ENOSPC") return new ContainerError("resourceExhausted", `no space left while unpacking layer ${layer}`, { cause: err });
    return new ContainerError("internal", `unpacking layer ${layer}: ${e.message}`, { cause: err });
  }
  return invalid(`layer ${layer} is corrupt: ${e.message}`);
}

export class LayerApplier {
  private readonly root: string;
  private readonly options: ApplyOptions;
  private written = 0;
  /** Directory mtimes, set at the end since adding children changes them. */
  private readonly dirTimes = new Map<string, Date>();
  /** Paths known to be real directories; cleared whenever anything is removed. */
  private readonly dirs = new Set<string>();

  constructor(root: string, options: ApplyOptions) {
    this.root = root;
    this.options = options;
  }

  private abs(rel: string): string {
    return rel === "" ? this.root : path.join(this.root, rel);
  }

  /** Applies one layer tar (uncompressed). `layer` names it in errors. */
  async apply(source: AsyncIterable<Buffer>, layer: string): Promise<void> {
    const extract = tar.extract();
    const feeding = pipeline(source, extract);
    feeding.catch(() => undefined); // surfaces through the iteration below
    // Paths this layer puts in place, with their ancestors: whiteouts and
    // opaque markers only hide what lower layers put there.
    const present = new Set<string>();
    try {
      for await (const entry of extract) await this.entry(entry, layer, present);
      await feeding;
    } catch (err) {
      throw layerError(err, layer);
    }
  }

  private async entry(entry: Entry, layer: string, present: Set<string>): Promise<void> {
    const h = entry.header;
    const parts = h.name.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.includes("..")) throw invalid(`layer ${layer}: entry "${h.name}" has a ".." component`);
    const rel = parts.join("/");
    const base = parts.at(-1) ?? "";
    const parent = parts.slice(0, -1).join("/");

    if (rel === "") {
      if (h.type === "directory") await this.setMeta("", h);
      entry.resume();
      return;
    }
    await this.ensureDir(parent, h.name, layer, present);

    if (base === OPAQUE) {
      await this.removeLower(parent, present);
    } else if (base.startsWith(AUFS_META)) {
      // ignored
    } else if (base.startsWith(WHITEOUT)) {
      const victim = base.slice(WHITEOUT.length);
      if (victim === "" || victim === "." || victim === "..") throw invalid(`layer ${layer}: bad whiteout "${h.name}"`);
      const target = parent === "" ? victim : `${parent}/${victim}`;
      if (!present.has(target)) await this.remove(target);
    } else {
      present.add(rel);
      await this.create(entry, rel, layer);
    }
    entry.resume();
  }

  /** Makes `rel` and its parents real directories, creating missing ones. */
  private async ensureDir(rel: string, name: string, layer: string, present: Set<string>): Promise<void> {
    let cur = "";
    for (const part of rel === "" ? [] : rel.split("/")) {
      cur = cur === "" ? part : `${cur}/${part}`;
      present.add(cur);
      if (this.dirs.has(cur)) continue;
      const st = await lstatOrNull(this.abs(cur));
      if (st === null) {
        await fs.mkdir(this.abs(cur));
        await fs.chmod(this.abs(cur), 0o755);
      } else if (st.isSymbolicLink()) {
        throw invalid(`layer ${layer}: entry "${name}" would be written through the symlink "${cur}"`);
      } else if (!st.isDirectory()) {
        throw invalid(`layer ${layer}: entry "${name}" is below "${cur}", which is not a directory`);
      }
      this.dirs.add(cur);
    }
  }

  /** Whether every component of `rel` is a real directory (no symlinks). */
  private async isRealDir(rel: string): Promise<boolean> {
    let cur = "";
    for (const part of rel === "" ? [] : rel.split("/")) {
      cur = cur === "" ? part : `${cur}/${part}`;
      if (this.dirs.has(cur)) continue;
      const st = await lstatOrNull(this.abs(cur));
      if (!st?.isDirectory()) return false;
    }
    return true;
  }

  private async remove(rel: string): Promise<void> {
    await fs.rm(this.abs(rel), { recursive: true, force: true });
    this.dirs.clear();
  }

  /** Opaque directory: removes what lower layers put below `dir`, keeping this layer's entries. */
  private async removeLower(dir: string, present: Set<string>): Promise<void> {
    for (const child of await fs.readdir(this.abs(dir), { withFileTypes: true })) {
      const rel = dir === "" ? child.name : `${dir}/${child.name}`;
      if (!present.has(rel)) await this.remove(rel);
      else if (child.isDirectory()) await this.removeLower(rel, present);
    }
  }

  private async create(entry: Entry, rel: string, layer: string): Promise<void> {
    const h = entry.header;
    const target = this.abs(rel);
    const existing = await lstatOrNull(target);
    if (h.type === "directory") {
      if (existing && !existing.isDirectory()) await fs.unlink(target);
      if (!existing?.isDirectory()) await fs.mkdir(target);
      this.dirs.add(rel);
      await this.setMeta(rel, h);
      return;
    }
    if (existing?.isDirectory()) await this.remove(rel);
    else if (existing) await fs.unlink(target);

    switch (h.type) {
      case "file":
      case "contiguous-file": {
        this.written += h.size;
        if (this.written > this.options.maxBytes) {
          throw new ContainerError("resourceExhausted", `layer ${layer}: image unpacks to more than ${this.options.maxBytes} bytes`, {
            hint: "raise the image store's unpack limit if the image is genuine",
          });
        }
        // wx: O_CREAT|O_EXCL, which never follows a symlink.
        await pipeline(entry, createWriteStream(target, { flags: "wx", mode: 0o600 }));
        break;
      }
      case "symlink":
        await fs.symlink(h.linkname, target);
        break;
      case "link": {
        const linkParts = h.linkname.split("/").filter((p) => p !== "" && p !== ".");
        if (linkParts.includes("..") || linkParts.length === 0) {
          throw invalid(`layer ${layer}: hard link "${h.name}" points outside the tree ("${h.linkname}")`);
        }
        const linkRel = linkParts.join("/");
        const st = (await this.isRealDir(linkParts.slice(0, -1).join("/"))) ? await lstatOrNull(this.abs(linkRel)) : null;
        if (st === null || st.isDirectory()) {
          throw invalid(`layer ${layer}: hard link "${h.name}" points to "${h.linkname}", which is not a file in the tree`);
        }
        await fs.link(this.abs(linkRel), target);
        return; // the link shares its target's inode and metadata
      }
      case "character-device":
      case "block-device":
      case "fifo": {
        const kind = h.type === "fifo" ? ["p"] : [h.type === "block-device" ? "b" : "c", String(h.devmajor), String(h.devminor)];
        try {
          await run("mknod", ["-m", (h.mode & 0o7777).toString(8), target, ...kind]);
        } catch (err) {
          this.options.logger.warn("device node skipped", { layer, entry: h.name, error: err });
          return;
        }
        break;
      }
      default:
        this.options.logger.warn("tar entry of unknown type skipped", { layer, entry: h.name, type: h.type });
        return;
    }
    await this.setMeta(rel, h);
  }

  private async setMeta(rel: string, h: tar.Header): Promise<void> {
    const target = this.abs(rel);
    // chown before chmod: chown clears set-id bits.
    await fs.lchown(target, h.uid, h.gid);
    if (h.type !== "symlink") await fs.chmod(target, h.mode & 0o7777);
    if (h.type === "directory") this.dirTimes.set(rel, h.mtime);
    else await fs.lutimes(target, h.mtime, h.mtime);
  }

  /** Sets directory times, once every layer is applied. */
  async finish(): Promise<void> {
    this.dirs.clear();
    for (const [rel, mtime] of this.dirTimes) {
      // A later layer may have removed the directory or put a symlink above it.
      if (await this.isRealDir(rel)) await fs.lutimes(this.abs(rel), mtime, mtime);
    }
  }
}
