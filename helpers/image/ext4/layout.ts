// The ext4 on-disk structures this writer produces, as encoders: superblock,
// group descriptors, inodes, extent tree nodes, linear directory blocks,
// extended attributes and the jbd2 journal superblock. Pure functions over
// Buffers; nothing here allocates blocks or touches the image file.
//
// The format is the one the kernel documents ("ext4 Data Structures and
// Algorithms", Documentation/filesystems/ext4): 4 KiB blocks, 256-byte inodes
// with 32 bytes of extra fields, 32-byte group descriptors (no 64bit), no
// checksums (no metadata_csum, no gdt_csum).
import { ContainerError } from "../../../lib/errors/index.js";

export const BLOCK_SIZE = 4096;
export const INODE_SIZE = 256;
export const INODES_PER_BLOCK = BLOCK_SIZE / INODE_SIZE;
/** i_extra_isize: covers the *_extra times, crtime, i_version_hi and i_projid. */
export const EXTRA_ISIZE = 32;
export const GROUP_DESC_SIZE = 32;
export const DESCS_PER_BLOCK = BLOCK_SIZE / GROUP_DESC_SIZE;
/** The longest initialized extent. */
export const MAX_EXTENT_BLOCKS = 32768;
/** Targets shorter than this live in i_block ("fast" symlinks). */
export const FAST_SYMLINK_MAX = 59;
export const MAX_NAME_BYTES = 255;
/** Above this a directory's link count is 1 ("many"), as dir_nlink allows. */
export const MAX_DIR_LINKS = 65000;

export const ROOT_INO = 2;
export const JOURNAL_INO = 8;
export const FIRST_INO = 11;

const COMPAT = { hasJournal: 0x4, extAttr: 0x8, dirIndex: 0x20 };
const INCOMPAT = { filetype: 0x2, extents: 0x40, flexBg: 0x200 };
const RO_COMPAT = { sparseSuper: 0x1, largeFile: 0x2, hugeFile: 0x8, dirNlink: 0x20, extraIsize: 0x40 };

export const S_IF = { fifo: 0o010000, char: 0o020000, dir: 0o040000, block: 0o060000, file: 0o100000, symlink: 0o120000 };
/** Directory entry file types (the filetype feature). */
export const FT = { file: 1, dir: 2, char: 3, block: 4, fifo: 5, symlink: 7 };
export const EXTENTS_FL = 0x80000;

/** Seconds since the epoch and nanoseconds. */
export interface Timestamp {
  sec: number;
  nsec: number;
}

/** The ext4 time range: 32 signed bits of seconds plus 2 epoch bits. */
const MIN_SEC = -(2 ** 31);
const MAX_SEC = 3 * 2 ** 32 + 2 ** 31 - 1;

/** [seconds field, extra field]: low 32 bits, then epoch bits 0-1 and nanoseconds << 2. */
export function encodeTime(t: Timestamp): [number, number] {
  const sec = Math.min(MAX_SEC, Math.max(MIN_SEC, Math.floor(t.sec)));
  const low = ((sec % 2 ** 32) + 2 ** 32) % 2 ** 32;
  const signedLow = low >= 2 ** 31 ? low - 2 ** 32 : low;
  const epoch = (sec - signedLow) / 2 ** 32;
  return [low, epoch + Math.min(999_999_999, Math.max(0, Math.floor(t.nsec))) * 4];
}

export interface InodeFields {
  /** File type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  /** Blocks in use, data and metadata, in 4 KiB blocks. */
  blocks: number;
  flags: number;
  /** The 60-byte i_block: extent root, fast symlink target or device number. */
  block: Buffer;
  atime: Timestamp;
  ctime: Timestamp;
  mtime: Timestamp;
  crtime: Timestamp;
  /** Block of the extended attribute block, or 0. */
  xattrBlock: number;
  /** In-inode extended attributes (encodeInlineXattrs), or undefined. */
  inlineXattrs?: Buffer | undefined;
}

