// Builds an ext4 image straight from OCI layer tars, in one pass and without
// privileges: no mount, no staging directory on the host. Written here because
// no maintained JavaScript library writes ext4, and `mkfs.ext4 -d` needs the
// tree staged on the host first (impossible with ownership, device nodes and
// case-sensitive names on macOS, and slow: see the numbers).
//
// As each layer streams in, its changes edit an in-memory tree (tree.ts) and
// each regular file's content goes to blocks the allocator hands out
// (allocator.ts), written as it arrives. A file a later layer deletes or
// replaces gives its blocks back once no hard link holds it. finish() writes
// the rest (metadata.ts): inode tables, directories, bitmaps, descriptors,
// superblocks and an empty journal, sized from what the layers held.
//
// The image is a sparse file; e2fsck -fn passes on it. Features: has_journal,
// ext_attr, dir_index (for directories the guest creates; ours are linear),
// filetype, extents, flex_bg, sparse_super, large_file, huge_file, dir_nlink,
// extra_isize; 4 KiB blocks, 256-byte inodes, no checksums, no 64bit.
import { randomBytes } from "node:crypto";
import { ContainerError } from "../../../lib/errors/index.js";
import type { Logger } from "../../../lib/log/index.js";
import { BlockAllocator } from "./allocator.js";
import { BlockFile } from "./blockfile.js";
import { readLayer, type LayerEntry } from "./layer.js";
import { BLOCK_SIZE, encodeInlineXattrs, encodeXattrBlock, toXattr, type Timestamp, type Xattr } from "./layout.js";
import { descriptorReserve, writeMetadata } from "./metadata.js";
import { ENTRY_TYPES, Tree, shown, type Meta, type TreeEntryType } from "./tree.js";

export interface Ext4WriterOptions {
  /** Cap on the bytes of file content over all layers (decompression bombs). */
  maxBytes: number;
  /** Cap on the inodes alive at once, which the writer holds in memory; default 4,194,304. */
  maxInodes?: number;
  logger: Logger;
  /** Blocks per group, a multiple of 256 up to 32768 (the default). Small groups let tests cover multi-group layouts cheaply. */
  blocksPerGroup?: number;
}

export interface Ext4Summary {
  /** Bytes of file content, as allocated (whole blocks). */
  contentBytes: number;
  /** Inodes in use, the reserved ones included. */
  inodes: number;
  /** The image's size. */
  imageBytes: number;
}

const DEFAULT_MAX_INODES = 4 * 1024 * 1024;
const LIMIT_HINT = "raise the image store's unpack limit if the image is genuine";
const ENTRY_TYPE_SET: ReadonlySet<string> = new Set(ENTRY_TYPES);

export class Ext4Writer {
  private readonly tree: Tree;
  private written = 0;
  private finished = false;

  private constructor(
    private readonly file: BlockFile,
    private readonly allocator: BlockAllocator,
    private readonly options: Required<Ext4WriterOptions>,
    private readonly reserved: number,
    private readonly now: Timestamp,
  ) {
    this.tree = new Tree(now, (node) => allocator.free(node.runs));
  }

  /** Starts an image at `path`, which must not exist. */
  static async create(path: string, options: Ext4WriterOptions): Promise<Ext4Writer> {
    const o: Required<Ext4WriterOptions> = { maxInodes: DEFAULT_MAX_INODES, blocksPerGroup: 32768, ...options };
    if (o.blocksPerGroup % 256 !== 0 || o.blocksPerGroup < 256 || o.blocksPerGroup > 32768) {
      throw new RangeError(`blocksPerGroup ${o.blocksPerGroup} is not a multiple of 256 up to 32768`);
    }
    const reserved = descriptorReserve(o);
    if (reserved * 2 > o.blocksPerGroup) throw new RangeError(`groups of ${o.blocksPerGroup} blocks are too small for these limits`);
    const ms = Date.now();
    const now = { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1e6 };
    return new Ext4Writer(await BlockFile.create(path), new BlockAllocator(o.blocksPerGroup, reserved), o, reserved, now);
  }

  /** Applies one layer (an uncompressed tar) over the ones before. `layer` names it in errors. */
  async addLayer(source: AsyncIterable<Buffer>, layer: string): Promise<void> {
    this.tree.beginLayer();
    try {
      for await (const entry of readLayer(source)) await this.apply(entry, layer);
    } catch (err) {
      throw layerError(err, layer);
    }
  }