/** Writes one 256-byte inode at `offset` of `out`, which must be zero there. */
export function encodeInode(f: InodeFields, out: Buffer, offset: number): void {
  const o = offset;
  const sectors = f.blocks * (BLOCK_SIZE / 512);
  out.writeUInt16LE(f.mode, o);
  out.writeUInt16LE(f.uid & 0xffff, o + 0x2);
  out.writeUInt32LE(f.size % 2 ** 32, o + 0x4);
  const [atime, atimeExtra] = encodeTime(f.atime);
  const [ctime, ctimeExtra] = encodeTime(f.ctime);
  const [mtime, mtimeExtra] = encodeTime(f.mtime);
  const [crtime, crtimeExtra] = encodeTime(f.crtime);
  out.writeUInt32LE(atime, o + 0x8);
  out.writeUInt32LE(ctime, o + 0xc);
  out.writeUInt32LE(mtime, o + 0x10);
  out.writeUInt16LE(f.gid & 0xffff, o + 0x18);
  out.writeUInt16LE(f.links, o + 0x1a);
  out.writeUInt32LE(sectors % 2 ** 32, o + 0x1c);
  out.writeUInt32LE(f.flags, o + 0x20);
  f.block.copy(out, o + 0x28, 0, 60);
  out.writeUInt32LE(f.xattrBlock, o + 0x68);
  out.writeUInt32LE(Math.floor(f.size / 2 ** 32), o + 0x6c);
  out.writeUInt16LE(Math.floor(sectors / 2 ** 32), o + 0x74);
  out.writeUInt16LE(f.uid >>> 16, o + 0x78);
  out.writeUInt16LE(f.gid >>> 16, o + 0x7a);
  out.writeUInt16LE(EXTRA_ISIZE, o + 0x80);
  out.writeUInt32LE(ctimeExtra, o + 0x84);
  out.writeUInt32LE(mtimeExtra, o + 0x88);
  out.writeUInt32LE(atimeExtra, o + 0x8c);
  out.writeUInt32LE(crtime, o + 0x90);
  out.writeUInt32LE(crtimeExtra, o + 0x94);
  f.inlineXattrs?.copy(out, o + 0x80 + EXTRA_ISIZE);
}

/** i_block of a device node: the old 16-bit encoding when it fits, else the new one in the second word. */
export function encodeDevice(major: number, minor: number): Buffer {
  const block = Buffer.alloc(60);
  if (major < 256 && minor < 256) {
    block.writeUInt32LE((major << 8) | minor, 0);
  } else {
    block.writeUInt32LE(((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0, 4);
  }
  return block;
}

// Extents.

/** A run of physical blocks, mapped at `logical` within the file. */
export interface Extent {
  logical: number;
  start: number;
  length: number;
}

const EXTENT_MAGIC = 0xf30a;
/** Entries in the root node, inside i_block. */
const EXTENTS_IN_INODE = 4;
/** Entries in a tree block: (4096 - 12-byte header) / 12. */
const EXTENTS_PER_BLOCK = Math.floor((BLOCK_SIZE - 12) / 12);

/** An extent tree node: leaf entries at depth 0, index entries above. */
interface ExtentNode {
  depth: number;
  /** Leaves: extents. Index nodes: [first logical block, child block]. */
  entries: Extent[] | [number, number][];
}

/** Encodes a node into `out` (60 bytes for the root in i_block, a whole block otherwise). */
function encodeExtentNode(node: ExtentNode, out: Buffer): void {
  const max = out.length === 60 ? EXTENTS_IN_INODE : EXTENTS_PER_BLOCK;
  out.writeUInt16LE(EXTENT_MAGIC, 0);
  out.writeUInt16LE(node.entries.length, 2);
  out.writeUInt16LE(max, 4);
  out.writeUInt16LE(node.depth, 6);
  node.entries.forEach((entry, i) => {
    const o = 12 + i * 12;
    if (Array.isArray(entry)) {
      out.writeUInt32LE(entry[0], o);
      out.writeUInt32LE(entry[1] % 2 ** 32, o + 4);
      out.writeUInt16LE(Math.floor(entry[1] / 2 ** 32), o + 8);
    } else {
      out.writeUInt32LE(entry.logical, o);
      out.writeUInt16LE(entry.length, o + 4);
      out.writeUInt16LE(Math.floor(entry.start / 2 ** 32), o + 6);
      out.writeUInt32LE(entry.start % 2 ** 32, o + 8);
    }
  });
}

/** Blocks an extent tree over `extents` needs outside the inode. */
export function extentTreeBlocks(extents: number): number {
  let blocks = 0;
  for (let level = extents; level > EXTENTS_IN_INODE; level = Math.ceil(level / EXTENTS_PER_BLOCK)) {
    blocks += Math.ceil(level / EXTENTS_PER_BLOCK);
  }
  return blocks;
}

/**
 * Builds the extent tree over `extents` (sorted, logical order): the root for
 * i_block and the tree blocks, placed at `blocks` (extentTreeBlocks() of them).
 */
export function buildExtentTree(extents: Extent[], blocks: number[]): { root: Buffer; nodes: { block: number; data: Buffer }[] } {
  const nodes: { block: number; data: Buffer }[] = [];
  let level: ExtentNode["entries"] = extents;
  let depth = 0;
  let next = 0;
  while (level.length > EXTENTS_IN_INODE) {
    const parents: [number, number][] = [];
    for (let i = 0; i < level.length; i += EXTENTS_PER_BLOCK) {
      const entries = level.slice(i, i + EXTENTS_PER_BLOCK) as ExtentNode["entries"];
      const block = blocks[next++]!;
      const data = Buffer.alloc(BLOCK_SIZE);
      encodeExtentNode({ depth, entries }, data);
      nodes.push({ block, data });
      const first = entries[0]!;
      parents.push([Array.isArray(first) ? first[0] : first.logical, block]);
    }
    level = parents;
    depth++;
  }
  const root = Buffer.alloc(60);
  encodeExtentNode({ depth, entries: level }, root);
  return { root, nodes };
}

// Directories.

export interface DirEntry {
  ino: number;
  /** The name's bytes. */
  name: Buffer;
  type: number;
}

function recordLength(nameBytes: number): number {
  return (8 + nameBytes + 3) & ~3;
}

/**
 * How many entries go in each block of a linear directory whose entry names
 * have these lengths (`.` and `..` included). Entries never span blocks.
 */
export function packDirectory(nameLengths: Iterable<number>): number[] {
  const perBlock: number[] = [];
  let used = BLOCK_SIZE;
  for (const length of nameLengths) {
    const size = recordLength(length);
    if (used + size > BLOCK_SIZE) {
      perBlock.push(0);
      used = 0;
    }
    used += size;
    perBlock[perBlock.length - 1]!++;
  }
  return perBlock;
}

/** The blocks of a linear directory, `blocks` of them at least (empty blocks after the entries). */
export function encodeDirectory(entries: DirEntry[], blocks: number): Buffer {
  const perBlock = packDirectory(entries.map((e) => e.name.length));
  const out = Buffer.alloc(Math.max(blocks, perBlock.length) * BLOCK_SIZE);
  let next = 0;
  perBlock.forEach((count, b) => {
    let o = b * BLOCK_SIZE;
    const end = o + BLOCK_SIZE;
    for (let i = 0; i < count; i++) {
      const e = entries[next++]!;
      const length = i === count - 1 ? end - o : recordLength(e.name.length);
      out.writeUInt32LE(e.ino, o);
      out.writeUInt16LE(length, o + 4);
      out.writeUInt8(e.name.length, o + 6);
      out.writeUInt8(e.type, o + 7);
      e.name.copy(out, o + 8);
      o += length;
    }
  });
  // Unused blocks hold one empty entry spanning the block.
  for (let b = perBlock.length; b < blocks; b++) out.writeUInt16LE(BLOCK_SIZE, b * BLOCK_SIZE + 4);
  return out;
}

// Extended attributes.

export interface Xattr {
  /** Name index: the prefix, as a number (1 user., 2/3 POSIX ACLs, 4 trusted., 6 security.). */
  index: number;
  /** The name without its prefix. */
  name: Buffer;
  value: Buffer;
}

const XATTR_MAGIC = 0xea020000;
const XATTR_PREFIXES: [string, number][] = [
  ["user.", 1],
  ["trusted.", 4],
  ["security.", 6],
];
const ACL_ACCESS = "system.posix_acl_access";
const ACL_DEFAULT = "system.posix_acl_default";

function invalid(message: string): ContainerError {
  return new ContainerError("invalidArgument", message);
}

/**
 * The on-disk form of an attribute named `name` (bytes as a latin1 string), or
 * undefined for namespaces ext4 cannot store (other system.* names). POSIX
 * ACLs are converted from the xattr format to ext4's own.
 */
export function toXattr(name: string, value: Buffer): Xattr | undefined {
  if (name === ACL_ACCESS || name === ACL_DEFAULT) {
    return { index: name === ACL_ACCESS ? 2 : 3, name: Buffer.alloc(0), value: toExt4Acl(value) };
  }
  for (const [prefix, index] of XATTR_PREFIXES) {
    if (name.startsWith(prefix) && name.length > prefix.length) return { index, name: Buffer.from(name.slice(prefix.length), "latin1"), value };
  }
  return undefined;
}

const ACL = { userObj: 0x1, user: 0x2, groupObj: 0x4, group: 0x8, mask: 0x10, other: 0x20 };

/** posix_acl_xattr (version 2, 8 bytes an entry) to ext4_acl (version 1, ids only on named entries). */
function toExt4Acl(value: Buffer): Buffer {
  if (value.length < 4 || (value.length - 4) % 8 !== 0 || value.readUInt32LE(0) !== 2) throw invalid("malformed POSIX ACL");
  const parts: Buffer[] = [Buffer.from([1, 0, 0, 0])];
  for (let o = 4; o < value.length; o += 8) {
    const tag = value.readUInt16LE(o);
    const named = tag === ACL.user || tag === ACL.group;
    if (!named && tag !== ACL.userObj && tag !== ACL.groupObj && tag !== ACL.mask && tag !== ACL.other) throw invalid("malformed POSIX ACL");
    const entry = Buffer.alloc(named ? 8 : 4);
    entry.writeUInt16LE(tag, 0);
    entry.writeUInt16LE(value.readUInt16LE(o + 2), 2);
    if (named) entry.writeUInt32LE(value.readUInt32LE(o + 4), 4);
    parts.push(entry);
  }
  return Buffer.concat(parts);
}

function entrySize(a: Xattr): number {
  return (16 + a.name.length + 3) & ~3;
}

function valueSize(a: Xattr): number {
  return (a.value.length + 3) & ~3;
}

/** e_hash: the name's bytes, then the value's 32-bit words. */
function xattrHash(a: Xattr): number {
  let hash = 0;
  for (const c of a.name) hash = ((hash << 5) ^ (hash >>> 27) ^ c) >>> 0;
  const padded = Buffer.alloc(valueSize(a));
  a.value.copy(padded);
  for (let o = 0; o < padded.length; o += 4) hash = ((hash << 16) ^ (hash >>> 16) ^ padded.readUInt32LE(o)) >>> 0;
  return hash;
}

/** The order the kernel keeps (and binary-searches) block entries in: index, name length, name. */
function sortXattrs(attrs: Xattr[]): Xattr[] {
  return [...attrs].sort((a, b) => a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name));
}

/**
 * Lays out entries from `first` and values down from `end` in `out`; value
 * offsets count from `base`. False when they do not fit.
 */
function layoutXattrs(attrs: Xattr[], out: Buffer, first: number, end: number, base: number): boolean {
  const entriesEnd = first + attrs.reduce((n, a) => n + entrySize(a), 0) + 4; // + the zero terminator
  const valuesStart = end - attrs.reduce((n, a) => n + valueSize(a), 0);
  if (entriesEnd > valuesStart) return false;
  let e = first;
  let v = end;
  for (const a of attrs) {
    v -= valueSize(a);
    out.writeUInt8(a.name.length, e);
    out.writeUInt8(a.index, e + 1);
    out.writeUInt16LE(v - base, e + 2);
    out.writeUInt32LE(a.value.length, e + 8);
    out.writeUInt32LE(xattrHash(a), e + 12);
    a.name.copy(out, e + 16);
    a.value.copy(out, v);
    e += entrySize(a);
  }
  return true;
}

/** Space for attributes after the inode's extra fields. */
const INLINE_XATTR_BYTES = INODE_SIZE - 128 - EXTRA_ISIZE;

/** The in-inode attribute area (magic, entries, values), or undefined when they do not fit. */
export function encodeInlineXattrs(attrs: Xattr[]): Buffer | undefined {
  const out = Buffer.alloc(INLINE_XATTR_BYTES);
  out.writeUInt32LE(XATTR_MAGIC, 0);
  // In the inode, value offsets count from the first entry.
  return layoutXattrs(sortXattrs(attrs), out, 4, out.length, 4) ? out : undefined;
}

/** A one-block attribute block (refcount 1), or undefined when they do not fit. */
export function encodeXattrBlock(attrs: Xattr[]): Buffer | undefined {
  const sorted = sortXattrs(attrs);
  const out = Buffer.alloc(BLOCK_SIZE);
  out.writeUInt32LE(XATTR_MAGIC, 0);
  out.writeUInt32LE(1, 4); // h_refcount
  out.writeUInt32LE(1, 8); // h_blocks
  if (!layoutXattrs(sorted, out, 32, BLOCK_SIZE, 0)) return undefined;
  let hash = 0;
  for (const a of sorted) hash = ((hash << 16) ^ (hash >>> 16) ^ xattrHash(a)) >>> 0;
  out.writeUInt32LE(hash, 12);
  return out;
}

// Superblock, group descriptors, journal.

export interface SuperblockFields {
  inodes: number;
  blocks: number;
  freeBlocks: number;
  freeInodes: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  /** Which group's copy this is (0 for the primary). */
  group: number;
  uuid: Buffer;
  hashSeed: Buffer;
  /** Seconds: mkfs, write and last-check time. */
  now: number;
  /** The journal inode's i_block, size and block count, backed up in s_jnl_blocks. */
  journalBlock: Buffer;
  journalSize: number;
}

/** The 1024-byte superblock. */
export function encodeSuperblock(f: SuperblockFields): Buffer {
  const sb = Buffer.alloc(1024);
  sb.writeUInt32LE(f.inodes, 0x0);
  sb.writeUInt32LE(f.blocks, 0x4);
  sb.writeUInt32LE(f.freeBlocks, 0xc);
  sb.writeUInt32LE(f.freeInodes, 0x10);
  sb.writeUInt32LE(0, 0x14); // s_first_data_block: 0 with 4 KiB blocks
  sb.writeUInt32LE(2, 0x18); // s_log_block_size: 1024 << 2
  sb.writeUInt32LE(2, 0x1c); // s_log_cluster_size
  sb.writeUInt32LE(f.blocksPerGroup, 0x20);
  sb.writeUInt32LE(f.blocksPerGroup, 0x24);
  sb.writeUInt32LE(f.inodesPerGroup, 0x28);
  sb.writeUInt32LE(f.now, 0x30); // s_wtime
  sb.writeUInt16LE(0xffff, 0x36); // s_max_mnt_count: no mount-count checks
  sb.writeUInt16LE(0xef53, 0x38);
  sb.writeUInt16LE(1, 0x3a); // s_state: clean
  sb.writeUInt16LE(1, 0x3c); // s_errors: continue
  sb.writeUInt32LE(f.now, 0x40); // s_lastcheck
  sb.writeUInt32LE(1, 0x4c); // s_rev_level: dynamic
  sb.writeUInt32LE(FIRST_INO, 0x54);
  sb.writeUInt16LE(INODE_SIZE, 0x58);
  sb.writeUInt16LE(f.group, 0x5a);
  sb.writeUInt32LE(COMPAT.hasJournal | COMPAT.extAttr | COMPAT.dirIndex, 0x5c);
  sb.writeUInt32LE(INCOMPAT.filetype | INCOMPAT.extents | INCOMPAT.flexBg, 0x60);
  sb.writeUInt32LE(RO_COMPAT.sparseSuper | RO_COMPAT.largeFile | RO_COMPAT.hugeFile | RO_COMPAT.dirNlink | RO_COMPAT.extraIsize, 0x64);
  f.uuid.copy(sb, 0x68);
  sb.writeUInt32LE(JOURNAL_INO, 0xe0);
  f.hashSeed.copy(sb, 0xec);
  sb.writeUInt8(1, 0xfc); // s_def_hash_version: half_md4
  sb.writeUInt8(1, 0xfd); // s_jnl_backup_type: s_jnl_blocks holds the journal inode's blocks
  sb.writeUInt32LE(0x0c, 0x100); // s_default_mount_opts: user_xattr, acl
  sb.writeUInt32LE(f.now, 0x108); // s_mkfs_time
  f.journalBlock.copy(sb, 0x10c, 0, 60);
  sb.writeUInt32LE(Math.floor(f.journalSize / 2 ** 32), 0x10c + 60);
  sb.writeUInt32LE(f.journalSize % 2 ** 32, 0x10c + 64);
  sb.writeUInt16LE(EXTRA_ISIZE, 0x15c); // s_min_extra_isize
  sb.writeUInt16LE(EXTRA_ISIZE, 0x15e); // s_want_extra_isize
  sb.writeUInt32LE(0x1, 0x160); // s_flags: signed directory hash
  sb.writeUInt8(4, 0x174); // s_log_groups_per_flex: 16
  return sb;
}

export interface GroupDescFields {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  freeBlocks: number;
  freeInodes: number;
  dirs: number;
}

export function encodeGroupDesc(f: GroupDescFields, out: Buffer, offset: number): void {
  out.writeUInt32LE(f.blockBitmap, offset);
  out.writeUInt32LE(f.inodeBitmap, offset + 0x4);
  out.writeUInt32LE(f.inodeTable, offset + 0x8);
  out.writeUInt16LE(f.freeBlocks, offset + 0xc);
  out.writeUInt16LE(f.freeInodes, offset + 0xe);
  out.writeUInt16LE(f.dirs, offset + 0x10);
}

/** The first block of an empty, clean jbd2 journal (superblock v2, big-endian). */
export function encodeJournalSuperblock(blocks: number, uuid: Buffer): Buffer {
  const jsb = Buffer.alloc(BLOCK_SIZE);
  jsb.writeUInt32BE(0xc03b3998, 0x0);
  jsb.writeUInt32BE(4, 0x4); // JBD2_SUPERBLOCK_V2
  jsb.writeUInt32BE(BLOCK_SIZE, 0xc);
  jsb.writeUInt32BE(blocks, 0x10); // s_maxlen
  jsb.writeUInt32BE(1, 0x14); // s_first
  jsb.writeUInt32BE(1, 0x18); // s_sequence
  // s_start 0: nothing to replay.
  uuid.copy(jsb, 0x30);
  jsb.writeUInt32BE(1, 0x40); // s_nr_users
  return jsb;
}

/** Whether group `g` holds a superblock backup (sparse_super: 0, 1 and powers of 3, 5, 7). */
export function hasSuperblockBackup(g: number): boolean {
  if (g <= 1) return true;
  for (const base of [3, 5, 7]) {
    let n = base;
    while (n < g) n *= base;
    if (n === g) return true;
  }
  return false;
}