  /** Writes the metadata and closes the image. */
  async finish(): Promise<Ext4Summary> {
    const contentBlocks = this.allocator.used;
    try {
      const written = await writeMetadata(this.file, this.tree, this.allocator, {
        blocksPerGroup: this.options.blocksPerGroup,
        reserved: this.reserved,
        uuid: randomBytes(16),
        hashSeed: randomBytes(16),
        now: this.now,
      });
      await this.file.finish(written.blocks);
      this.finished = true;
      return { contentBytes: contentBlocks * BLOCK_SIZE, inodes: written.inodes, imageBytes: written.blocks * BLOCK_SIZE };
    } catch (err) {
      throw err instanceof ContainerError ? err : ioError(err, "writing the ext4 metadata");
    }
  }

  /** Releases the file after a failure; a no-op once finished. */
  async close(): Promise<void> {
    if (!this.finished) await this.file.close();
  }

  private async apply(entry: LayerEntry, layer: string): Promise<void> {
    const type = entry.type;
    if (type === undefined || !ENTRY_TYPE_SET.has(type)) {
      this.options.logger.warn("tar entry of unknown type skipped", { layer, entry: shown(entry.name), type });
      return;
    }
    const file = this.tree.apply(
      { name: entry.name, type: type as TreeEntryType, meta: this.meta(entry, layer), size: entry.size, linkname: entry.linkname, devmajor: entry.devmajor, devminor: entry.devminor },
      layer,
    );
    if (this.tree.inodes > this.options.maxInodes) {
      throw new ContainerError("resourceExhausted", `layer ${layer}: image has more than ${this.options.maxInodes} files`, { hint: LIMIT_HINT });
    }
    if (file === undefined || entry.size === 0) return;
    this.written += entry.size;
    if (this.written > this.options.maxBytes) {
      throw new ContainerError("resourceExhausted", `layer ${layer}: image unpacks to more than ${this.options.maxBytes} bytes`, { hint: LIMIT_HINT });
    }
    const { runs, fresh } = this.allocator.allocate(Math.ceil(entry.size / BLOCK_SIZE));
    file.runs = runs;
    await this.file.writeRuns(entry.body, runs, fresh);
  }

  private meta(entry: LayerEntry, layer: string): Meta {
    const xattrs: Xattr[] = [];
    for (const [name, value] of entry.xattrs) {
      let xattr: Xattr | undefined;
      try {
        xattr = toXattr(name, value);
      } catch (err) {
        throw new ContainerError("invalidArgument", `layer ${layer}: entry "${shown(entry.name)}": ${(err as Error).message} in ${shown(name)}`);
      }
      if (xattr === undefined) this.options.logger.warn("extended attribute skipped", { layer, entry: shown(entry.name), name: shown(name) });
      else xattrs.push(xattr);
    }
    if (xattrs.length > 0 && encodeInlineXattrs(xattrs) === undefined && encodeXattrBlock(xattrs) === undefined) {
      throw new ContainerError("invalidArgument", `layer ${layer}: the extended attributes of "${shown(entry.name)}" do not fit in one ${BLOCK_SIZE}-byte block`);
    }
    if (!isId(entry.uid) || !isId(entry.gid)) throw new ContainerError("invalidArgument", `layer ${layer}: entry "${shown(entry.name)}" has an impossible owner ${entry.uid}:${entry.gid}`);
    return { mode: entry.mode, uid: entry.uid, gid: entry.gid, atime: entry.atime, mtime: entry.mtime, ctime: entry.ctime, xattrs };
  }
}

/** A uid or gid ext4 can store: 32 bits. */
function isId(id: number): boolean {
  return Number.isInteger(id) && id >= 0 && id <= 0xffffffff;
}

/** Errors while reading a layer, as ContainerErrors: a bad tar stream is the layer's fault, a failed syscall is ours. */
function layerError(err: unknown, layer: string): ContainerError {
  if (err instanceof ContainerError) return err;
  if ((err as NodeJS.ErrnoException).syscall !== undefined) return ioError(err, `unpacking layer ${layer}`);
  return new ContainerError("invalidArgument", `layer ${layer} is corrupt: ${(err as Error).message}`, { cause: err });
}

function ioError(err: unknown, doing: string): ContainerError {
  if ((err as NodeJS.ErrnoException).code === "ENOSPC") return new ContainerError("resourceExhausted", `no space left ${doing}`, { cause: err });
  return new ContainerError("internal", `${doing}: ${(err as Error).message}`, { cause: err });
}
